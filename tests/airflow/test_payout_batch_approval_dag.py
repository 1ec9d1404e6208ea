"""The approval-gate example DAG, run for real with ``dag.test()`` against localstripe.

``dags_examples/stripe_payout_batch_approval.py``: summary -> Airflow's ``ApprovalOperator`` ->
batch. A real ``airflow api-server`` shares the session's metadata DB, and the test answers the
approval request the way a person does in the UI's *Required actions*: ``PATCH
/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approve/-1/hitlDetails`` (Airflow's own endpoint:
it records the response and, on 3.3, resumes the waiting task; on 3.1/3.2 the ``HITLTrigger`` in
a real triggerer sees it). Before answering, it reads the request back (``GET``) to check what the
approver is shown: the count, the total per currency and the largest items. On 3.3 ``dag.test()``
runs the tasks in process; on 3.1/3.2 it cannot run the approval's trigger in process
(:data:`USE_EXECUTOR`), so there it runs them through the LocalExecutor (``use_executor=True``),
with the api-server's execution API and a real ``airflow triggerer``.

* approve: the batch pays each instruction once, counted on the server;
* reject: the batch is skipped, the run succeeds, nothing reaches Stripe (the front's request log);
* no answer (the timeout shortened to :data:`SHORT_TIMEOUT`): the approval times out and fails the run, nothing sent.
  On 3.1/3.2 the trigger ends the wait; on 3.3 the scheduler does (its
  ``check_awaiting_input_timeouts`` sweep, called here as the scheduler loop calls it:
  ``dag.test()`` runs no scheduler);
* the file changed after the summary, then approved: the batch refuses it before any request;
* a batch above the DAG's limits fails at the summary, without retries: nobody is asked, nothing sent.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.compat import AIRFLOW_VERSION
from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from tests import airflow_env
from tests.airflow.api_server import ApiServer, run_api_server
from tests.airflow.dag_helpers import (
    Triggerer,
    _fail_running_dag_runs,
    dag_tests_bounded,
    drop_finished_triggers,
    example_dag,
    in_background,
    run_triggerer,
    task_states,
)
from tests.airflow.subprocess_env import installed_env
from tests.integration.payout_helpers import eur_items, list_all_payouts, write_jsonl
from tests.servers.localstripe_server import clear_request_log, request_log

DAG_ID = "stripe_payout_batch_approval"
RUN_LIMIT_S = 150.0
"""A ``dag.test()`` waiting for an answer that never comes is failed after this (pytest's alarm cannot stop it)."""

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.slow,
]


USE_EXECUTOR = AIRFLOW_VERSION < (3, 3)
"""Before 3.3 the approval waits in ``HITLTrigger``, and ``dag.test()``'s in-process trigger runner
cannot run it (its supervisor leaves the trigger's ``GetHITLDetailResponse`` request unhandled: only
the triggerer answers it). So there the runs go through the LocalExecutor and a real triggerer."""


DEFERRAL_RACE = AIRFLOW_VERSION < (3, 2)
"""Airflow 3.1's own race, fixed in 3.2 (``process_executor_events``' resume-after-defer check): if the
trigger resumes the deferred ``approve`` (state ``scheduled``) before the executor's report of its
process's exit after ``defer()`` is processed, 3.1 takes that report for a task killed externally and
fails it ("state mismatch"). Here the answer can come within that second, a person's cannot; so on 3.1
:func:`approver` answers once that report is processed (:func:`executor_reports`), the no-answer test's
timeout is longer than the report takes (:data:`SHORT_TIMEOUT`), and every run checks that no state
mismatch was logged (a pass for the wrong reason fails)."""

SHORT_TIMEOUT = timedelta(seconds=20 if DEFERRAL_RACE else 3)
"""The no-answer test's approval timeout (the example's is 12 h)."""

END_GRACE_S = 5.0
"""Seconds ``dag.test(use_executor=True)`` may wait in ``LocalExecutor.end()`` before its lost shutdown
message is sent again (:func:`~tests.airflow.dag_helpers.dag_tests_bounded`; seen on every 3.1 run)."""


@pytest.fixture(scope="module")
def services(localstripe_url: str) -> Iterator[tuple[ApiServer, Triggerer | None]]:
    """A real api-server (and, before 3.3, a real triggerer) on the session's metadata DB.

    Task processes of ``dag.test(use_executor=True)`` authenticate to the execution API with tokens
    this process signs, so both sides get the same JWT secret.
    """
    airflow_env.migrate()  # before the triggerer starts
    jwt_secret = secrets.token_urlsafe(64)
    env = {**connection_env("stripe_default", base_url=localstripe_url), "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret}
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.ExitStack() as stack:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        triggerer = None
        if USE_EXECUTOR:
            drop_finished_triggers()  # else earlier tests' payout triggers poll into these tests' request log
            log = Path(tempfile.mkdtemp(prefix="approval-triggerer-")) / "triggerer.log"
            triggerer = stack.enter_context(run_triggerer(installed_env(**env, PYTHONUNBUFFERED="1"), log))
        server = stack.enter_context(run_api_server(env=env))
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"{server.url}/execution/")
        yield server, triggerer


@contextlib.contextmanager
def executor_reports() -> Iterator[set[str]]:
    """Yield the task ids of each executor report ``dag.test()`` processes inside the block; changes nothing."""
    reported: set[str] = set()
    if not USE_EXECUTOR:
        yield reported
        return
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    process = SchedulerJobRunner.process_executor_events

    def recorded(cls: Any, executor: Any, **kwargs: Any) -> Any:
        task_ids = {key.task_id for key in executor.event_buffer}
        result = process(executor=executor, **kwargs)
        reported.update(task_ids)
        return result

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(SchedulerJobRunner, "process_executor_events", classmethod(recorded))
        yield reported


def _state_mismatches(dag_run: Any) -> list[str]:
    """What Airflow logged as "state mismatch" (a task failed as killed externally) in the run."""
    with contextlib.closing(sqlite3.connect(airflow_env.configure() / "airflow.db", timeout=30)) as conn:
        rows = conn.execute(
            "SELECT extra FROM log WHERE event = 'state mismatch' AND dag_id = ? AND run_id = ?",
            (dag_run.dag_id, dag_run.run_id),
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def api(services: tuple[ApiServer, Triggerer | None]) -> ApiServer:
    return services[0]


@pytest.fixture
def approval_dag(api: ApiServer, localstripe: str) -> Any:
    dag = example_dag(DAG_ID)
    clear_request_log(localstripe)
    return dag


@pytest.fixture
def run(services: tuple[ApiServer, Triggerer | None]) -> Callable[[Any, str], Any]:
    """``run(dag, instructions_file)``: one ``dag.test()`` run of the example.

    Before 3.3 (:data:`USE_EXECUTOR`) it goes through the executor, bounded by
    :func:`~tests.airflow.dag_helpers.dag_tests_bounded`: failed if the triggerer dies or after
    :data:`RUN_LIMIT_S`, and not left hanging in ``LocalExecutor.end()``.
    """
    triggerer = services[1]

    def run_once(dag: Any, instructions_file: str) -> Any:
        conf = {"instructions_file": instructions_file}
        if triggerer is None:
            return dag.test(run_conf=conf)
        with dag_tests_bounded(triggerer, RUN_LIMIT_S, note=print, end_grace=END_GRACE_S) as stopped_because:
            dag_run = dag.test(run_conf=conf, use_executor=True)
        assert not stopped_because, stopped_because[0]
        assert not _state_mismatches(dag_run), _state_mismatches(dag_run)
        return dag_run

    return run_once


def task_logs(capfd: pytest.CaptureFixture[str]) -> str:
    """What the tasks logged: printed by an in-process ``dag.test()``, else in the task log files."""
    printed = "".join(capfd.readouterr())
    logs = airflow_env.configure() / "logs"
    files = [p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()] if logs.is_dir() else []
    return printed + "".join(files)


def _running_run_id() -> str | None:
    with contextlib.closing(sqlite3.connect(airflow_env.configure() / "airflow.db", timeout=30)) as conn:
        row = conn.execute("SELECT run_id FROM dag_run WHERE dag_id = ? AND state = 'running'", (DAG_ID,)).fetchone()
        return str(row[0]) if row else None


@contextlib.contextmanager
def approver(api: ApiServer, answer: str | None, before: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """A person at the UI: waits for the approval request, reads it, answers ``answer`` (None: never).

    Yields what was seen: ``request`` (the HITL detail as the API shows it), ``response``. The
    ``dag.test()`` inside the block is failed after :data:`RUN_LIMIT_S` if it is still running.
    """
    seen: dict[str, Any] = {}
    stop = threading.Event()

    def act() -> None:
        deadline = time.monotonic() + RUN_LIMIT_S
        while not stop.wait(0.5):
            if time.monotonic() > deadline:
                seen["gave_up"] = True
                _fail_running_dag_runs()
                continue
            if "request" in seen or (run_id := _running_run_id()) is None:
                continue
            path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
            asked = api.api("GET", path)
            if asked.status_code != 200:
                continue
            seen["request"] = asked.json()
            if answer is None:
                continue
            while DEFERRAL_RACE and "approve" not in reported and not stop.wait(0.2):
                pass  # Airflow 3.1: not before the executor's report of the deferral is processed
            if before is not None:
                before()
            answered = api.api("PATCH", path, json={"chosen_options": [answer], "params_input": {}})
            seen["response"] = (answered.status_code, answered.json())

    with executor_reports() as reported, in_background(act, "approver", stop):
        yield seen


@contextlib.contextmanager
def scheduler_timeout_sweep() -> Iterator[None]:
    """On Airflow 3.3+, the scheduler's sweep that ends timed-out human-in-the-loop waits, every second."""
    if AIRFLOW_VERSION < (3, 3):
        yield  # the HITLTrigger ends the wait itself
        return
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    runner = SchedulerJobRunner(job=Job())
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(1.0):
            runner.check_awaiting_input_timeouts()

    with in_background(sweep, "scheduler-sweep", stop):
        yield


def _states(dag_run: Any) -> dict[str, str]:
    return {task: state for (task, _), state in task_states(dag_run).items()}


def _tries(dag_run: Any, task_id: str) -> int:
    from airflow.utils.session import create_session

    with create_session() as session:
        (ti,) = [ti for ti in dag_run.get_task_instances(session=session) if ti.task_id == task_id]
        return int(ti.try_number)


def test_approved_the_batch_pays_each_instruction_once(
    approval_dag: Any, api: ApiServer, run: Callable[[Any, str], Any], localstripe: str, tmp_path: Path
) -> None:
    items = eur_items(3)  # 10.00, 10.01, 10.02 EUR
    items.append({"reference": "big-one", "amount": 250_000, "currency": "eur", "description": "Quarterly bonus"})
    path = write_jsonl(tmp_path / "payouts.jsonl", items)

    with approver(api, "Approve") as seen:
        dag_run = run(approval_dag, path)

    assert not seen.get("gave_up"), seen
    assert str(dag_run.state) == "success", _states(dag_run)
    assert _states(dag_run) == {"summarize": "success", "approve": "success", "create_payouts": "success"}
    request = seen["request"]
    assert request["subject"] == "Approve payout batch: 4 payout(s), 2530.03 EUR", request
    body = request["body"]
    assert "**4 payout(s), 2530.03 EUR in total.**" in body, body
    assert "| EUR | 2530.03 EUR | 2500.00 EUR `big-one`; 10.02 EUR `inv-2`; 10.01 EUR `inv-1`;" in body, body
    assert "Within the batch's limits (at most 500 items, at most 50000.00 EUR)" in body, body
    status, response = seen["response"]
    assert status == 200 and response["chosen_options"] == ["Approve"], response
    payouts = list_all_payouts(localstripe, LOCAL_TEST_KEY)
    assert sorted(p["metadata"]["airflow_payout_ref"] for p in payouts) == sorted(i["reference"] for i in items)


def test_rejected_the_batch_is_skipped_and_nothing_reaches_stripe(
    approval_dag: Any, api: ApiServer, run: Callable[[Any, str], Any], localstripe: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "payouts.jsonl", eur_items(3))

    with approver(api, "Reject") as seen:
        dag_run = run(approval_dag, path)

    assert not seen.get("gave_up"), seen
    assert seen["response"][0] == 200, seen
    assert _states(dag_run) == {"summarize": "success", "approve": "success", "create_payouts": "skipped"}
    assert str(dag_run.state) == "success"
    assert request_log(localstripe) == [], "nothing reached Stripe"
    assert list_all_payouts(localstripe, LOCAL_TEST_KEY) == []


def test_no_answer_in_time_fails_the_run_and_sends_nothing(
    approval_dag: Any,
    api: ApiServer,
    run: Callable[[Any, str], Any],
    localstripe: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_jsonl(tmp_path / "payouts.jsonl", eur_items(3))
    from airflow.providers.standard.operators.hitl import HITLOperator

    ask = HITLOperator.execute

    def ask_briefly(self: Any, context: Any) -> Any:  # the example waits 12 h; task processes fork from here
        self.response_timeout = SHORT_TIMEOUT
        return ask(self, context)

    monkeypatch.setattr(HITLOperator, "execute", ask_briefly)

    with approver(api, None) as seen, scheduler_timeout_sweep():
        dag_run = run(approval_dag, path)

    assert not seen.get("gave_up"), "the approval never timed out"
    assert "request" in seen, "the approval was never asked"
    assert _states(dag_run) == {"summarize": "success", "approve": "failed", "create_payouts": "upstream_failed"}
    assert str(dag_run.state) == "failed"
    assert request_log(localstripe) == []
    assert list_all_payouts(localstripe, LOCAL_TEST_KEY) == []


def test_instructions_changed_after_the_summary_are_refused_although_approved(
    approval_dag: Any,
    api: ApiServer,
    run: Callable[[Any, str], Any],
    localstripe: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    items = eur_items(3)
    path = write_jsonl(tmp_path / "payouts.jsonl", items)

    def tamper() -> None:  # the approver looks at 30.03 EUR; meanwhile the file is rewritten
        items[0]["amount"] = 900_000
        write_jsonl(path, items)

    with approver(api, "Approve", before=tamper) as seen:
        dag_run = run(approval_dag, path)

    assert not seen.get("gave_up"), seen
    assert "30.03 EUR" in seen["request"]["subject"]
    assert _states(dag_run)["create_payouts"] == "failed" and str(dag_run.state) == "failed"
    assert _tries(dag_run, "create_payouts") == 1, "not retried"
    log = task_logs(capfd)
    assert "are not the ones approved" in log and "3 item(s), 9020.03 EUR" in log
    assert request_log(localstripe) == [], "refused before any request"
    assert list_all_payouts(localstripe, LOCAL_TEST_KEY) == []


def test_a_batch_above_the_limits_fails_at_the_summary_and_nobody_is_asked(
    approval_dag: Any,
    api: ApiServer,
    run: Callable[[Any, str], Any],
    localstripe: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    items = [{"reference": f"big-{n}", "amount": 2_000_000, "currency": "eur"} for n in range(3)]  # 60,000 EUR
    items.append({"reference": "usd-1", "amount": 1000, "currency": "usd"})
    path = write_jsonl(tmp_path / "payouts.jsonl", items)

    with approver(api, "Approve") as seen:
        dag_run = run(approval_dag, path)

    assert not seen.get("gave_up") and "request" not in seen, seen
    skipped_by_failure = {"approve": "upstream_failed", "create_payouts": "upstream_failed"}
    assert _states(dag_run) == {"summarize": "failed", **skipped_by_failure}
    assert _tries(dag_run, "summarize") == 1, "not retried (retries=2): the same batch would be refused again"
    log = task_logs(capfd)
    for expected in (
        "60000.00 EUR in total, above max_total 50000.00 EUR",
        "10.00 USD in total, and max_total has no cap for 'usd'",
        "The batch: 4 item(s), 60000.00 EUR, 10.00 USD in total.",
    ):
        assert expected in log
    assert request_log(localstripe) == [] and list_all_payouts(localstripe, LOCAL_TEST_KEY) == []
