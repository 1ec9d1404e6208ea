"""Warehouse benchmarks: export throughput and memory, and reconciliation requests per payout.

``.venv/bin/python -m benchmarks.warehouse [--objects 100000] [--repeats 3]`` prints a
Markdown table and writes ``benchmarks/results/warehouse.{json,md}``; exit status 1 if a
target is missed.

* **Export**: :class:`~airflow_provider_stripe.operators.exports.StripeExportOperator`
  (JSON Lines) against a bare SDK auto-paging loop writing the same file
  (``client.v1.charges.list(...).auto_paging_iter()``, one ``json.dumps`` line per object),
  for the same objects served by one local list server (a separate process: Stripe's
  paging, ``created[gte]``/``[lt]``, 100 per page). Each side runs in a fresh child process,
  alternately, ``--repeats`` times; the medians of wall time are compared (goal <= 1.05x) and
  each child reports how much its peak RSS grew (goal: flat, the same for 10x fewer objects).
* **Reconciliation**: the payout reconciliation operator against the test front's ledger
  (``tests/servers/stripe_reporting.py``), for automatic payouts of several sizes; the
  ``GET /v1/balance_transactions`` requests counted at the server per payout (goal:
  ``ceil(transactions / 100)``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from benchmarks.env import RESULTS_DIR

KEY = "sk_test_51WarehouseBenchKey"
START = 1_767_225_600  # 2026-01-01T00:00:00Z


def _charge(i: int) -> dict[str, Any]:
    return {
        "id": f"ch_bench{i:09d}",
        "object": "charge",
        "amount": 1000 + i % 5000,
        "amount_captured": 1000 + i % 5000,
        "amount_refunded": 0,
        "balance_transaction": f"txn_bench{i:09d}",
        "captured": True,
        "created": START + i,
        "currency": "eur",
        "customer": f"cus_bench{i % 997:06d}",
        "description": None,
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {"order": str(i)},
        "paid": True,
        "payment_intent": None,
        "refunded": False,
        "status": "succeeded",
    }


def serve_list(objects: int) -> None:
    """Child: serve ``objects`` charges, newest first, with Stripe's paging; print the port."""
    from tests.servers.stub_stripe import QuietHTTPServer

    data = [json.dumps(_charge(i)) for i in reversed(range(objects))]
    index = {f"ch_bench{i:09d}": objects - 1 - i for i in range(objects)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silent."""

        def do_GET(self) -> None:
            params = dict(parse_qsl(urlsplit(self.path).query))
            limit = int(params.get("limit", "10"))
            gte, lt = int(params.get("created[gte]", "0")), int(params.get("created[lt]", str(2**40)))
            # Newest first, object i at position objects - 1 - i, created START + i: the window
            # [gte, lt) is the positions [objects - (lt - START), objects - (gte - START)).
            first = max(0, objects - (lt - START))
            end = min(len(data), max(0, objects - (gte - START)))
            if "starting_after" in params:
                first = max(first, index[params["starting_after"]] + 1)
            page = data[first : min(first + limit, end)]
            more = first + limit < end
            more_text = "true" if more else "false"
            body = f'{{"object":"list","url":"/v1/charges","has_more":{more_text},"data":[{",".join(page)}]}}'
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", "req_bench")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
    print(httpd.server_address[1], flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever(poll_interval=0.1)


def run_side(side: str, url: str, path: str, objects: int) -> None:
    """Child: one export by ``side`` (``ours`` / ``bare``); print wall time, rows and peak RSS growth.

    Memory is the growth of the process's peak RSS over the export (``ru_maxrss``), not
    ``tracemalloc``, whose bookkeeping would slow both sides several-fold.
    """
    import resource

    window = {"gte": START, "lt": START + objects}
    if side == "bare":
        import stripe

        client = stripe.StripeClient(KEY, base_addresses={"api": url})
        client.v1.charges.list({"limit": 1})  # warm up (imports, connection) outside the measurement
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        rows = 0
        with open(path, "w", encoding="utf-8") as handle:
            for charge in client.v1.charges.list({"created": window, "limit": 100}).auto_paging_iter():  # type: ignore[arg-type]
                handle.write(json.dumps(charge.to_dict(), separators=(",", ":"), sort_keys=True, default=str))
                handle.write("\n")
                rows += 1
    else:
        from airflow_provider_stripe.operators.exports import StripeExportOperator
        from benchmarks.env import unlimited_connection

        # Limits lifted, as the bare loop has none: this measures the export itself (benchmarks.exports
        # measures it against the connection's rate limit).
        os.environ.update(unlimited_connection("stripe_bench", url, api_key=KEY))
        op = StripeExportOperator(
            task_id="export", stripe_conn_id="stripe_bench", resource="charges", path=path,
            created_gte=window["gte"], created_lt=window["lt"],
        )  # fmt: skip
        op.hook.requests.first_page("charges", {"limit": 1})  # warm up, as for the bare side
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        rows = op.execute({"ti": None})["count"]  # type: ignore[typeddict-item]
    elapsed = time.perf_counter() - started
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024  # KiB on Linux
    print(json.dumps({"seconds": elapsed, "rows": rows, "peak": peak, "size": Path(path).stat().st_size}))


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.warehouse", *args], capture_output=True, text=True, timeout=1800, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def list_server(objects: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.warehouse", "serve", str(objects)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_export(objects: int, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp, list_server(objects) as url:
        for _ in range(repeats):
            for side in ("bare", "ours"):
                runs[side].append(_child("side", side, url, f"{tmp}/{side}.jsonl", str(objects)))
        small = _child("side", "ours", url, f"{tmp}/small.jsonl", str(objects // 10))
    ours = statistics.median(r["seconds"] for r in runs["ours"])
    bare = statistics.median(r["seconds"] for r in runs["bare"])
    assert all(r["rows"] == objects for side in runs.values() for r in side)
    return {
        "objects": objects,
        "ours_seconds": ours,
        "bare_seconds": bare,
        "ratio": ours / bare,
        "ours_rows_per_s": objects / ours,
        "bare_rows_per_s": objects / bare,
        "ours_peak_bytes": max(r["peak"] for r in runs["ours"]),
        "bare_peak_bytes": max(r["peak"] for r in runs["bare"]),
        "ours_peak_bytes_tenth": small["peak"],
        "file_bytes": runs["ours"][0]["size"],
    }


def bench_reconciliation(sizes: tuple[int, ...] = (1, 99, 100, 101, 250, 1000)) -> list[dict[str, Any]]:
    from airflow_provider_stripe.operators.reconciliation import StripePayoutReconciliationOperator
    from airflow_provider_stripe.testing.connection import connection_env
    from tests.servers.stripe_reporting import run_ledger_front

    out = []
    # The ledger answers automatic payouts itself: the upstream is never contacted.
    with run_ledger_front("http://127.0.0.1:9") as front, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(connection_env("stripe_bench_recon", api_key=KEY, base_url=front.url))
        for size in sizes:
            # size - 1 items + the payout's own transaction = size transactions
            items = [{"amount": 100 + i, "fee": 3} for i in range(size - 1)]
            payout = front.ledger.add_automatic_payout(items)
            front.reset_stats()
            result = StripePayoutReconciliationOperator(
                task_id="r", stripe_conn_id="stripe_bench_recon", path=f"{tmp}/{size}.jsonl", payout_ids=payout["id"]
            ).execute({"ti": None})  # type: ignore[typeddict-item]
            requests = sum(1 for r in front.records if r.path == "/v1/balance_transactions")
            lookups = sum(1 for r in front.records if r.path == f"/v1/payouts/{payout['id']}")
            out.append(
                {
                    "transactions": result["count"],
                    "requests": requests,
                    "goal": math.ceil(result["count"] / 100),
                    "payout_lookups": lookups,  # its status, for the rows' payout_status
                    "other_requests": len(front.records) - requests - lookups,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        serve_list(int(args[1]))
        return 0
    if args[:1] == ["side"]:
        run_side(args[1], args[2], args[3], int(args[4]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warehouse")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args(args)
    from tests import airflow_env

    airflow_env.configure()
    export = bench_export(opts.objects, opts.repeats)
    recon = bench_reconciliation()
    export_met = export["ratio"] <= 1.05
    flat = export["ours_peak_bytes"] <= export["ours_peak_bytes_tenth"] * 1.5 + 1_000_000
    recon_met = [r["requests"] == r["goal"] and r["payout_lookups"] == 1 and r["other_requests"] == 0 for r in recon]
    export["met"] = export_met and flat  # read by benchmarks.summary: the targets live here only
    for r, met in zip(recon, recon_met, strict=True):
        r["met"] = met
    kib = 1024
    lines = [
        "| Measurement | Ours | Baseline | Ratio | Target | Met? |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| Export {export['objects']:,} charges to JSON Lines | {export['ours_rows_per_s']:,.0f} rows/s "
        f"({export['ours_seconds']:.2f} s) | {export['bare_rows_per_s']:,.0f} rows/s ({export['bare_seconds']:.2f} s, "
        f"bare SDK auto-paging loop) | {export['ratio']:.3f}x the time | <= 1.05x | "
        f"{'met' if export_met else 'NOT met'} |",
        f"| Export peak RSS growth | {export['ours_peak_bytes'] // kib:,} KiB for {export['objects']:,}; "
        f"{export['ours_peak_bytes_tenth'] // kib:,} KiB for a tenth | {export['bare_peak_bytes'] // kib:,} KiB "
        f"(bare loop) | file {export['file_bytes'] // kib:,} KiB | flat | {'met' if flat else 'NOT met'} |",
    ]
    for r, met in zip(recon, recon_met, strict=True):
        lines.append(
            f"| Reconciliation, payout of {r['transactions']:,} transactions | {r['requests']} requests "
            f"(+{r['payout_lookups']} payout lookup, +{r['other_requests']} other) | ceil(n/100) = {r['goal']} | "
            f"{r['requests'] / r['goal']:.2f}x | ceil(n/100), 1 lookup of the payout | {'met' if met else 'NOT met'} |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "warehouse.json").write_text(json.dumps({"export": export, "reconciliation": recon}, indent=2))
    (RESULTS_DIR / "warehouse.md").write_text(table + "\n")
    return 0 if export_met and flat and all(recon_met) else 1


if __name__ == "__main__":
    sys.exit(main())
