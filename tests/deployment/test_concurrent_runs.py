"""Runs that overlap in a real deployment never pay one reference twice.

The scheduler (LocalExecutor, ``max_active_runs`` at Airflow's default) runs every triggered
run of ``tests/deployment/dags/deploy_concurrent_payouts.py`` at once, each task in its own
process, against localstripe behind a proxy with Stripe's idempotency semantics (409 while a
key is in flight, 400 for a key reused with other parameters) that holds every POST 100 ms:

* three runs of one DAG on the same references (one with a logical date, two without): each
  reference is paid once, counted on the server; the runs that lost an item end it
  ``already_paid_by_run``, naming the run that paid it; every run succeeds;
* two DAGs naming one ``reference_scope``, started together: the same.

Each test checks that the runs met at the proxy (409s or key mismatches): without overlap it
would only prove the listing, which the integration tier covers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.deployment import Deployment
from tests.deployment.upstream import instructions, payouts_by_description, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ONE_DAG = "deploy_concurrent_payouts"
SHARED = ("deploy_shared_scope_a", "deploy_shared_scope_b")
N = 120


@pytest.fixture(scope="module")
def deploy(deployment: Deployment) -> Deployment:
    deployment.wait_dags({ONE_DAG, *SHARED})
    for dag_id in (ONE_DAG, *SHARED):
        deployment.unpause(dag_id)
    return deployment


def _contention(deploy: Deployment) -> int:
    stats = deploy.faithful.stats
    return stats["idempotency_in_use"] + stats["idempotency_mismatch"]


def _run_together(
    deploy: Deployment, tmp_path: Path, tag: str, runs: list[tuple[str, str | None]]
) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """Trigger ``runs`` ((dag_id, logical_date)) on one file of N items; wait for all; their results."""
    path = write_jsonl(tmp_path / f"{tag}.jsonl", instructions(tag, N))
    before = _contention(deploy)
    started = [
        (dag_id, deploy.trigger(dag_id, logical_date=date, conf={"instructions_file": path})) for dag_id, date in runs
    ]
    for dag_id, run_id in started:
        deploy.wait_run(dag_id, run_id, timeout=300)
    results = [(d, r, deploy.xcom(d, r, "create_payouts")) for d, r in started]
    return results, _contention(deploy) - before


def _assert_each_reference_paid_once(
    deploy: Deployment, tag: str, results: list[tuple[str, str, dict[str, Any]]], met: int
) -> str:
    paid = payouts_by_description(deploy.stripe_url, tag)
    twice = {d: n for d, n in paid.items() if n > 1}
    assert not twice, f"{tag}: {len(twice)} references paid more than once: {twice}"
    assert len(paid) == N, f"{tag}: {len(paid)} of {N} references paid"
    assert met > 0, f"{tag}: the runs never met at the proxy (no 409 or key mismatch): nothing was raced"

    run_ids = {run_id for _, run_id, _ in results}
    created = sum(r["summary"].get("created", 0) for _, _, r in results)
    assert created == N, f"{tag}: the runs created {created} payouts for {N} references"
    for _, run_id, result in results:
        summary = result["summary"]
        assert summary.get("failed", 0) == 0 and summary.get("duplicate_payouts", 0) == 0, summary
        lost = [r for r in result["results"] if r["outcome"] == "already_paid_by_run"]
        assert all(r["paid_by_run"] in run_ids - {run_id} and r["payout_id"] for r in lost), lost[:3]
        assert summary.get("created", 0) + len(lost) + summary.get("existing", 0) == N, summary
    return ", ".join(
        f"run {n}: {r['summary'].get('created', 0)} created, {r['summary'].get('already_paid_by_run', 0)} already paid"
        for n, (_, _, r) in enumerate(results, 1)
    )


def test_three_runs_of_one_dag_at_once_pay_each_reference_once(
    deploy: Deployment, tmp_path: Path, report: Callable[[str], None]
) -> None:
    runs = [(ONE_DAG, "2026-03-01T00:00:00Z"), (ONE_DAG, None), (ONE_DAG, None)]
    results, met = _run_together(deploy, tmp_path, "concurrent", runs)
    shares = _assert_each_reference_paid_once(deploy, "concurrent", results, met)
    report(f"deployment: 3 overlapping runs on {N} references paid each once ({shares}; {met} key collisions)")


def test_two_dags_sharing_a_reference_scope_at_once_pay_each_reference_once(
    deploy: Deployment, tmp_path: Path, report: Callable[[str], None]
) -> None:
    results, met = _run_together(deploy, tmp_path, "shared-scope", [(SHARED[0], None), (SHARED[1], None)])
    shares = _assert_each_reference_paid_once(deploy, "shared-scope", results, met)
    assert {tuple(r["summary"]["cross_run_protection"]["scope"]) for _, _, r in results} == {("deploy-payroll",)}
    report(f"deployment: 2 DAGs with one reference_scope on {N} references paid each once ({shares}; {met} collisions)")
