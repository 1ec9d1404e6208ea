"""The warehouse example DAGs, run for real with ``dag.test()`` against localstripe behind the test front.

* ``stripe_warehouse``: the batch pays the sample's payouts once, the sensor defers (the
  trigger runs inline) while the simulated bank pays them, the reconciliation writes each
  (manual) payout as one Parquet row, and the changes export lands each payout once, paid;
  the money tasks carry their Stripe Dashboard link.
* ``stripe_report_run``: the report run defers until Stripe (the test front) finishes it,
  then its file is streamed from the files host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from airflow_provider_stripe.testing.settlement import SettlementSimulator
from tests import airflow_env
from tests.airflow.dag_helpers import example_dag, task_states, xcoms
from tests.servers.stripe_reporting import LedgerFront, report_lines, run_ledger_front

SAMPLE = airflow_env.DAGS_FOLDER / "data" / "payouts" / "sample.jsonl"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


@pytest.fixture
def front(
    migrated: None, localstripe_upstream: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[LedgerFront]:
    with run_ledger_front(localstripe_upstream) as server:
        for name, value in connection_env("stripe_default", base_url=server.url).items():
            monkeypatch.setenv(name, value)
        yield server


def _link(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="_link_StripeDashboardLink"
        )
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def test_warehouse_dag(front: LedgerFront, localstripe: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    dag = example_dag("stripe_warehouse")
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=1.0):
        # A manual run has no data interval: the changes window is given, around now.
        now = datetime.now(timezone.utc)
        conf = {
            "instructions_file": str(SAMPLE),
            "warehouse": str(tmp_path / "warehouse"),
            "poll_seconds": 0.5,
            "changes_since": (now - timedelta(minutes=5)).isoformat(),
            "changes_until": (now + timedelta(minutes=5)).isoformat(),
        }
        dag_run = dag.test(logical_date=now, run_conf=conf)
    assert str(dag_run.state) == "success", task_states(dag_run)
    instructions = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    (batch,) = xcoms(dag_run, "create_payouts")
    payout_ids = sorted(r["payout_id"] for r in batch["results"])
    assert len(payout_ids) == len(instructions)

    (recon,) = xcoms(dag_run, "reconcile")
    rows = pq.read_table(recon["path"]).to_pylist()
    assert sorted(r["payout_id"] for r in rows) == payout_ids
    assert {(r["payout_type"], r["itemized"], r["payout_status"]) for r in rows} == {("manual", False, "paid")}
    assert recon["failed_payouts"] == []
    assert sorted(-r["amount"] for r in rows) == sorted(i["amount"] for i in instructions)

    (export,) = xcoms(dag_run, "export_payouts")
    changed = pq.read_table(export["path"]).to_pylist()
    assert sorted(r["id"] for r in changed) == payout_ids  # each payout once
    assert {r["status"] for r in changed} == {"paid"}  # in its latest state
    assert Path(export["path"]).parent == tmp_path / "warehouse" / dag_run.logical_date.strftime("%Y-%m-%d")

    assert _link(dag_run, "create_payouts") == "https://dashboard.stripe.com/test/payouts"
    assert _link(dag_run, "wait_for_payouts") == "https://dashboard.stripe.com/test/payouts"


def test_report_run_dag(front: LedgerFront, tmp_path: Path) -> None:
    now = int(datetime.now(timezone.utc).timestamp())
    front.reporting.add_report_type(
        "balance_change_from_activity.itemized.3", data_available_start=0, data_available_end=now + 3600
    )
    front.reporting.pending_polls = 3
    front.reporting.rows = 500
    dag = example_dag("stripe_report_run")
    day = datetime.fromtimestamp(now, timezone.utc) - timedelta(days=1)
    conf = {
        "interval_start": day.isoformat(),
        "interval_end": (day + timedelta(days=1)).isoformat(),
        "warehouse": str(tmp_path / "warehouse"),
        "poll_seconds": 0.2,
    }
    dag_run = dag.test(logical_date=datetime.now(timezone.utc), run_conf=conf)
    assert str(dag_run.state) == "success", task_states(dag_run)
    (result,) = xcoms(dag_run, "balance_change_report")
    assert Path(result["path"]).read_bytes() == b"".join(report_lines(500))
    (run,) = front.reporting.runs.values()
    assert run["status"] == "succeeded" and result["report_run_id"] == run["id"]
    polls = [r for r in front.records if r.path == f"/v1/reporting/report_runs/{run['id']}"]
    assert len(polls) == 4  # pending x3 in the trigger, then succeeded
