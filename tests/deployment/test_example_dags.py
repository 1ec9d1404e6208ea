"""Every example DAG in a real deployment: parsed without errors, run scheduled, with a logical date,
and as a manual run without one (``"logical_date": null``), checked upstream in the local Stripe."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tests.deployment.deployment import HELD_PREFIX, HELD_SECONDS, Deployment
from tests.deployment.upstream import instructions, list_all, payouts_by_description, write_jsonl
from tests.servers.localstripe_server import TEST_API_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLES = {
    "stripe_payout_batch",
    "stripe_payouts_mapped",
    "stripe_charge_capture_refund",
    "stripe_daily_export",
    "stripe_payout_events_polled",
    "stripe_payout_events_webhook",
}
TEST_DAGS = {"deploy_payout_batch", "deploy_shared_rate_limit"}
YESTERDAY = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")


@pytest.fixture(scope="module")
def examples(deployment: Deployment) -> Deployment:
    deployment.wait_dags(EXAMPLES | TEST_DAGS)
    return deployment


def test_no_import_errors(examples: Deployment) -> None:
    errors = examples.api("GET", "/importErrors")
    assert errors["total_entries"] == 0, errors["import_errors"]


def test_payout_batch_example(examples: Deployment, tmp_path: Path) -> None:
    dag = "stripe_payout_batch"
    examples.unpause(dag)  # a scheduled run for the latest day starts: no file for it, nothing to pay
    dated = write_jsonl(tmp_path / "dated.jsonl", instructions("ex-batch-dated", 3))
    undated = write_jsonl(tmp_path / "undated.jsonl", instructions("ex-batch-undated", 2))
    runs = {
        "dated": examples.trigger(dag, logical_date=YESTERDAY, conf={"instructions_file": dated, "poll_seconds": 1}),
        "undated": examples.trigger(dag, logical_date=None, conf={"instructions_file": undated, "poll_seconds": 1}),
        "no file": examples.trigger(dag, logical_date=None),
        "missing file": examples.trigger(dag, logical_date=None, conf={"instructions_file": str(tmp_path / "nope")}),
    }
    for label in ("dated", "undated", "no file"):
        examples.wait_run(dag, runs[label], timeout=240)
    examples.wait_run(dag, runs["missing file"], timeout=120, state="failed")
    missing = examples.task_instance(dag, runs["missing file"], "find_instructions")
    assert (missing["state"], missing["try_number"]) == ("failed", 1), "a missing file must not be retried"
    skipped = examples.task_states(dag, runs["no file"])
    assert skipped["create_payouts[-1]"][0] == "skipped", skipped

    scheduled = examples.api("GET", f"/dags/{dag}/dagRuns", params={"run_type": "scheduled"})["dag_runs"]
    assert scheduled, "unpausing created no scheduled run"
    examples.wait_run(dag, scheduled[0]["dag_run_id"], timeout=120)

    for tag, count in (("ex-batch-dated", 3), ("ex-batch-undated", 2)):
        paid = payouts_by_description(examples.stripe_url, tag)
        assert len(paid) == count and set(paid.values()) == {1}, paid
    report = examples.xcom(dag, runs["undated"], "report")
    assert (report["created"], report["paid"]) == (2, 2), report


def test_payout_sensor_defers_to_the_triggerer(examples: Deployment, tmp_path: Path) -> None:
    """Payouts still pending at the sensor's first poke: it defers, the triggerer polls, the task resumes."""
    dag = "stripe_payout_batch"
    examples.unpause(dag)
    path = write_jsonl(tmp_path / "held.jsonl", instructions(f"{HELD_PREFIX}-sensor", 2))
    run_id = examples.trigger(dag, logical_date=None, conf={"instructions_file": path, "poll_seconds": 2})
    seen = examples.wait_for(
        "the payout sensor to be deferred",
        lambda: (
            (ti := examples.task_instance(dag, run_id, "wait_for_payouts"))["state"] in {"deferred", "success"} and ti
        ),
        timeout=HELD_SECONDS + 60,
    )
    assert seen["state"] == "deferred", f"the sensor never deferred (payouts settled before its first poke?): {seen}"
    examples.wait_run(dag, run_id, timeout=HELD_SECONDS + 120)
    sensed = examples.task_instance(dag, run_id, "wait_for_payouts")
    assert (sensed["state"], sensed["try_number"]) == ("success", 1), sensed
    paid = payouts_by_description(examples.stripe_url, f"{HELD_PREFIX}-sensor")
    assert len(paid) == 2 and set(paid.values()) == {1}, paid


def test_mapped_payouts_example(examples: Deployment, tmp_path: Path) -> None:
    dag = "stripe_payouts_mapped"
    examples.unpause(dag)
    north = write_jsonl(tmp_path / "north.jsonl", instructions("ex-mapped-north", 2))
    south = write_jsonl(tmp_path / "south.jsonl", instructions("ex-mapped-south", 3))
    bonus = [{"reference": "ex-mapped-bonus", "amount": 2500, "description": "ex-mapped-bonus"}]
    dated = examples.trigger(dag, logical_date=YESTERDAY, conf={"region_files": [north, south], "bonuses": bonus})
    undated = examples.trigger(dag, logical_date=None)  # no files for today: nothing mapped, nothing paid
    examples.wait_run(dag, dated, timeout=240)
    examples.wait_run(dag, undated, timeout=240)
    assert sorted(payouts_by_description(examples.stripe_url, "ex-mapped").values()) == [1] * 6


def test_charge_example(examples: Deployment) -> None:
    dag = "stripe_charge_capture_refund"
    examples.unpause(dag)
    before = {c["id"] for c in list_all(examples.stripe_url, "charges")}
    runs = [examples.trigger(dag, logical_date=YESTERDAY), examples.trigger(dag, logical_date=None)]
    for run_id in runs:
        examples.wait_run(dag, run_id, timeout=240)
    charges = [c for c in list_all(examples.stripe_url, "charges") if c["id"] not in before]
    assert len(charges) == 4, charges
    assert all(c["captured"] and c["amount_refunded"] == 500 for c in charges), charges


def test_daily_export_example(examples: Deployment, tmp_path: Path) -> None:
    dag = "stripe_daily_export"
    examples.unpause(dag)
    conf = {"export_dir": str(tmp_path)}
    runs = [
        examples.trigger(dag, logical_date=YESTERDAY, conf=conf),
        examples.trigger(dag, logical_date=None, conf=conf),
    ]
    for run_id in runs:
        examples.wait_run(dag, run_id, timeout=240)
    # the manual run without a logical date exported the last complete day before it was triggered
    day = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert (tmp_path / "payouts" / f"{day}.jsonl").is_file(), sorted(tmp_path.rglob("*"))
    assert (tmp_path / "charges" / f"{day}.jsonl").is_file(), sorted(tmp_path.rglob("*"))


def test_event_examples_run_manually(examples: Deployment) -> None:
    for dag in ("stripe_payout_events_webhook", "stripe_payout_events_polled"):
        examples.unpause(dag)
        run_id = examples.trigger(dag, logical_date=None)
        examples.wait_run(dag, run_id, timeout=180)
        assert examples.xcom(dag, run_id, "reconcile_payouts") == []


def test_upstream_is_local(examples: Deployment) -> None:
    """Sanity: the deployment's Stripe is the local server (answers a test key)."""
    assert requests.get(f"{examples.stripe_url}/v1/balance", auth=(TEST_API_KEY, ""), timeout=10).ok
