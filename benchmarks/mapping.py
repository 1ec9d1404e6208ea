"""Batch vs dynamic task mapping: N payouts as one batch task vs one mapped task per payout.

Both DAGs (``benchmarks/dags/``) pay the same items through ``dag.test()`` -- Airflow's
real task runner, in one process -- behind the counting proxy, so besides the wall time
the report shows how many Stripe requests each made (every payout task lists the run's
payouts before creating, to find what an earlier try created).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.counting_proxy import CountingProxy
from benchmarks.dag_worker import DagRunner
from benchmarks.env import unlimited_connection
from benchmarks.report import Measurement
from benchmarks.throughput import BATCH_DAG, WORKERS, check_run
from benchmarks.workload import dag_env

MAPPED_DAG = "bench_payouts_mapped"


def run(proxy: CountingProxy, flush: Any, dags: DagRunner, *, quick: bool) -> list[Measurement]:
    count = 50 if quick else 200
    seconds: dict[str, float] = {}
    details: dict[str, Any] = {"payouts": count}
    for dag_id in (BATCH_DAG, MAPPED_DAG):
        conn_id = f"stripe_bench_{dag_id}"
        flush()
        proxy.reset()
        result = dags.run(dag_id, {**unlimited_connection(conn_id, proxy.url), **dag_env(count, conn_id, WORKERS)})
        check_run(result, f"{dag_id} run")
        seconds[dag_id] = result["seconds"]
        requests = Counter(f"{a.method} {a.path}" for a in proxy.arrivals())
        details[dag_id] = {
            "dag_test_seconds": result["seconds"],
            "task_states": result["task_states"],
            "stripe_requests": sum(requests.values()),
            "payout_creates": requests["POST /v1/payouts"],
            "payout_list_pages": requests["GET /v1/payouts"],
        }
    ratio = seconds[MAPPED_DAG] / seconds[BATCH_DAG]
    return [
        Measurement(
            key="batch_vs_mapped",
            title=f"{count} payouts: one batch task vs mapped tasks (dag.test)",
            ours_label="1 batch task",
            ours=seconds[BATCH_DAG],
            baseline_label=f"{count} mapped tasks",
            baseline=seconds[MAPPED_DAG],
            unit="s",
            ratio=ratio,
            ratio_text=f"mapped takes {ratio:.1f}x as long",
            target="report the ratio",
            met=None,
            details=details,
        )
    ]
