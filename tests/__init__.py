"""Test suite of the Stripe provider (a package so that ``tests.servers`` is importable)."""
