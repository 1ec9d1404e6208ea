"""Batch at scale (issue 20): the batch operator vs a bare pool at N payouts, and listing cost vs history.

Against localstripe through the counting proxy (all on 127.0.0.1), rate limits lifted on both
sides (:func:`benchmarks.env.unlimited_connection`), each run paying references of its own:

1. For each ``--sizes`` N: ``StripePayoutBatchOperator(max_workers=8)`` in ``dag.test()`` vs the
   bare 8-thread pool of :mod:`benchmarks.throughput` (same items, one idempotency key each). Per
   payout time is the span of ``POST /v1/payouts`` at the proxy over N; also our Stripe requests per
   payout, the DAG process's peak RSS, and the set-up time from ``dag.test()``'s start to the first
   ``POST /v1/payouts`` (an upper bound of task start -> first payout).
2. For each ``--history`` H: H earlier payouts of the account (seeded by the bare pool straight to
   localstripe through the proxy), then a batch of ``--probe`` payouts; its ``GET /v1/payouts`` requests and their
   span. The goal is that they do not grow with H.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from benchmarks.dag_worker import install_dags
from benchmarks.env import RESULTS_DIR, prepare

POOL_TARGET = 1.10
SETUP_TARGET_S = 1.0


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _met(kind: str, value: float, first: float | None = None) -> bool:
    """Every row's goal, in one place."""
    if kind == "ratio":
        return value <= POOL_TARGET
    if kind == "setup":
        return value < SETUP_TARGET_S
    return first is not None and value <= first  # listing: no growth with history


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--history", default="1000,10000,70000")
    parser.add_argument("--probe", type=int, default=100)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="airflow-stripe-bench-scale-"))
    install_dags(workdir / "dags")
    home = prepare(workdir / "dags")

    from airflow_provider_stripe.testing.localstripe import flush_localstripe, run_localstripe
    from benchmarks import report, throughput
    from benchmarks.counting_proxy import run_counting_proxy, span
    from benchmarks.dag_worker import DagRunner
    from benchmarks.env import migrate, unlimited_connection
    from benchmarks.workload import dag_env

    tag = uuid.uuid4().hex[:6]
    rows: list[report.Measurement] = []
    with run_localstripe() as url, run_counting_proxy(url) as proxy:
        flush = functools.partial(flush_localstripe, url)
        migrate()
        dags = DagRunner(workdir / "dags", workdir / "dag_runs.log")
        try:
            dags.warm_up(throughput.BATCH_DAG, throughput.warm_up_env(proxy))
            for n in _ints(args.sizes):
                flush()
                proxy.reset()
                throughput.bare_pool(proxy, n, f"pool{n}-{tag}")
                pooled = throughput.payout_creates(proxy)
                flush()
                proxy.reset()
                conn_id = f"stripe_scale_{n}_{tag}"
                result = dags.run(
                    throughput.BATCH_DAG, {**unlimited_connection(conn_id, proxy.url), **dag_env(n, conn_id)}
                )
                throughput.check_run(result, f"batch of {n}")
                batch = throughput.payout_creates(proxy)
                ours_ms, base_ms = span(batch) / n * 1000, span(pooled) / n * 1000
                setup = batch[0] - result["started_monotonic"]
                details = {
                    "payouts": n,
                    "requests_per_payout": proxy.stats["requests"] / n,
                    "peak_rss_mb": result["peak_rss_mb"],
                    "setup_to_first_payout_s": setup,
                    "dag_test_seconds": result["seconds"],
                }
                rows.append(
                    report.Measurement(
                        key=f"batch_scale_{n}",
                        title=f"Batch of {n}: time per payout vs bare pool",
                        ours_label="batch operator, 8 workers",
                        ours=ours_ms,
                        baseline_label="bare 8-thread pool",
                        baseline=base_ms,
                        unit="ms/payout",
                        ratio=ours_ms / base_ms,
                        ratio_text=f"{ours_ms / base_ms:.2f}x; {details['requests_per_payout']:.2f} req/payout, "
                        f"{details['peak_rss_mb']:.0f} MB RSS",
                        target=f"<= {POOL_TARGET:.2f}x the pool's time per payout",
                        met=_met("ratio", ours_ms / base_ms),
                        details=details,
                    )
                )
                rows.append(
                    report.Measurement(
                        key=f"batch_scale_setup_{n}",
                        title=f"Batch of {n}: dag.test() start -> first POST /v1/payouts",
                        ours_label="batch operator",
                        ours=setup,
                        baseline_label="goal",
                        baseline=SETUP_TARGET_S,
                        unit="s",
                        ratio=setup / SETUP_TARGET_S,
                        ratio_text=f"{setup:.2f} s",
                        target=f"< {SETUP_TARGET_S:.0f} s",
                        met=_met("setup", setup),
                        details=details,
                    )
                )
            first: float | None = None
            for h in _ints(args.history):
                flush()
                seed_start = time.monotonic()
                throughput.bare_pool(proxy, h, f"hist{h}-{tag}")
                seed_s = time.monotonic() - seed_start
                proxy.reset()
                conn_id = f"stripe_scale_hist_{h}_{tag}"
                env = {**unlimited_connection(conn_id, proxy.url), **dag_env(args.probe, conn_id)}
                throughput.check_run(dags.run(throughput.BATCH_DAG, env), f"probe after {h}")
                gets = [a.at for a in proxy.arrivals("GET", "/v1/payouts")]
                first = len(gets) if first is None else first
                rows.append(
                    report.Measurement(
                        key=f"batch_scale_listing_{h}",
                        title=f"Listing GETs per try, {h} payouts in the look-back",
                        ours_label=f"batch of {args.probe}",
                        ours=float(len(gets)),
                        baseline_label="at the smallest history",
                        baseline=float(first),
                        unit="requests",
                        ratio=len(gets) / first if first else 0.0,
                        ratio_text=f"{len(gets)} GETs in {span(gets):.2f} s",
                        target="does not grow with history",
                        met=_met("listing", float(len(gets)), first),
                        details={"history": h, "get_span_s": span(gets), "seed_seconds": seed_s},
                    )
                )
        finally:
            dags.close()
    total = time.monotonic() - started
    env_doc = {**report.environment(False), "sizes": args.sizes, "history": args.history, "probe": args.probe}
    report.save_json(rows, env_doc, args.results_dir / "batch_scale.json", total)
    table = report.markdown_table(rows)
    (args.results_dir / "batch_scale.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(f"done in {total:.0f}s", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return 1 if any(m.met is False for m in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
