"""Exports: which resources can be listed and their stable schemas (:mod:`.resources`),
the file formats (:mod:`.formats`), the run's time window (:mod:`.windows`), parallel time
slices (:mod:`.slices`), Stripe's report runs (:mod:`.reports`) and OpenLineage (:mod:`.lineage`).
"""
