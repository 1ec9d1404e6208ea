"""Money safety in a real deployment, driven through the REST API v2 (plus one SIGKILL):

* clearing the batch task while it runs, and again after it succeeded, pays nobody twice; a
  second run triggered on the same file pays nobody again (cross-run protection: every item
  ``already_paid_by_run`` with the first run's id);
* SIGKILL of the task process mid-batch: the scheduler's retry finishes with exactly N payouts,
  and the run-level results count what the killed first try created;
* signed webhooks posted to the API server trigger the asset-scheduled DAG once per event;
  duplicates and bad signatures trigger nothing;
* two task processes on one connection whose limit lives in Redis: the upstream never sees more
  than the limit in any 60 s window.

The batch DAG (``tests/deployment/dags/deploy_payout_batch.py``) reaches the local Stripe through
a proxy adding latency, so a few hundred payouts take long enough to be interrupted.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_stripe.events.signature import SIGNATURE_HEADER, sign_payload
from benchmarks.counting_proxy import max_in_window
from tests.deployment.deployment import LIMIT_PER_MINUTE, WEBHOOK_SECRET, Deployment
from tests.deployment.upstream import instructions, payouts_by_description, write_jsonl
from tests.servers.localstripe_server import TEST_API_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BATCH_DAG = "deploy_payout_batch"
N = 200


@pytest.fixture(scope="module")
def deploy(deployment: Deployment) -> Deployment:
    deployment.wait_dags({BATCH_DAG, "deploy_shared_rate_limit", "stripe_payout_events_webhook"})
    for dag in (BATCH_DAG, "deploy_shared_rate_limit", "stripe_payout_events_webhook"):
        deployment.unpause(dag)
    return deployment


def start_batch(deploy: Deployment, tmp_path: Path, tag: str) -> str:
    """Trigger the slow batch on N fresh instructions; return once some (not all) payouts exist."""
    path = write_jsonl(tmp_path / f"{tag}.jsonl", instructions(tag, N))
    run_id = deploy.trigger(BATCH_DAG, logical_date=None, conf={"instructions_file": path})
    deploy.wait_for(
        f"{tag}: the batch to be under way",
        lambda: sum(payouts_by_description(deploy.stripe_url, tag).values()) >= 20,
        timeout=180,
        interval=0.3,
    )
    made = sum(payouts_by_description(deploy.stripe_url, tag).values())
    assert made < N, f"{tag}: the batch finished ({made}) before it could be interrupted: slow the proxy down"
    return run_id


def assert_paid_once(deploy: Deployment, tag: str) -> None:
    paid = payouts_by_description(deploy.stripe_url, tag)
    twice = {d: n for d, n in paid.items() if n > 1}
    assert not twice, f"{tag}: paid more than once: {twice}"
    assert len(paid) == N, f"{tag}: {len(paid)} of {N} items paid"


def clear(deploy: Deployment, run_id: str) -> None:
    deploy.api(
        "POST",
        f"/dags/{BATCH_DAG}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["create_payouts"], "only_failed": False},
    )


def test_clear_mid_run_and_after_success_pays_nobody_twice(deploy: Deployment, tmp_path: Path) -> None:
    run_id = start_batch(deploy, tmp_path, "cleared")
    clear(deploy, run_id)
    deploy.wait_run(BATCH_DAG, run_id, timeout=300)
    assert_paid_once(deploy, "cleared")
    assert deploy.task_instance(BATCH_DAG, run_id, "create_payouts")["try_number"] >= 2, "the clear did not restart it"

    clear(deploy, run_id)  # after success: the re-run finds every payout and creates none
    deploy.wait_for(
        "the cleared run to be queued again", lambda: deploy.run(BATCH_DAG, run_id)["state"] != "success", 30, 0.2
    )
    deploy.wait_run(BATCH_DAG, run_id, timeout=300)
    assert_paid_once(deploy, "cleared")
    summary = deploy.xcom(BATCH_DAG, run_id, "create_payouts")["summary"]
    assert (summary.get("created", 0), summary.get("existing")) == (0, N), summary
    run_level = summary["this_run"]
    assert run_level["paid"] == N and run_level["found"] == N, run_level
    assert sum(run_level["created_by_try"].values()) == N and "earlier" not in run_level["created_by_try"], run_level

    # Triggered again (not cleared) on the same file: another run, which pays nobody again.
    second = deploy.trigger(BATCH_DAG, logical_date=None, conf={"instructions_file": str(tmp_path / "cleared.jsonl")})
    deploy.wait_run(BATCH_DAG, second, timeout=300)
    assert_paid_once(deploy, "cleared")
    again = deploy.xcom(BATCH_DAG, second, "create_payouts")
    assert again["summary"].get("created", 0) == 0 and again["summary"]["already_paid_by_run"] == N, again["summary"]
    assert again["summary"]["this_run"]["already_paid_by_run"] == {run_id: N}


def test_sigkill_mid_batch_then_retry_pays_exactly_n(deploy: Deployment, tmp_path: Path) -> None:
    run_id = start_batch(deploy, tmp_path, "killed")
    ti = deploy.task_instance(BATCH_DAG, run_id, "create_payouts")
    assert ti["state"] == "running" and ti["pid"], ti
    before_kill = sum(payouts_by_description(deploy.stripe_url, "killed").values())
    os.kill(int(ti["pid"]), signal.SIGKILL)  # the task process, as the OOM killer would
    deploy.wait_run(BATCH_DAG, run_id, timeout=300)
    assert_paid_once(deploy, "killed")
    last_try = deploy.task_instance(BATCH_DAG, run_id, "create_payouts")["try_number"]
    assert last_try >= 2

    # The run-level results tell what the run did, not just the last try: the killed first try
    # created at least what was seen before the kill, the retry the rest.
    summary = deploy.xcom(BATCH_DAG, run_id, "create_payouts")["summary"]
    by_try = summary["this_run"]["created_by_try"]
    assert summary["this_run"]["paid"] == N and sum(by_try.values()) == N, summary
    assert by_try.get("1", 0) >= before_kill, (before_kill, by_try)
    assert set(by_try) <= {str(n) for n in range(1, last_try + 1)}, by_try
    assert summary.get("created", 0) == by_try.get(str(last_try), 0) and summary["existing"] == N - summary.get(
        "created", 0
    ), summary


def paid_payout_event(stripe_url: str) -> dict[str, Any]:
    """A payout created paid in the local Stripe; its real ``payout.paid`` event."""
    auth = (TEST_API_KEY, "")
    payout = requests.post(
        f"{stripe_url}/v1/payouts",
        data={"amount": 700, "currency": "eur", "status": "paid", "description": "webhook-test"},
        auth=auth,
        timeout=10,
    ).json()
    events = requests.get(f"{stripe_url}/v1/events", params={"type": "payout.paid"}, auth=auth, timeout=10).json()
    return next(e for e in events["data"] if e["data"]["object"]["id"] == payout["id"])


def test_signed_webhooks_trigger_the_asset_dag_once_per_event(deploy: Deployment) -> None:
    dag = "stripe_payout_events_webhook"
    url = f"{deploy.config.api_url}/stripe/webhooks/stripe_default"

    def post(body: bytes, signature: str | None) -> requests.Response:
        headers = {"Content-Type": "application/json", **({SIGNATURE_HEADER: signature} if signature else {})}
        return requests.post(url, data=body, headers=headers, timeout=30)

    def asset_runs() -> list[dict[str, Any]]:
        runs = deploy.api("GET", f"/dags/{dag}/dagRuns", params={"run_type": "asset_triggered", "limit": 100})
        return list(runs["dag_runs"])

    before = len(asset_runs())
    for n in (1, 2):
        event = paid_payout_event(deploy.stripe_url)
        body = json.dumps(event).encode()
        first, again = post(body, sign_payload(body, WEBHOOK_SECRET)), post(body, sign_payload(body, WEBHOOK_SECRET))
        assert (first.status_code, first.json()["status"]) == (200, "recorded"), first.text
        assert (again.status_code, again.json()["status"]) == (200, "duplicate"), again.text
        for bad in (None, sign_payload(body, "whsec_NotTheSecret"), sign_payload(body.replace(b"700", b"900"), "x")):
            assert post(body, bad).status_code == 400
        deploy.wait_for(f"asset-triggered run #{n}", lambda n=n: len(asset_runs()) >= before + n, timeout=120)
    time.sleep(6)  # a few scheduler loops: duplicates or refusals would show up as extra runs by now
    runs = asset_runs()
    assert len(runs) == before + 2, runs
    for run in runs[before:]:
        finished = deploy.wait_run(dag, run["dag_run_id"], timeout=180)
        reconciled = deploy.xcom(dag, finished["dag_run_id"], "reconcile_payouts")
        assert [r["confirmed"] for r in reconciled] == [True], reconciled


def test_events_sent_at_once_to_two_api_server_workers_are_recorded_once(deploy: Deployment) -> None:
    """De-duplication holds across api-server processes (the database decides, not a process lock).

    150 signed events, each sent 4 times at once by 40 senders to an api-server with two workers.
    """
    stamp = int(time.time())
    bodies = [
        json.dumps(
            {
                "id": f"evt_dedup{stamp}{i:04d}",
                "object": "event",
                "type": "payout.paid",
                "created": stamp,
                "livemode": False,
                "data": {"object": {"id": f"po_dedup{i:04d}", "object": "payout", "status": "paid"}},
            }
        ).encode()
        for i in range(150)
    ]
    with deploy.extra_api_server(workers=2) as url:
        endpoint = f"{url}/stripe/webhooks/stripe_default"

        def send(body: bytes) -> str:
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_payload(body, WEBHOOK_SECRET)}
            resp = requests.post(endpoint, data=body, headers=headers, timeout=60)
            assert resp.status_code == 200, resp.text
            return str(resp.json()["status"])

        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            statuses = collections.Counter(pool.map(send, [b for b in bodies for _ in range(4)]))
    assert statuses == {"recorded": 150, "duplicate": 450}, statuses


def test_two_task_processes_share_the_redis_rate_limit(
    deploy: Deployment, tmp_path: Path, report: Callable[[str], None]
) -> None:
    proxy = deploy.limited_proxy
    proxy.reset()
    per_task = 45  # 90 payouts for a limit of 60 a minute: the second minute is needed
    conf = {
        name: write_jsonl(tmp_path / f"{name}.jsonl", instructions(f"limited-{name}", per_task))
        for name in ("first", "second")
    }
    run_id = deploy.trigger("deploy_shared_rate_limit", logical_date=None, conf=conf)
    deploy.wait_run("deploy_shared_rate_limit", run_id, timeout=300)

    tis = deploy.task_instances("deploy_shared_rate_limit", run_id)
    spans = sorted((t["start_date"], t["end_date"]) for t in tis)
    assert spans[1][0] < spans[0][1], f"the two tasks did not run at the same time: {spans}"
    times = sorted(a.at for a in proxy.arrivals())
    assert len(times) >= 2 * per_task
    busiest = max_in_window(times, 60.0)
    assert busiest <= LIMIT_PER_MINUTE, f"{busiest} requests reached Stripe within 60 s (limit {LIMIT_PER_MINUTE})"
    report(
        f"deployment: 2 task processes, {len(times)} requests over {times[-1] - times[0]:.0f}s, busiest 60 s window "
        f"{busiest} (shared Redis limit {LIMIT_PER_MINUTE}/min)"
    )
    assert busiest >= LIMIT_PER_MINUTE * 0.9, f"only {busiest} requests in the busiest minute: limit barely used"
    for name in ("first", "second"):
        assert sorted(payouts_by_description(deploy.stripe_url, f"limited-{name}").values()) == [1] * per_task
