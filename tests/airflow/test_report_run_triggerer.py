"""StripeReportRunOperator deferred to a real ``airflow triggerer``: no worker slot held while Stripe computes.

A private Airflow installation (own AIRFLOW_HOME and SQLite DB) runs as a deployment does:
``airflow api-server`` (the workers' execution API, and the REST API the test triggers runs
with), ``airflow scheduler`` with the LocalExecutor and **one** worker slot
(``[core] parallelism = 1``), and ``airflow triggerer``. Stripe is localstripe behind the
ledger front (tests/servers/stripe_reporting.py), whose report runs stay ``pending`` until
the test releases them.

The DAG has the deferrable report task (higher priority: it takes the one slot first) and a
``probe`` task that holds the slot until the test writes its marker file. The test sees the
report task ``deferred`` with its ``StripeReportRunTrigger`` row assigned to the triggerer
*and* the probe ``running`` at the same time -- possible only if the deferred task holds no
slot -- then lets the probe finish and releases the run: the triggerer's next poll sees it
succeed, the task resumes on a worker and streams the file from the files host.

The same with a run Stripe fails: the task fails at once with Stripe's error (no retry,
although the task has two), and its log says so.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_provider_stripe.testing.connection import connection_env
from tests import airflow_env
from tests.airflow.api_server import ApiServer, run_api_server
from tests.airflow.dag_helpers import run_airflow_service, run_triggerer
from tests.airflow.subprocess_env import installed_env
from tests.servers.localstripe_server import LocalStripe
from tests.servers.stripe_reporting import LedgerFront, report_lines, run_ledger_front

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DAG_ID = "stripe_report_deferral"
CONN_ID = "stripe_report_deferral"
REPORT_TYPE = "balance_change_from_activity.itemized.3"
COLUMNS = ("balance_transaction_id", "reporting_category", "net")
ROWS = 2500
TRIGGER_CLASS = "airflow_provider_stripe.triggers.reports.StripeReportRunTrigger"
DAG_FILE = textwrap.dedent(
    f"""
    import time
    from datetime import datetime
    from pathlib import Path

    from airflow.sdk import DAG, get_current_context, task

    from airflow_provider_stripe.operators.reports import StripeReportRunOperator

    with DAG(dag_id={DAG_ID!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
        StripeReportRunOperator(
            task_id="report",
            stripe_conn_id={CONN_ID!r},
            report_type={REPORT_TYPE!r},
            columns={list(COLUMNS)!r},
            interval_start="{{{{ dag_run.conf['interval_start'] }}}}",
            interval_end="{{{{ dag_run.conf['interval_end'] }}}}",
            path="{{{{ dag_run.conf['path'] }}}}",
            deferrable=True,
            poll_interval=1,
            report_timeout=300,
            retries=2,
            priority_weight=10,
            weight_rule="absolute",
        )

        @task(priority_weight=1, weight_rule="absolute")
        def probe():
            # Holds the one worker slot until the test has seen the report task deferred.
            marker = Path(get_current_context()["dag_run"].conf["marker"])
            deadline = time.monotonic() + 240
            while not marker.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no marker {{marker}}: the report task never showed as deferred")
                time.sleep(0.2)

        probe()
    """
)
T = TypeVar("T")


@dataclass
class Airflow:
    """The private installation: its DB, its REST API, and the logs of its services."""

    root: Path
    api_server: ApiServer
    logs: list[Path]

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.root / "airflow.db", timeout=10)) as db:
            return db.execute(sql, args).fetchall()

    def trigger(self, conf: dict[str, Any]) -> str:
        resp = self.api_server.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["dag_run_id"])

    def states(self, run_id: str) -> dict[str, tuple[str | None, int, str | None]]:
        """``{task_id: (state, try_number, trigger_id)}`` of the run."""
        rows = self.query("SELECT task_id, state, try_number, trigger_id FROM task_instance WHERE run_id = ?", run_id)
        return {task: (state, tries, trigger) for task, state, tries, trigger in rows}

    def run_state(self, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE run_id = ?", run_id)
        return rows[0][0] if rows else None

    def trigger_row(self, trigger_id: str) -> tuple[str, int | None] | None:
        """``(classpath, triggerer job id)`` of a trigger row, or ``None`` once it is gone."""
        rows = self.query("SELECT classpath, triggerer_id FROM trigger WHERE id = ?", trigger_id)
        return (rows[0][0], rows[0][1]) if rows else None

    def task_log(self, run_id: str, task_id: str) -> str:
        found = sorted((self.root / "logs").rglob(f"dag_id={DAG_ID}/run_id={run_id}/task_id={task_id}/*"))
        return "\n".join(path.read_text(errors="replace") for path in found)

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := probe():
                return value
            time.sleep(0.3)
        tails = "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def module_front(local_stripe: LocalStripe) -> Iterator[LedgerFront]:
    """One ledger front for the module: the Airflow services below hold its URL in their connection."""
    with run_ledger_front(local_stripe.upstream_url) as server:
        server.reporting.add_report_type(
            REPORT_TYPE, data_available_start=0, data_available_end=int(time.time()) + 3600
        )
        server.reporting.pending_polls = 0
        server.reporting.rows = ROWS
        yield server


@pytest.fixture
def front(module_front: LedgerFront) -> LedgerFront:
    """The module's front with no report run yet; runs stay pending until the test releases them."""
    module_front.reporting.runs.clear()
    module_front.reporting.outcome = "succeeded"
    module_front.reporting.held = True
    assert module_front.files_host is not None
    module_front.files_host.requests.clear()
    module_front.reset_stats()
    return module_front


@pytest.fixture(scope="module")
def airflow(module_front: LedgerFront) -> Iterator[Airflow]:
    """api-server, scheduler (LocalExecutor, one slot) and triggerer on a private home, for the module."""
    with tempfile.TemporaryDirectory(prefix="airflow-stripe-report-deferral-") as tmp:
        root = Path(tmp)
        (root / "dags").mkdir()
        (root / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
        settings = {
            "AIRFLOW_HOME": str(root),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "1",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "PYTHONUNBUFFERED": "1",
            **connection_env(CONN_ID, base_url=module_front.url),
        }
        for command in (["db", "migrate"], ["dags", "reserialize"]):
            _run_once(command, installed_env(**settings))
        with run_api_server(env=settings) as api_server:
            settings["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{api_server.url}/execution/"
            env = installed_env(**settings)
            logs = [root / "scheduler.log", root / "triggerer.log", api_server.log_path]
            with (
                run_airflow_service(["scheduler", "--skip-serve-logs"], env, logs[0]),
                run_triggerer(env, logs[1]),
            ):
                yield Airflow(root, api_server, logs)


def _run_once(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(airflow_env.BIN / "airflow"), *command], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"airflow {' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _conf(tmp_path: Path, name: str) -> dict[str, Any]:
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return {
        "interval_start": day.isoformat(),
        "interval_end": (day + timedelta(days=1)).isoformat(),
        "path": str(tmp_path / name / "report.csv"),
        "marker": str(tmp_path / f"{name}.marker"),
    }


def _deferred_while_probe_runs(airflow: Airflow, run_id: str, conf: dict[str, Any]) -> str:
    """Wait until the report task is deferred (trigger row assigned) while the probe holds the slot."""

    def seen() -> str | None:
        states = airflow.states(run_id)
        report, probe = states.get("report"), states.get("probe")
        if report is None or probe is None or report[0] != "deferred" or probe[0] != "running" or not report[2]:
            return None
        row = airflow.trigger_row(report[2])
        return report[2] if row is not None and row[0] == TRIGGER_CLASS and row[1] is not None else None

    trigger_id = airflow.wait_for("report deferred (trigger assigned) while the probe runs", seen, 240)
    Path(conf["marker"]).touch()
    airflow.wait_for("the probe to finish", lambda: airflow.states(run_id)["probe"][0] == "success", 120)
    assert airflow.states(run_id)["report"][0] == "deferred", "the report run is still held: it must still wait"
    return trigger_id


def test_report_run_defers_to_the_triggerer_and_resumes_on_a_worker(
    airflow: Airflow, front: LedgerFront, tmp_path: Path
) -> None:
    conf = _conf(tmp_path, "ok")
    run_id = airflow.trigger(conf)
    _deferred_while_probe_runs(airflow, run_id, conf)
    (report_run,) = front.reporting.runs.values()
    polls = f"/v1/reporting/report_runs/{report_run['id']}"
    airflow.wait_for("two polls by the triggerer", lambda: sum(r.path == polls for r in front.records) >= 2, 60)

    front.reporting.held = False
    airflow.wait_for("the run to succeed", lambda: airflow.run_state(run_id) in ("success", "failed"), 180)
    assert airflow.run_state(run_id) == "success", airflow.task_log(run_id, "report")[-4000:]
    state, tries, trigger = airflow.states(run_id)["report"]
    assert (state, tries, trigger) == ("success", 1, None)

    target = Path(conf["path"])
    assert target.read_bytes() == b"".join(report_lines(ROWS, COLUMNS))
    assert not list(target.parent.glob(".*.part"))
    assert front.files_host is not None
    downloads = [path for path, _ in front.files_host.requests]
    assert downloads == [f"/v1/files/{report_run['result']['id']}/contents"]
    log = airflow.task_log(run_id, "report")
    assert "Created report run" in log and "Traceback" not in log


def test_a_failed_report_run_fails_the_task_at_once(airflow: Airflow, front: LedgerFront, tmp_path: Path) -> None:
    front.reporting.outcome = "failed"
    conf = _conf(tmp_path, "failed")
    run_id = airflow.trigger(conf)
    _deferred_while_probe_runs(airflow, run_id, conf)

    front.reporting.held = False
    airflow.wait_for("the run to finish", lambda: airflow.run_state(run_id) in ("success", "failed"), 180)
    assert airflow.run_state(run_id) == "failed"
    state, tries, _ = airflow.states(run_id)["report"]
    assert (state, tries) == ("failed", 1), "Stripe would compute the same: a failed report run is not retried"
    log = airflow.task_log(run_id, "report")
    assert "An unexpected error occurred while computing the report" in log, log[-4000:]
    target = Path(conf["path"])
    assert not target.exists() and not list(target.parent.glob(".*.part"))
    assert front.files_host is not None and not front.files_host.requests
