"""``airflow connections test stripe_default``, as a user runs it: a real Airflow CLI process.

The connection comes from ``AIRFLOW_CONN_STRIPE_DEFAULT`` (JSON), the servers are real:
localstripe for success, the recording stub for Stripe's 401/403 answers, a silent server
for a network path that accepts and never answers. Every run checks that neither the API
key nor the webhook secret appears in the output. The hook's messages themselves are
covered in-process by ``tests/integration/test_health_check.py``; here it is the process:
exit code, what the user reads, what reached the server, and wall time.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from airflow_provider_stripe.compat import AIRFLOW_VERSION
from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.constants import DEFAULT_CONN_ID
from tests import airflow_env
from tests.airflow.subprocess_env import installed_env, neutral_cwd
from tests.servers.stub_stripe import StubServer, run_silent_server, run_stub, stripe_error

API_KEY = "sk_test_51CliCheckKey7f3a9c"
RESTRICTED_KEY = "rk_test_51CliRestricted2b8e"
WEBHOOK_SECRET = "whsec_CliSecret41d2"
#: The hook's share of a run against a server that never answers (first connection to the
#: printed verdict): the contract's 5 s budget plus slack. Interpreter start-up, Airflow
#: imports and process exit are measured separately.
HOOK_WALL_LIMIT_S = 6.5
CLI_TIMEOUT_S = 120


VERDICTS = ("Connection success!", "Connection failed!")


@dataclass(frozen=True)
class CliRun:
    """One ``airflow connections test`` process; times are seconds since it started."""

    returncode: int
    output: str
    wall_s: float
    #: When ``first_contact`` first returned true (the hook reached the server), if ever.
    contact_s: float | None
    #: When the verdict line (success / failed) was printed, if ever.
    verdict_s: float | None

    @property
    def hook_s(self) -> float | None:
        """From the first contact with the server to the printed verdict: the hook's share."""
        if self.contact_s is None or self.verdict_s is None:
            return None
        return self.verdict_s - self.contact_s


def stripe_conn(base_url: str | None, *, api_key: str = API_KEY) -> dict[str, object]:
    extra: dict[str, str] = {"api_key": api_key, "webhook_secret": WEBHOOK_SECRET}
    if base_url:
        extra["base_url"] = base_url
    return {"conn_type": "stripe", "extra": extra}


def run_connections_test(conn: dict[str, object], first_contact: Callable[[], bool] | None = None) -> CliRun:
    """Run ``airflow connections test stripe_default``, timing its start-up, verdict and exit."""
    env = installed_env(
        PYTHONUNBUFFERED="1",  # lines arrive as printed, so the verdict can be timed
        **{f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}": json.dumps(conn)},
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(airflow_env.BIN / "airflow"), "connections", "test", DEFAULT_CONN_ID],
        env=env,
        cwd=neutral_cwd(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic() - started, line))

    reader = threading.Thread(target=read, name="cli-output", daemon=True)
    reader.start()
    contact: float | None = None
    try:
        while proc.poll() is None:
            if time.monotonic() - started > CLI_TIMEOUT_S:
                raise AssertionError(f"airflow connections test still running after {CLI_TIMEOUT_S}s")
            if contact is None and first_contact is not None and first_contact():
                contact = time.monotonic() - started
            time.sleep(0.01)
        wall = time.monotonic() - started
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    output = "".join(line for _, line in lines)
    for secret in (API_KEY, RESTRICTED_KEY, WEBHOOK_SECRET):
        assert secret not in output, "a secret leaked into the CLI output"
    verdict = next((t for t, line in lines if line.strip() in VERDICTS), None)
    return CliRun(proc.returncode, output, wall, contact, verdict)


@pytest.fixture(scope="module", autouse=True)
def _airflow_db() -> None:
    airflow_env.migrate()


def test_passes_against_localstripe(localstripe: str) -> None:
    """localstripe (behind the front) has a non-Stripe balance shape: the ping copes with it."""
    run = run_connections_test(stripe_conn(localstripe))
    assert run.returncode == 0, run.output
    assert "Connection success!" in run.output


FAILED_EXIT_STATUS = 1 if AIRFLOW_VERSION >= (3, 3) else 0
"""``airflow connections test`` exits 1 on a failed test from Airflow 3.3; 3.1 and 3.2 print
"Connection failed!" and exit 0 (Airflow's CLI, not the provider)."""


def test_a_base_url_not_allowed_names_the_admin_option_intact() -> None:
    """The CLI prints through rich, whose markup would drop a ``[stripe]``: the hint must survive."""
    run = run_connections_test(stripe_conn("http://stripe.example.invalid"))
    assert run.returncode == FAILED_EXIT_STATUS, run.output
    assert "Connection failed!" in run.output
    hint = "allowed_base_urls in section stripe (env AIRFLOW__STRIPE__ALLOWED_BASE_URLS)"
    assert hint in " ".join(run.output.split()), run.output


def test_rejected_key_fails_clearly() -> None:
    with run_stub(api_keys={"sk_test_theOnlyValidKey"}) as stub:
        run = run_connections_test(stripe_conn(stub.url))
        paths = [r.path for r in stub.requests]
    assert run.returncode == FAILED_EXIT_STATUS, run.output
    assert "Connection failed!" in run.output
    assert "Stripe rejected the API key (secret test key): invalid API key. Check the API key field" in run.output
    assert paths == ["/v1/balance"], "exactly one ping, no retries"


def test_publishable_key_fails_before_any_request(stub_stripe: StubServer) -> None:
    run = run_connections_test(stripe_conn(stub_stripe.url, api_key="pk_test_51CliPublishable9"))
    assert run.returncode == FAILED_EXIT_STATUS, run.output
    assert "Connection failed!" in run.output
    assert "field 'api_key': a publishable key (pk_...) cannot call the Stripe API" in run.output
    assert "pk_test_51CliPublishable9" not in run.output
    assert stub_stripe.requests == []


def test_restricted_key_without_balance_access_passes(stub_stripe: StubServer) -> None:
    """A 403 on the ping means a valid but restricted key: the CLI reports success."""
    stub_stripe.enqueue(
        stripe_error(403, message="The provided key does not have the required permissions (rak_balance_read).")
    )
    run = run_connections_test(stripe_conn(stub_stripe.url, api_key=RESTRICTED_KEY))
    assert run.returncode == 0, run.output
    assert "Connection success!" in run.output
    assert [r.api_key for r in stub_stripe.requests][:1] == [RESTRICTED_KEY]


def test_server_that_never_answers_fails_within_the_budget() -> None:
    budget = STRIPE_CONTRACT.health_check.timeout_seconds
    with run_silent_server() as silent:
        run = run_connections_test(stripe_conn(silent.url), first_contact=lambda: silent.accepted > 0)
    assert run.returncode == FAILED_EXIT_STATUS, run.output
    assert "Connection failed!" in run.output
    assert "Stripe health check failed: timed out reaching" in run.output
    assert f"(budget {budget:.0f}s)" in run.output
    assert run.contact_s is not None and run.verdict_s is not None and run.hook_s is not None
    print(
        f"\nconnections test vs silent server: process {run.wall_s:.1f}s = start-up and imports "
        f"{run.contact_s:.1f}s + hook {run.hook_s:.1f}s + exit {run.wall_s - run.verdict_s:.1f}s"
    )
    assert run.hook_s < HOOK_WALL_LIMIT_S, f"hook part took {run.hook_s:.1f}s (limit {HOOK_WALL_LIMIT_S}s)"
