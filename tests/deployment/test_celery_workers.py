"""The deployment with the CeleryExecutor and two Celery workers, driven through the REST API v2.

How users outgrow one machine: Redis is the broker, a database on the same Postgres the result
backend, and two ``airflow celery worker`` processes (2 task slots each, their own hostnames)
run the tasks. One run of ``deploy_celery_payout_chunks`` splits a batch into mapped chunks,
each a :class:`~airflow_provider_stripe.operators.payouts.StripePayoutBatchOperator` task on
the ``stripe_limited`` connection (60 requests a minute, kept in Redis). Then:

* every item is paid exactly once (read back from the local Stripe), the chunk tasks ran on
  BOTH workers (task instance ``hostname``), and each chunk's results file, written by whichever
  worker ran it, names the payouts Stripe holds;
* the upstream never saw more than the limit in any 60 s window, with chunks of both workers
  sending at the same time;
* clearing every chunk after success re-runs them on whichever worker takes them: nobody is
  paid again (what a try paid is found through Stripe and the metadata database, not in a
  worker's memory).

Nothing here assumes one process, except the filesystem: the two workers share this machine's,
which stands in for the storage a multi-machine deployment must share (``file://`` URLs here,
``s3://...`` there): the instructions, the chunk files ``split_batch`` writes on one worker and
the chunks read on another, and the results files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.counting_proxy import max_in_window
from tests.deployment.deployment import LIMIT_PER_MINUTE, Deployment
from tests.deployment.upstream import instructions, list_all, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DAG_ID = "deploy_celery_payout_chunks"
TAG = "celery-chunks"
N = 80
"""More than one minute's limit (60), so the shared limit has to hold the workers back."""
CHUNK = 20
"""Four chunks for four task slots (two workers x 2): all run at once, so both workers take some."""


def _payouts_by_description(stripe_url: str) -> dict[str, list[str]]:
    """The payout ids per description of this module's items (more than one id: paid twice)."""
    found: dict[str, list[str]] = {}
    for payout in list_all(stripe_url, "payouts"):
        if str(payout.get("description") or "").startswith(TAG):
            found.setdefault(payout["description"], []).append(payout["id"])
    return found


def _chunk_tis(deploy: Deployment, run_id: str) -> list[dict[str, Any]]:
    return sorted(
        (t for t in deploy.task_instances(DAG_ID, run_id) if t["task_id"] == "pay_chunk"), key=lambda t: t["map_index"]
    )


def _results_rows(work_dir: Path) -> dict[str, dict[str, Any]]:
    """Every chunk's results file (``results_path``), by reference."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((work_dir / "results").glob("chunk-*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            assert row["reference"] not in rows, f"{row['reference']} in two results files"
            rows[row["reference"]] = row
    return rows


@pytest.fixture(scope="module")
def chunked_run(celery_deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the chunked batch on the Celery deployment: its run id, work directory and duration."""
    deploy = celery_deployment
    deploy.wait_dags({DAG_ID})
    deploy.unpause(DAG_ID)
    shared = tmp_path_factory.mktemp("celery-shared")  # what both workers see: their shared filesystem
    source = write_jsonl(shared / "batch.jsonl", instructions(TAG, N))
    work_dir = shared / "work"
    deploy.limited_proxy.reset()
    started = time.monotonic()
    run_id = deploy.trigger(
        DAG_ID,
        logical_date=None,
        conf={"instructions": Path(source).as_uri(), "work_dir": work_dir.as_uri(), "chunk_size": CHUNK},
    )
    deploy.wait_run(DAG_ID, run_id, timeout=300)
    return {"run_id": run_id, "work_dir": work_dir, "seconds": time.monotonic() - started}


def test_mapped_chunks_run_on_both_workers_and_pay_each_item_once(
    celery_deployment: Deployment, chunked_run: dict[str, Any], report: Callable[[str], None]
) -> None:
    deploy, run_id = celery_deployment, chunked_run["run_id"]
    tis = _chunk_tis(deploy, run_id)
    assert [(t["map_index"], t["state"]) for t in tis] == [(i, "success") for i in range(N // CHUNK)], tis
    hosts = {t["hostname"] for t in tis}
    assert hosts == set(deploy.workers), f"chunks ran on {hosts}, not on both workers {deploy.workers}"

    paid = _payouts_by_description(deploy.stripe_url)
    twice = {d: ids for d, ids in paid.items() if len(ids) > 1}
    assert not twice, f"paid more than once: {twice}"
    assert sorted(paid) == sorted(i["description"] for i in instructions(TAG, N)), f"{len(paid)} of {N} paid"

    rows = _results_rows(chunked_run["work_dir"])
    assert sorted(rows) == sorted(i["reference"] for i in instructions(TAG, N)), "results files miss items"
    assert {ref: row["payout_id"] for ref, row in rows.items()} == {ref: ids[0] for ref, ids in paid.items()}
    for ti in tis:
        summary = deploy.xcom(DAG_ID, run_id, "pay_chunk", ti["map_index"])["summary"]
        assert (summary["total"], summary.get("failed", 0)) == (CHUNK, 0), summary
    per_host = {h: sum(t["hostname"] == h for t in tis) for h in deploy.workers}
    split_on = deploy.task_instance(DAG_ID, run_id, "split_batch")["hostname"]
    assert split_on in deploy.workers
    report(
        f"celery deployment: {N} payouts in {N // CHUNK} mapped chunks (files written on {split_on}), "
        f"chunks per worker {per_host}, "
        f"run {chunked_run['seconds']:.0f}s (shared limit {LIMIT_PER_MINUTE}/min)"
    )


def test_the_redis_rate_limit_holds_across_workers(
    celery_deployment: Deployment, chunked_run: dict[str, Any], report: Callable[[str], None]
) -> None:
    deploy = celery_deployment
    tis = _chunk_tis(deploy, chunked_run["run_id"])
    spans = {h: [(t["start_date"], t["end_date"]) for t in tis if t["hostname"] == h] for h in deploy.workers}
    first, second = spans.values()
    assert any(a[0] < b[1] and b[0] < a[1] for a in first for b in second), f"no chunks at once on both: {spans}"

    times = sorted(a.at for a in deploy.limited_proxy.arrivals())
    assert len(times) >= N, f"only {len(times)} requests reached the proxy for {N} payouts"
    busiest = max_in_window(times, 60.0)
    report(
        f"celery deployment: 2 workers x {len(tis) // 2} chunks, {len(times)} requests over "
        f"{times[-1] - times[0]:.0f}s, busiest 60 s window {busiest} (shared Redis limit {LIMIT_PER_MINUTE}/min)"
    )
    assert busiest <= LIMIT_PER_MINUTE, f"{busiest} requests reached Stripe within 60 s (limit {LIMIT_PER_MINUTE})"
    assert busiest >= LIMIT_PER_MINUTE * 0.9, f"only {busiest} requests in the busiest minute: limit barely used"


def test_cleared_chunks_rerun_on_any_worker_pay_nobody_again(
    celery_deployment: Deployment, chunked_run: dict[str, Any], report: Callable[[str], None]
) -> None:
    deploy, run_id = celery_deployment, chunked_run["run_id"]
    first_hosts = {t["map_index"]: t["hostname"] for t in _chunk_tis(deploy, run_id)}
    deploy.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["pay_chunk"], "only_failed": False},
    )
    deploy.wait_for(
        "the cleared run to be queued again", lambda: deploy.run(DAG_ID, run_id)["state"] != "success", 30, 0.2
    )
    deploy.wait_run(DAG_ID, run_id, timeout=240)

    tis = _chunk_tis(deploy, run_id)
    assert all(t["state"] == "success" and t["try_number"] >= 2 for t in tis), tis
    paid = _payouts_by_description(deploy.stripe_url)
    twice = {d: ids for d, ids in paid.items() if len(ids) > 1}
    assert not twice, f"a cleared chunk paid again: {twice}"
    assert len(paid) == N
    rows = _results_rows(chunked_run["work_dir"])  # rewritten by the second tries
    assert {ref: row["payout_id"] for ref, row in rows.items()} == {ref: ids[0] for ref, ids in paid.items()}
    moved = sum(first_hosts[t["map_index"]] != t["hostname"] for t in tis)
    report(f"celery deployment: cleared {len(tis)} chunks, {moved} re-ran on the other worker, 0 paid again")
