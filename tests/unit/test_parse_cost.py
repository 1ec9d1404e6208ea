"""DAG-parse cost: parsing DAGs that use the provider never imports the Stripe SDK.

The DAG processor re-parses every DAG file every few seconds, so the provider keeps its
operators, sensors, triggers and hook free of heavy imports at module level. In a fresh
interpreter (the benchmark's probe: ``airflow.sdk`` first, then ours), import every one
of those modules and execute every example DAG file, then look at ``sys.modules``.
``benchmarks/`` measures the time this takes; this test guards the imports.
"""

from __future__ import annotations

import pytest

from benchmarks.parse_probe import (
    PARSE_TIME_PACKAGES,
    RUN_TIME_PACKAGES,
    example_dag_files,
    probe_once,
    provider_modules,
)
from tests import airflow_env

NEVER_AT_PARSE_TIME = ("stripe", "limits", "requests", "redis")
"""The Stripe SDK, the rate limiter's library and HTTP/Redis clients: only when a task runs."""
SDK_TRANSPORT = "airflow_provider_stripe.hooks.http_client"
"""The SDK's HTTP client with the rate limit: a subclass of stripe's, so it imports the SDK; the
hook imports it only when it builds a client. Not imported here, and nothing may import it at parse time."""
NOT_ADDED_BY_US = ("jsonschema", "croniter")
"""Imported by Airflow itself when a DAG needs them (jsonschema: ``airflow.sdk`` from 3.2, on 3.1 validating
a DAG's ``Param``; croniter: a cron schedule), never by the provider's modules."""


def _imported(name: str, modules: list[str]) -> list[str]:
    return [m for m in modules if m == name or m.startswith(f"{name}.")]


@pytest.mark.slow
def test_parsing_dags_imports_no_stripe_sdk() -> None:
    modules = [m for m in provider_modules((*PARSE_TIME_PACKAGES, *RUN_TIME_PACKAGES, "hooks")) if m != SDK_TRANSPORT]
    files = [str(p) for p in example_dag_files()]
    assert any(m.endswith(".operators.payouts") for m in modules) and any(".sensors." in m for m in modules)
    assert files, "no example DAG files found"

    result, _ = probe_once(modules, files, env=airflow_env.airflow_env())

    added = result["new_modules"]
    assert set(modules) <= set(added), "not every provider module was imported"
    assert SDK_TRANSPORT not in added, f"{SDK_TRANSPORT} is imported at parse time: import it where a client is built"
    for heavy in NEVER_AT_PARSE_TIME:
        assert heavy not in result["loaded_top_level"], (
            f"{heavy!r} is imported at DAG-parse time by one of {modules} or the example DAGs "
            f"({_imported(heavy, added)[:5]}): import it inside the function that needs it"
        )
    # The provider's modules alone (Airflow 3.1 itself imports jsonschema for a DAG's Params).
    provider_only, _ = probe_once(modules, env=airflow_env.airflow_env())
    for name in NOT_ADDED_BY_US:
        assert not _imported(name, provider_only["new_modules"]), f"{name!r} is imported by the provider"


ALLOWED_AT_PARSE_TIME = frozenset(
    f"airflow_provider_stripe.{name}"
    for name in [
        "compat",
        "constants",
        "exports",
        "exports.lineage",
        "operators",
        "operators._base",
        "operators.charges",
        "operators.exports",
        "operators.payouts",
        "operators.reconciliation",
        "operators.reports",
        "sensors",
        "sensors.payouts",
    ]
)
"""Our modules a DAG file using the operators and sensor imports (each costs the parser ~0.5-1 ms):
errors, validation, formats, resources, the hook and the Dashboard link load only when a task runs."""


@pytest.mark.slow
def test_operators_and_sensor_import_only_the_allowed_modules_at_parse_time() -> None:
    modules = provider_modules(PARSE_TIME_PACKAGES)
    result, _ = probe_once(modules, env=airflow_env.airflow_env())
    ours = {m for m in result["new_modules"] if m.startswith("airflow_provider_stripe")} - {"airflow_provider_stripe"}
    assert ours <= ALLOWED_AT_PARSE_TIME, (
        f"imported at DAG-parse time: {sorted(ours - ALLOWED_AT_PARSE_TIME)}: import them where they are used"
    )
