"""A payout batch SIGKILLed mid-way, then run again: exactly N payouts, none twice.

The batch runs in a separate process, as Airflow would run it: ``dag.test()`` of the
mapped payouts example DAG (one regional file of N items) against localstripe. Once some
payouts exist -- seen by polling localstripe -- the whole process group gets SIGKILL: no
``finally``, no flush, requests possibly in flight. The same logical date is then run
again in a fresh process (``dag.test`` replaces the DagRun, so the state store is empty
and the rerun must rely on its keys and on listing the run's payouts). Every reference
must end up with exactly one payout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.payouts.keys import REFERENCE_METADATA_KEY
from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from tests import airflow_env
from tests.airflow.subprocess_env import installed_env, neutral_cwd
from tests.integration.payout_helpers import eur_items, list_all_payouts, write_jsonl
from tests.servers.localstripe_server import clear_request_log, request_log

ITEMS = 200
KILL_AFTER = 40
LOGICAL_DATE = "2026-04-01T00:00:00+00:00"

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

_RUN_DAG = """
import json, sys
from datetime import datetime
from airflow_provider_stripe.compat import dagbag_module

DagBag = dagbag_module().DagBag
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

dag = DagBag(dag_folder=sys.argv[1]).get_dag("stripe_payouts_mapped")
run = dag.test(logical_date=datetime.fromisoformat(sys.argv[2]), run_conf=json.loads(sys.argv[3]))
with create_session() as session:
    rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids="pay_regions",
                                              key="return_value", map_indexes=None))
    summaries = [XComModel.deserialize_value(r)["summary"] for r in rows]
print("RESULT " + json.dumps({"state": str(run.state), "summaries": summaries}), flush=True)
"""


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


def _start(localstripe: str, conf: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    env = installed_env()
    # Slow enough (25 payouts/s) for the kill to land mid-batch.
    extra = {"rate_limit_per_minute": 1500}
    env.update(airflow_env.rate_limit_caps_env(1500, STRIPE_CONTRACT.rate_limit.rph))
    conn = json.loads(connection_env("stripe_default", base_url=localstripe)["AIRFLOW_CONN_STRIPE_DEFAULT"])
    conn["extra"].update(extra)
    env["AIRFLOW_CONN_STRIPE_DEFAULT"] = json.dumps(conn)
    dag_file = str(airflow_env.DAGS_FOLDER / "stripe_payouts_mapped.py")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _RUN_DAG, dag_file, LOGICAL_DATE, json.dumps(conf)],
            env=env,
            cwd=neutral_cwd(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )


def _count(localstripe_upstream: str) -> int:
    resp = requests.get(f"{localstripe_upstream}/v1/payouts", params={"limit": 1}, auth=(LOCAL_TEST_KEY, ""), timeout=5)
    resp.raise_for_status()
    return int(resp.json()["total_count"])  # localstripe's own (non-Stripe) field


def test_sigkill_mid_batch_then_rerun_pays_each_item_exactly_once(
    migrated: None, localstripe: str, localstripe_upstream: str, tmp_path: Path, report: Callable[[str], None]
) -> None:
    conf = {"region_files": [write_jsonl(tmp_path / "north.jsonl", eur_items(ITEMS, "north"))], "bonuses": []}

    started = time.monotonic()
    victim = _start(localstripe, conf, tmp_path / "killed.log")
    try:
        deadline = time.monotonic() + 120
        while _count(localstripe_upstream) < KILL_AFTER:
            assert victim.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the batch never got going"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    time.sleep(0.5)  # let localstripe finish requests that were in flight at the kill
    at_kill = _count(localstripe_upstream)
    killed_after = time.monotonic() - started
    assert 0 < at_kill < ITEMS, f"the kill did not land mid-batch ({at_kill} payouts)"

    started = time.monotonic()
    clear_request_log(localstripe)
    rerun = _start(localstripe, conf, tmp_path / "rerun.log")
    rerun.wait(timeout=180)
    output = (tmp_path / "rerun.log").read_text()
    rerun_seconds = time.monotonic() - started
    line = next((ln for ln in output.splitlines() if ln.startswith("RESULT ")), None)
    assert rerun.returncode == 0 and line is not None, output[-4000:]
    result = json.loads(line[len("RESULT ") :])
    assert result["state"] == "success", output[-4000:]
    (summary,) = result["summaries"]
    # The rerun found the killed run's payouts with Stripe's query: created[gte], newest first.
    listings = [r for r in request_log(localstripe) if (r.method, r.path) == ("GET", "/v1/payouts")]
    assert listings and all("created[gte]" in r.params and r.status == 200 for r in listings), listings

    payouts = list_all_payouts(localstripe, LOCAL_TEST_KEY)
    per_reference = Counter(p["metadata"][REFERENCE_METADATA_KEY] for p in payouts)
    report(
        f"SIGKILL after {killed_after:.1f} s with {at_kill} of {ITEMS} payouts made; rerun in {rerun_seconds:.1f} s: "
        f"{summary.get('existing', 0)} found, {summary.get('created', 0)} created; {len(payouts)} payouts in total"
    )
    assert len(payouts) == ITEMS and set(per_reference.values()) == {1}
    assert sorted(per_reference) == sorted(f"north-{n}" for n in range(ITEMS))
    # Requests in flight at the kill may have landed after the count: found, not repaid.
    assert summary["existing"] >= at_kill and summary["existing"] + summary["created"] == ITEMS
