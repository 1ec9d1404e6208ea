"""Shared fixtures. Airflow is pointed at a throwaway home before anything imports it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest

from tests import airflow_env
from tests.servers.fault_proxy import FaultPlan, FaultProxy, run_fault_proxy
from tests.servers.localstripe_server import LocalStripe, flush_localstripe, run_local_stripe
from tests.servers.stub_stripe import StubServer, run_stub

airflow_env.configure()


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("measured by the tests: fault rates, payout counts, memory")
        for line in _REPORT:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CI=true``) a skipped test is a failure: CI installs everything every test needs."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        for report in skipped:
            reporter.write_line(f"CI: skipped is not allowed: {report.nodeid}: {report.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
