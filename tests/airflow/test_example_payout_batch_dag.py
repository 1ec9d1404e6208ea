"""The example payout batch DAG, run for real with ``dag.test()`` against localstripe.

One DAG run (about 15 s unloaded): the batch operator creates the sample's five payouts, the sensor
defers -- ``dag.test()`` runs the trigger inline -- and the simulated bank marks the
payouts paid only once the trigger is polling, so the run proves the deferral path: the
trigger's serialized kwargs (no key), its success event and ``execute_complete``.
A second manual run on the same file pays nobody again: its items say ``already_paid_by_run``
with the first run's id (cross-run protection). Then ``scripts/demo.py`` runs as a
subprocess, as a user would run it (about 25 s unloaded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from airflow_provider_stripe.testing.settlement import SettlementSimulator
from tests import airflow_env
from tests.integration.payout_helpers import list_all_payouts

DAG_ID = "stripe_payout_batch"
SAMPLE = airflow_env.DAGS_FOLDER / "data" / "payouts" / "sample.jsonl"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


@pytest.fixture
def payout_dag(migrated: None, localstripe: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example DAG, parsed with short timings and its connection pointed at localstripe."""
    for name, value in connection_env("stripe_default", base_url=localstripe).items():
        monkeypatch.setenv(name, value)
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag

    bag = DagBag(dag_folder=str(airflow_env.DAGS_FOLDER / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(DAG_ID)


@pytest.fixture
def trigger_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Record each StripePayoutTrigger run (its serialized kwargs); set ``started`` when one polls."""
    from airflow_provider_stripe.triggers.payouts import StripePayoutTrigger

    runs: list[dict[str, Any]] = []
    original = StripePayoutTrigger.run

    async def recording_run(self: StripePayoutTrigger) -> AsyncIterator[Any]:
        runs.append(self.serialize()[1])
        async for event in original(self):
            yield event

    monkeypatch.setattr(StripePayoutTrigger, "run", recording_run)
    yield runs


def _xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=DAG_ID, task_ids=task_id, key="return_value")
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def test_daily_batch_pays_each_instruction_once_and_waits_in_the_triggerer(
    payout_dag: Any, localstripe: str, trigger_runs: list[dict[str, Any]]
) -> None:
    stop = threading.Event()

    def bank() -> None:
        # The bank settles only once the trigger is polling, so the sensor must have deferred.
        while not trigger_runs and not stop.wait(0.1):
            pass
        with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=1.0):
            stop.wait(120)

    bank_thread = threading.Thread(target=bank, daemon=True)
    bank_thread.start()
    try:
        dag_run = payout_dag.test(run_conf={"instructions_file": str(SAMPLE), "poll_seconds": 0.5})
    finally:
        stop.set()
        bank_thread.join(timeout=15)

    assert str(dag_run.state) == "success"
    instructions = [json.loads(line) for line in Path(SAMPLE).read_text().splitlines() if line.strip()]
    payouts = list_all_payouts(localstripe, LOCAL_TEST_KEY)
    assert len(payouts) == len(instructions), "each instruction paid exactly once"
    assert sorted(p["amount"] for p in payouts) == sorted(i["amount"] for i in instructions)
    assert {p["status"] for p in payouts} == {"paid"}

    (kwargs,) = trigger_runs
    assert sorted(kwargs["payout_ids"]) == sorted(p["id"] for p in payouts)
    assert "sk_test" not in json.dumps(kwargs) and kwargs["stripe_conn_id"] == "stripe_default"

    report = _xcom(dag_run, "report")
    assert report["created"] == len(instructions) and report["paid"] == len(instructions)
    assert report["amounts"]["eur"]["created"] == sum(i["amount"] for i in instructions)
    assert sorted(report["payout_ids"]) == sorted(p["id"] for p in payouts)


def test_a_second_run_on_the_same_instructions_pays_nobody_again(payout_dag: Any, localstripe: str) -> None:
    """Re-triggering (not clearing) the DAG for the same file: the second run's items name the first run."""
    conf = {"instructions_file": str(SAMPLE), "poll_seconds": 0.5}
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0.5):
        first = payout_dag.test(run_conf=conf)  # manual runs without a logical date: distinct run ids
        second = payout_dag.test(run_conf=conf)
    assert str(first.state) == str(second.state) == "success" and first.run_id != second.run_id

    instructions = [json.loads(line) for line in Path(SAMPLE).read_text().splitlines() if line.strip()]
    payouts = list_all_payouts(localstripe, LOCAL_TEST_KEY)
    assert len(payouts) == len(instructions), "each instruction paid exactly once across both runs"
    batch = _xcom(second, "create_payouts")
    assert {(r["outcome"], r["paid_by_run"]) for r in batch["results"]} == {("already_paid_by_run", first.run_id)}
    assert sorted(r["payout_id"] for r in batch["results"]) == sorted(p["id"] for p in payouts)
    assert batch["summary"]["this_run"]["already_paid_by_run"] == {first.run_id: len(instructions)}
    report = _xcom(second, "report")
    assert (report["created"], report["already_paid_by_run"]) == (0, len(instructions)), report


@pytest.mark.parametrize(
    "logical_date",
    [datetime(2026, 1, 1, tzinfo=timezone.utc), None],
    ids=["with-logical-date", "manual-without-logical-date"],
)
def test_the_run_day_file_is_found_with_and_without_a_logical_date(
    migrated: None,
    tmp_path: Path,
    localstripe: str,
    monkeypatch: pytest.MonkeyPatch,
    logical_date: datetime | None,
) -> None:
    """No ``instructions_file``: the run reads ``data/payouts/<run day>.jsonl``, run day from ``run_window.run_day``.

    With a logical date (as a scheduled run has) the day is the logical date's; a manual run without
    one (the CLI's and REST API's default on Airflow 3) has no ``ds``, and its day is ``run_after``'s.
    The DAG file is copied beside a data folder of its own holding only that day's file.
    """
    day = (logical_date or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    (tmp_path / "data" / "payouts").mkdir(parents=True)
    shutil.copy(SAMPLE, tmp_path / "data" / "payouts" / f"{day}.jsonl")
    shutil.copy(airflow_env.DAGS_FOLDER / f"{DAG_ID}.py", tmp_path / f"{DAG_ID}.py")
    for name, value in connection_env("stripe_default", base_url=localstripe).items():
        monkeypatch.setenv(name, value)
    from airflow_provider_stripe.compat import dagbag_module

    bag = dagbag_module().DagBag(dag_folder=str(tmp_path / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0.5):
        dag_run = bag.get_dag(DAG_ID).test(logical_date=logical_date, run_conf={"poll_seconds": 0.5})

    assert str(dag_run.state) == "success"
    assert (dag_run.logical_date is None) == (logical_date is None)
    instructions = [json.loads(line) for line in Path(SAMPLE).read_text().splitlines() if line.strip()]
    assert _xcom(dag_run, "find_instructions") == str(tmp_path / "data" / "payouts" / f"{day}.jsonl")
    assert _xcom(dag_run, "report")["paid"] == len(instructions)
    assert len(list_all_payouts(localstripe, LOCAL_TEST_KEY)) == len(instructions)


def test_demo_script_runs_the_batch_end_to_end() -> None:
    """``scripts/demo.py`` as a user runs it: no Airflow or Stripe settings inherited, exit 0, a report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRIPE_"))}
    result = subprocess.run(
        [sys.executable, str(airflow_env.REPO / "scripts" / "demo.py")],
        env=env,
        cwd=airflow_env.REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    out = result.stdout
    assert result.returncode == 0, f"demo failed:\n{out[-4000:]}\n{result.stderr[-4000:]}"
    assert "[simulation] settlement simulator on" in out
    assert "5 payouts created" in out
    assert re.search(r"task wait_for_payouts\s+success", out)
    assert len(re.findall(r"po_\w+\s+[\d.]+ EUR\s+paid", out)) == 5
    assert "Report: 5 of 5 payouts paid" in out and "SUCCESS: demo finished in" in out
    assert LOCAL_TEST_KEY not in out + result.stderr
    errors = [line for line in (out + result.stderr).splitlines() if "[error" in line or "Traceback" in line]
    assert not errors, f"a successful run logged errors: {errors}"  # e.g. a link pulling a missing XCom
