"""Shared fixtures. Airflow is pointed at a throwaway home before anything imports it."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import airflow_env

# Before the imports below: they load the provider, whose error hierarchy imports Airflow
# (its configuration reads AIRFLOW_HOME once, at import).
airflow_env.configure()

from tests.servers.fault_proxy import FaultPlan, FaultProxy, run_fault_proxy  # noqa: E402
from tests.servers.localstripe_server import LocalStripe, flush_localstripe, run_local_stripe  # noqa: E402
from tests.servers.stripe_reporting import LedgerFront, run_ledger_front  # noqa: E402
from tests.servers.stub_stripe import StubServer, run_stub  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_rate_limiters() -> None:
    """Each test starts with the in-memory rate limiters of a fresh process: the tests' connections
    share one test key, so their requests would otherwise count against one limit all session."""
    from airflow_provider_stripe.hooks import ratelimit

    with ratelimit._registry_lock:
        ratelimit._registry.clear()


# -- test servers (logic in tests/servers/) --------------------------------------


@pytest.fixture(scope="session")
def local_stripe() -> Iterator[LocalStripe]:
    """One real localstripe behind the Stripe-faithful front per session (127.0.0.1, free ports)."""
    with run_local_stripe() as servers:
        yield servers


@pytest.fixture(scope="session")
def localstripe_url(local_stripe: LocalStripe) -> str:
    """The session's local Stripe as clients see it: the front's ``http://127.0.0.1:PORT``."""
    return local_stripe.url


@pytest.fixture
def localstripe(localstripe_url: str) -> str:
    """The session's local Stripe (the front), flushed before the test, request log included."""
    flush_localstripe(localstripe_url)
    return localstripe_url


@pytest.fixture
def localstripe_upstream(localstripe: str, local_stripe: LocalStripe) -> str:
    """localstripe itself, without the front (flushed): for tests of localstripe's own behaviour."""
    return local_stripe.upstream_url


@pytest.fixture
def ledger_front(localstripe_upstream: str) -> Iterator[LedgerFront]:
    """localstripe (flushed) behind a Stripe front with automatic payouts, reporting and a files host.

    The front of tests/servers/stripe_reporting.py, behind the fault proxy (``records``, faults).
    """
    with run_ledger_front(localstripe_upstream) as server:
        yield server


@pytest.fixture
def stub_stripe() -> Iterator[StubServer]:
    """A fresh recording Stripe stub (``.url``, ``.requests``, ``.enqueue``, ``.responder``)."""
    with run_stub() as stub:
        yield stub


FaultProxyFactory = Callable[..., FaultProxy]


@pytest.fixture
def fault_proxy(localstripe: str) -> Iterator[FaultProxyFactory]:
    """Factory ``(faults=FaultPlan(...), seed=0, upstream_url=<flushed localstripe>) -> FaultProxy``.

    Every proxy it starts is stopped at teardown.
    """
    with contextlib.ExitStack() as stack:

        def start(faults: FaultPlan | None = None, seed: int = 0, upstream_url: str | None = None) -> FaultProxy:
            return stack.enter_context(run_fault_proxy(upstream_url or localstripe, faults=faults, seed=seed))

        yield start


# -- a report printed at the end of every run (fault rates, counts) ----------------

_REPORT: list[str] = []


@pytest.fixture
def report() -> Callable[[str], None]:
    """``report(line)``: shown in the run's terminal summary even when the test passes."""
    return _REPORT.append


# -- version markers: tests that need a newer Airflow --------------------------------

_SESSION_STARTED = time.monotonic()

_VERSION_SKIPS: dict[str, str] = {}
"""Node id -> reason, for every test skipped by an ``airflow_min`` marker in this session."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "airflow_min(version, reason): needs at least this Airflow (e.g. '3.3'); skipped, with the reason and "
        "counted in the run summary, on older versions",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from airflow_provider_stripe.compat import AIRFLOW_VERSION

    installed = ".".join(map(str, AIRFLOW_VERSION))
    for item in items:
        marker = item.get_closest_marker("airflow_min")
        if marker is None:
            continue
        wanted = str(marker.args[0])
        if tuple(int(part) for part in wanted.split(".")) <= AIRFLOW_VERSION:
            continue
        why = marker.kwargs.get("reason") or (marker.args[1] if len(marker.args) > 1 else "")
        reason = f"needs Airflow >= {wanted} (installed {installed}){': ' + why if why else ''}"
        _VERSION_SKIPS[item.nodeid] = reason
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("measured by the tests: fault rates, payout counts, memory")
        for line in _REPORT:
            terminalreporter.write_line(line)
    if _VERSION_SKIPS:
        terminalreporter.section(f"skipped by version markers: {len(_VERSION_SKIPS)}")
        for nodeid, reason in sorted(_VERSION_SKIPS.items()):
            terminalreporter.write_line(f"{nodeid}: {reason}")


def _tier_counts(reporter: Any, *, ci: bool) -> dict[str, dict[str, Any]]:
    """Per test directory (``unit``, ``integration``, ``airflow``): counts and whether it passed."""
    tiers: dict[str, dict[str, Any]] = {}
    stats = reporter.stats if reporter is not None else {}
    for outcome, key in (("passed", "passed"), ("failed", "failed"), ("error", "errors"), ("skipped", "skipped")):
        for report in stats.get(outcome, []):
            parts = getattr(report, "nodeid", "").split("/")
            if len(parts) < 3 or parts[0] != "tests":
                continue
            counts = tiers.setdefault(
                parts[1], {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "version_skips": 0}
            )
            counts[key] += 1
            if outcome == "skipped" and report.nodeid in _VERSION_SKIPS:
                counts["version_skips"] += 1
    for counts in tiers.values():
        unexplained = counts["skipped"] - counts["version_skips"]
        counts["ok"] = counts["failed"] == 0 and counts["errors"] == 0 and not (ci and unexplained)
    return tiers


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CI=true``) a skip is a failure unless a version marker explains it; results go to a file if asked.

    CI installs everything every test needs, so the only acceptable skips are tests that need a
    newer Airflow than the combination under test (``@pytest.mark.airflow_min``).
    """
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if ci:
        skipped = reporter.stats.get("skipped", []) if reporter is not None else []
        unexplained = [report for report in skipped if report.nodeid not in _VERSION_SKIPS]
        if unexplained and session.exitstatus == pytest.ExitCode.OK:
            for report in unexplained:
                reporter.write_line(f"CI: skipped is not allowed: {report.nodeid}: {report.longrepr}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    results = os.environ.get("STRIPE_TEST_RESULTS")
    if results:
        from tests.results import record

        seconds = time.monotonic() - _SESSION_STARTED
        interrupted = session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        for tier, counts in _tier_counts(reporter, ci=ci).items():
            ok = counts.pop("ok") and not interrupted
            record(results, tier, counts, ok=ok, seconds=seconds)
