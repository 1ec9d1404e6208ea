"""One payout batch split into mapped chunks, each chunk a batch task: how a batch spreads over workers.

``split_batch`` reads the run's ``instructions`` (a JSON Lines file URL) and writes
``chunk_size`` items per file under ``<work_dir>/chunks/``; ``pay_chunk`` maps
:class:`~airflow_provider_stripe.operators.payouts.StripePayoutBatchOperator` over those files
and writes each chunk's per-item results to ``<work_dir>/results/chunk-<map index>.jsonl``.
With the CeleryExecutor the split and each chunk may run on different workers, so
``instructions`` and ``work_dir`` must be storage every worker sees: ``file://`` on a shared
filesystem (the deployment tier: its workers share one machine) or ``s3://...`` and the like
(``ObjectStoragePath``) on separate machines.

Each chunk's items get idempotency keys from the run, the task and its map index, and carry the
run and their reference in metadata, so a chunk retried on another worker finds what it paid.
``stripe_limited`` keeps its 60-a-minute limit in Redis: all chunks, on every worker, share it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator


@task
def split_batch(**context: Any) -> list[str]:
    """The run's instructions written as chunk files under ``<work_dir>/chunks/``; their URLs."""
    from airflow.sdk import ObjectStoragePath

    params = context["params"]
    with ObjectStoragePath(params["instructions"]).open("r", encoding="utf-8") as lines:
        items = [json.loads(line) for line in lines if line.strip()]
    size = int(params["chunk_size"])
    chunks_dir = ObjectStoragePath(params["work_dir"]) / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    urls = []
    for number, start in enumerate(range(0, len(items), size)):
        chunk = chunks_dir / f"chunk-{number:03d}.jsonl"
        chunk.write_text("".join(json.dumps(item) + "\n" for item in items[start : start + size]))
        urls.append(str(chunk))
    return urls


with DAG(
    dag_id="deploy_celery_payout_chunks",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "instructions": Param("", type="string"),
        "work_dir": Param("", type="string"),
        "chunk_size": Param(20, type="integer", minimum=1),
    },
    tags=["deployment-tests"],
):
    StripePayoutBatchOperator.partial(
        task_id="pay_chunk",
        stripe_conn_id="stripe_limited",
        max_workers=2,
        results_path="{{ params.work_dir }}/results/chunk-{{ ti.map_index }}.jsonl",
    ).expand(payouts=split_batch())
