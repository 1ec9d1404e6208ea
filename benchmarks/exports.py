"""Export speed at Stripe-like latency: parallel time slices against a bare auto-paging loop.

``.venv/bin/python -m benchmarks.exports [--objects 3200] [--latency-ms 200] [--repeats 2]``
prints a Markdown table and writes ``benchmarks/results/exports.{json,md}``; exit status 1
if a target is missed.

Both sides export the same charges (``created`` one second apart, 100 per page) to JSON
Lines, from one local list server in its own process (:func:`benchmarks.warehouse.serve_list`:
Stripe's paging and ``created[gte]``/``[lt]``) behind the counting proxy, which answers
every request ``--latency-ms`` later (a Stripe page's round trip) and counts them:

* **ours**: :class:`~airflow_provider_stripe.operators.exports.StripeExportOperator` with
  its defaults (``max_workers=8``) on a connection with the contract's default rate limit;
* **bare**: ``client.v1.charges.list(...).auto_paging_iter()`` writing one line per object,
  what a user would write without the provider.

Each export runs in a fresh child process (after a small warm-up export in it), the sides
alternating, ``--repeats`` times; medians of rows/s are compared. The proxy runs in the
parent, so its work does not compete for the exporting process's GIL.
Goals (issue 20): ours >= 3.5x the bare loop's rows/s, and >= 0.9 of the connection's
rate-limit bound (``per_minute / (60 s + the limiter's margin)`` requests/s x 100 rows per
page); the exported ids equal, in the same order.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.env import RESULTS_DIR
from benchmarks.report import Measurement, environment, markdown_table, save_json

KEY = "sk_test_51ExportsBenchKey"
PAGE = 100
SPEEDUP_GOAL = 3.5
BOUND_GOAL = 0.9


def _ids(path: Path) -> list[str]:
    with path.open() as handle:
        return [json.loads(line)["id"] for line in handle]


def _bare(url: str, path: Path, window: dict[str, int]) -> int:
    import stripe

    client = stripe.StripeClient(KEY, base_addresses={"api": url})
    rows = 0
    with path.open("w", encoding="utf-8") as handle:
        for charge in client.v1.charges.list({"created": window, "limit": PAGE}).auto_paging_iter():  # type: ignore[arg-type]
            handle.write(json.dumps(charge.to_dict(), separators=(",", ":"), sort_keys=True, default=str))
            handle.write("\n")
            rows += 1
    return rows


def _ours(conn_id: str, path: Path, window: dict[str, int]) -> int:
    from airflow_provider_stripe.operators.exports import StripeExportOperator

    op = StripeExportOperator(
        task_id="export", stripe_conn_id=conn_id, resource="charges", path=str(path),
        created_gte=window["gte"], created_lt=window["lt"],
    )  # fmt: skip
    return int(op.execute({"ti": None})["count"])  # type: ignore[typeddict-item]


def run_side(side: str, url: str, path: str, objects: int) -> None:
    """Child: warm up, then one export by ``side`` (``ours`` / ``bare``); print its rows and seconds.

    Each side runs in its own process, the counting proxy in the parent's: the proxy's
    work does not compete for the exporting process's GIL (Stripe's servers do not either).
    """
    from airflow_provider_stripe.testing.connection import connection_env
    from benchmarks.warehouse import START

    conn_id = "stripe_bench_exports"
    os.environ.update(connection_env(conn_id, api_key=KEY, base_url=url))
    window = {"gte": START, "lt": START + objects}
    warm = {"gte": START + objects - 3 * PAGE, "lt": START + objects}  # imports, connections, threads
    export = _bare if side == "bare" else _ours
    target = url if side == "bare" else conn_id
    export(target, Path(f"{path}.warm"), warm)
    since = time.monotonic()  # system-wide on Linux: the parent counts the proxy's arrivals after it
    started = time.perf_counter()
    rows = export(target, Path(path), window)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started, "since": since}))


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.exports", *args], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bench(objects: int, latency_ms: int, repeats: int) -> list[Measurement]:
    from airflow_provider_stripe.hooks.ratelimit import WINDOW_MARGIN_S
    from airflow_provider_stripe.hooks.stripe import StripeHook
    from airflow_provider_stripe.testing.connection import connection_env
    from benchmarks.counting_proxy import run_counting_proxy
    from benchmarks.warehouse import list_server

    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "bare": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        list_server(objects) as upstream,
        run_counting_proxy(upstream, latency_ms) as proxy,
    ):
        os.environ.update(connection_env("stripe_bench_exports", api_key=KEY, base_url=proxy.url))
        per_minute = StripeHook("stripe_bench_exports").config.rate_limit_per_minute  # the contract's default
        for _ in range(repeats):
            for side in ("bare", "ours"):
                path = Path(tmp) / f"{side}.jsonl"
                proxy.reset()
                result = _child("side", side, proxy.url, str(path), str(objects))
                gets = [a for a in proxy.arrivals("GET") if a.at >= result["since"]]  # not the warm-up's
                runs[side].append({**result, "requests": len(gets), "ids": _ids(path)})
    ids_equal = all(r["ids"] == runs["bare"][0]["ids"] for side in runs.values() for r in side)
    rows_per_s = {side: statistics.median(r["rows"] / r["seconds"] for r in rs) for side, rs in runs.items()}
    requests = {side: statistics.median(r["requests"] for r in rs) for side, rs in runs.items()}
    bound = per_minute / (60 + WINDOW_MARGIN_S) * PAGE
    speedup = rows_per_s["ours"] / rows_per_s["bare"]
    details = {
        "objects": objects,
        "latency_ms": latency_ms,
        "repeats": repeats,
        "rate_limit_per_minute": per_minute,
        "rate_limit_bound_rows_per_s": bound,
        "requests": requests,
        "ids_equal": ids_equal,
        "runs": {side: [{k: v for k, v in r.items() if k != "ids"} for r in rs] for side, rs in runs.items()},
    }
    title = f"Export of {objects:,} charges at {latency_ms} ms per page"
    rows = [
        Measurement(
            key="export_speedup",
            title=f"{title}: rows/s vs a bare auto-paging loop",
            ours_label="StripeExportOperator, max_workers=8",
            ours=rows_per_s["ours"],
            baseline_label="bare auto_paging_iter loop",
            baseline=rows_per_s["bare"],
            unit="rows/s",
            ratio=speedup,
            ratio_text=f"{speedup:.2f}x the rows/s ({rows_per_s['ours']:,.0f} vs {rows_per_s['bare']:,.0f}); "
            f"ids {'equal' if ids_equal else 'DIFFER'}",
            target=f">= {SPEEDUP_GOAL}x, ids equal",
            met=speedup >= SPEEDUP_GOAL and ids_equal,
            details=details,
        ),
        Measurement(
            key="export_rate_limit_bound",
            title=f"{title}: rows/s vs the connection's rate-limit bound",
            ours_label="StripeExportOperator, max_workers=8",
            ours=rows_per_s["ours"],
            baseline_label=f"{per_minute}/min x {PAGE} rows per page",
            baseline=bound,
            unit="rows/s",
            ratio=rows_per_s["ours"] / bound,
            ratio_text=f"{rows_per_s['ours'] / bound:.2f}x the bound ({bound:,.0f} rows/s); "
            f"{requests['ours']:.0f} requests (bare: {requests['bare']:.0f})",
            target=f">= {BOUND_GOAL}x the bound",
            met=rows_per_s["ours"] >= BOUND_GOAL * bound,
            details=details,
        ),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["side"]:
        run_side(args[1], args[2], args[3], int(args[4]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exports")
    parser.add_argument("--objects", type=int, default=3_200)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    opts = parser.parse_args(args)
    from tests import airflow_env

    airflow_env.configure()
    started = time.perf_counter()
    rows = bench(opts.objects, opts.latency_ms, opts.repeats)
    table = markdown_table(rows)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    save_json(rows, environment(quick=False), RESULTS_DIR / "exports.json", time.perf_counter() - started)
    (RESULTS_DIR / "exports.md").write_text(table + "\n")
    return 0 if all(m.met for m in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
