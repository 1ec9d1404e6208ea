"""``python -m benchmarks.deployment [--quick]``: measurements in a real Airflow deployment.

The deployment is the one the test tier starts (:mod:`tests.deployment.deployment`: Postgres,
Redis, api-server, scheduler with LocalExecutor, dag-processor, triggerer, localstripe and
counting proxies, all on 127.0.0.1). Measured side by side in one run:

* **Requests per payout created**: the batch DAG through the counting proxy, without faults and
  with 10% of responses lost after Stripe created the payout (the retry must find it).
* **Webhook endpoint under load**: signed ``payout.paid`` events from concurrent senders, a
  share of them sent twice; every distinct event must be recorded exactly once (asset events
  read back through the REST API); p50/p99 latency and events/s, with the deployment's
  api-server (1 worker) and with a second api-server started with ``--workers 2``.
* **What racing runs cost**: 1, 2 and 3 runs of one batch DAG on the same N references started
  together (``deploy_concurrent_payouts``, through the proxy with Stripe's idempotency semantics,
  every POST held 100 ms): each reference must be paid once; the runs' wall time and requests per
  payout against one run alone.
* **Batch vs mapped under the real scheduler**: N payouts in one batch task against one
  mapped task per payout (``deploy_payout_batch`` / ``deploy_payouts_mapped``), run wall time.

Results: ``benchmarks/results/deployment[-quick].{json,md}``. Not a test: nothing is timed in CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from benchmarks import report
from benchmarks.env import RESULTS_DIR
from tests.deployment.deployment import WEBHOOK_SECRET, Deployment, run_deployment
from tests.deployment.upstream import instructions, payouts_by_description, write_jsonl
from tests.servers.fault_proxy import FaultKind, FaultPlan

BATCH_DAG, MAPPED_DAG, WEBHOOK_DAG = "deploy_payout_batch", "deploy_payouts_mapped", "stripe_payout_events_webhook"
CONCURRENT_DAG = "deploy_concurrent_payouts"
SENDERS = 20
SECTIONS = ("requests", "concurrent", "webhooks", "mapping")


def _run_dag(d: Deployment, dag: str, path: str, timeout: float) -> tuple[float, dict[str, Any]]:
    """Trigger ``dag`` on an instructions file; (seconds from the run's start to its end, the run)."""
    run_id = d.trigger(dag, logical_date=None, conf={"instructions_file": path})
    run = d.wait_run(dag, run_id, timeout=timeout)
    took = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
    return took, run


def _paid_once(d: Deployment, tag: str, n: int) -> tuple[bool, Counter[str]]:
    """Whether the ``n`` references of run ``tag`` were each paid once at Stripe, and the payouts per reference."""
    paid = payouts_by_description(d.stripe_url, tag)
    return len(paid) == n and set(paid.values()) == {1}, paid


def requests_per_payout(d: Deployment, workdir: Path, n: int) -> list[report.Measurement]:
    rows: list[report.Measurement] = []
    for label, plan in (
        ("no faults", FaultPlan()),
        ("10% lost responses", FaultPlan(rates={FaultKind.LOST_RESPONSE: 0.10}, methods=frozenset({"POST"}))),
    ):
        tag = f"bench-requests-{len(rows)}"
        d.proxy.set_plan(plan, seed=7)
        d.proxy.reset()
        _run_dag(d, BATCH_DAG, write_jsonl(workdir / f"{tag}.jsonl", instructions(tag, n)), timeout=900)
        once, paid = _paid_once(d, tag, n)
        arrivals = d.proxy.arrivals()
        posts = sum(1 for a in arrivals if a.method == "POST")
        per = len(arrivals) / n
        rows.append(
            report.Measurement(
                key=f"requests_per_payout_{len(rows)}",
                title=f"Requests per payout created, batch of {n}, {label} (deployment)",
                ours_label=f"{len(arrivals)} requests ({posts} POST) for {n} payouts, each paid once",
                ours=per,
                baseline_label="one POST per payout",
                baseline=1.0,
                unit="req/payout",
                ratio=per,
                ratio_text=f"{per:.2f} requests per payout",
                target="1.00 + listing pages (no faults)" if not plan.rates else "every payout exactly once",
                met=once and (per <= 1.0 + 0.05 if not plan.rates else True),
                details={
                    "requests": len(arrivals),
                    "posts": posts,
                    "stats": d.proxy.stats,
                    "paid_once": once,
                    "most_paid": paid.most_common(3),
                },
            )
        )
    d.proxy.set_plan(FaultPlan())
    return rows


def racing_runs(d: Deployment, workdir: Path, n: int) -> list[report.Measurement]:
    """``k`` runs of one batch DAG on the same ``n`` references at once: k = 1 (the baseline, after one
    unmeasured run that pays the DAG's first parse and task start-up), 2, 3."""
    alone: tuple[float, float] | None = None
    rows: list[report.Measurement] = []
    for i, k in enumerate((1, 1, 2, 3)):
        tag = f"bench-racing-{i}"
        path = write_jsonl(workdir / f"{tag}.jsonl", instructions(tag, n))
        d.faithful.reset_stats()
        before = len(d.faithful.records)
        run_ids = [d.trigger(CONCURRENT_DAG, logical_date=None, conf={"instructions_file": path}) for _ in range(k)]
        runs = [d.wait_run(CONCURRENT_DAG, run_id, timeout=900) for run_id in run_ids]
        wall = (
            max(datetime.fromisoformat(r["end_date"]) for r in runs)
            - min(datetime.fromisoformat(r["start_date"]) for r in runs)
        ).total_seconds()
        once, _ = _paid_once(d, tag, n)
        stats = d.faithful.stats
        per = (len(d.faithful.records) - before) / n
        if i < 2:
            alone = (wall, per) if i == 1 else None
            continue
        assert alone is not None
        ratio = wall / alone[0]
        rows.append(
            report.Measurement(
                key=f"racing_runs_{k}",
                title=f"{k} runs of one batch DAG on the same {n} references at once (deployment)",
                ours_label=f"{k} racing runs: {per:.2f} requests per payout, each reference paid once: {once}",
                ours=wall,
                baseline_label=f"1 run alone: {alone[1]:.2f} requests per payout",
                baseline=alone[0],
                unit="s",
                ratio=ratio,
                ratio_text=f"{ratio:.2f}x one run's wall time, {per:.2f} requests per payout (alone: {alone[1]:.2f}); "
                f"{stats['idempotency_in_use']} in-flight 409s, {stats['idempotency_mismatch']} key mismatches",
                target="each reference paid once",
                met=once and all(r["state"] == "success" for r in runs),
                details={"requests_per_payout": per, "alone_requests_per_payout": alone[1], "stats": stats},
            )
        )
    return rows


def _event(i: int) -> bytes:
    """A signed-able ``payout.paid`` event (synthetic: the endpoint verifies the signature, not the payout)."""
    event = {
        "id": f"evt_bench{i:06d}{random.randrange(10**6):06d}",
        "object": "event",
        "type": "payout.paid",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": {"id": f"po_bench{i:06d}", "object": "payout", "status": "paid"}},
    }
    return json.dumps(event).encode()


def _asset_event_counts(d: Deployment) -> Counter[str]:
    """How many asset events the deployment holds per Stripe event id (REST API, paginated)."""
    counts: Counter[str] = Counter()
    offset = 0
    while True:
        page = d.api("GET", "/assets/events", params={"limit": 100, "offset": offset})
        for row in page["asset_events"]:
            event_id = ((row.get("extra") or {}).get("payload") or {}).get("event_id")
            if event_id:
                counts[event_id] += 1
        offset += len(page["asset_events"])
        if not page["asset_events"] or offset >= page["total_entries"]:
            return counts


def webhooks(d: Deployment, events: int, workers: int, duplicate_share: float = 0.05) -> report.Measurement:
    from airflow_provider_stripe.events.signature import SIGNATURE_HEADER, sign_payload

    distinct = int(events * (1 - duplicate_share))
    bodies = [_event(i) for i in range(distinct)]
    sends = bodies + random.Random(3).sample(bodies, events - distinct)
    random.Random(5).shuffle(sends)
    before = _asset_event_counts(d)
    with d.extra_api_server(workers) if workers > 1 else contextlib.nullcontext(d.config.api_url) as url:
        endpoint = f"{url}/stripe/webhooks/stripe_default"
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=SENDERS))

        def send(body: bytes) -> tuple[float, int]:
            started = time.perf_counter()
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_payload(body, WEBHOOK_SECRET)}
            resp = session.post(endpoint, data=body, headers=headers, timeout=60)
            return time.perf_counter() - started, resp.status_code

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
            answers = list(pool.map(send, sends))
        elapsed = time.perf_counter() - started
    statuses = Counter(status for _, status in answers)
    latencies = sorted(t for t, _ in answers)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
    after = _asset_event_counts(d)
    new = after - before
    ids = [json.loads(b)["id"] for b in bodies]
    twice = sum(1 for i in ids if new[i] > 1)
    missing = sum(1 for i in ids if new[i] == 0)
    rate = events / elapsed
    return report.Measurement(
        key=f"webhooks_{workers}_workers",
        title=f"Webhook endpoint, {events} signed events, {SENDERS} senders, 5% dupes, api-server --workers {workers}",
        ours_label=f"events/s; p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; {missing} lost, {twice} twice",
        ours=rate,
        baseline_label="distinct events sent",
        baseline=float(distinct),
        unit="",
        ratio=rate,
        ratio_text=f"{rate:.0f} events/s; {distinct - missing - twice} of {distinct} recorded exactly once",
        target="every distinct event recorded exactly once",
        met=missing == 0 and twice == 0,
        details={"statuses": dict(statuses), "p50_s": p50, "p99_s": p99, "twice": twice, "missing": missing},
    )


def batch_vs_mapped(d: Deployment, workdir: Path, n: int) -> report.Measurement:
    d.proxy.set_plan(FaultPlan())
    batch_s, _ = _run_dag(d, BATCH_DAG, write_jsonl(workdir / "bvm-batch.jsonl", instructions("bvm-batch", n)), 900)
    mapped_s, _ = _run_dag(
        d, MAPPED_DAG, write_jsonl(workdir / "bvm-mapped.jsonl", instructions("bvm-mapped", n)), 3000
    )
    for tag in ("bvm-batch", "bvm-mapped"):
        once, paid = _paid_once(d, tag, n)
        assert once, f"{tag}: {paid.most_common(3)}"
    ratio = mapped_s / batch_s
    return report.Measurement(
        key="deployment_batch_vs_mapped",
        title=f"{n} payouts under the real scheduler (LocalExecutor, Postgres): one batch task vs mapped tasks",
        ours_label="1 batch task",
        ours=batch_s,
        baseline_label=f"{n} mapped tasks",
        baseline=mapped_s,
        unit="s",
        ratio=ratio,
        ratio_text=f"mapped takes {ratio:.1f}x as long",
        target=">= 30x",
        met=ratio >= 30,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=50 and 200 webhook events")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only - set(SECTIONS):
        parser.error(f"unknown sections {sorted(only - set(SECTIONS))}: choose from {', '.join(SECTIONS)}")
    n, events = (50, 200) if args.quick else (200, 1000)
    started = time.monotonic()
    rows: list[report.Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-deployment-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        with run_deployment(workdir) as d:
            d.wait_dags({BATCH_DAG, MAPPED_DAG, WEBHOOK_DAG, CONCURRENT_DAG})
            for dag in (BATCH_DAG, MAPPED_DAG, CONCURRENT_DAG):
                d.unpause(dag)
            d.api("GET", "/assets", params={"uri_pattern": "stripe://events/payout.paid"})  # warm the token
            if "requests" in only:
                rows += requests_per_payout(d, workdir, n)
            if "concurrent" in only:
                rows += racing_runs(d, workdir, n)
            if "webhooks" in only:
                rows += [webhooks(d, events, workers=1), webhooks(d, events, workers=2)]
            if "mapping" in only:
                rows.append(batch_vs_mapped(d, workdir, n))
    seconds = time.monotonic() - started
    name = "deployment-quick" if args.quick else "deployment"
    if only != set(SECTIONS):  # a subset never overwrites the results of a full run
        name += "-only-" + "-".join(sorted(only))
    env = report.environment(args.quick)
    report.save_json(rows, env, RESULTS_DIR / f"{name}.json", seconds)
    table = report.markdown_table(rows)
    (RESULTS_DIR / f"{name}.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(f"({seconds:.0f} s)")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
