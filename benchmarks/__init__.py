"""Benchmarks of the Stripe provider against plain alternatives; run ``python -m benchmarks``.

See ``benchmarks/README.md``. Not part of the test suite (they take minutes), except the
DAG-parse probe, which ``tests/unit/test_parse_cost.py`` reuses.
"""
