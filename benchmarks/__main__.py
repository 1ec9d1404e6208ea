"""``python -m benchmarks [--quick] [--only a,b]``: run the benchmarks, print the ratios, save JSON and PNG.

Everything runs on this machine, bound to 127.0.0.1: a real localstripe, a counting
proxy in front of it, a throwaway Airflow home (SQLite, ``airflow db migrate``) whose
DAGs folder holds the two benchmark DAGs, and ``dag.test()`` for the operators. Exit
status 1 if any target is not met. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.dag_worker import install_dags
from benchmarks.env import RESULTS_DIR, prepare

SECTIONS = ("parse", "overhead", "sensor", "throughput", "mapping", "ratelimit")
DAG_SECTIONS = ("throughput", "mapping", "ratelimit")


def _say(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches and a 100/min limit (about 2.5 min)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where JSON, PNG and table go")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="airflow-stripe-bench-"))
    install_dags(workdir / "dags")
    home = prepare(workdir / "dags")  # before anything imports airflow
    logs = workdir / "logs"
    logs.mkdir()
    _say(f"work dir {workdir} (Airflow home {home}); child logs in {logs}", started)

    # Imported only now: they import the provider, hence airflow.
    from airflow_provider_stripe.testing.localstripe import flush_localstripe, run_localstripe
    from benchmarks import mapping, parse_cost, report, request_overhead, sensor_cost, throughput
    from benchmarks.counting_proxy import run_counting_proxy
    from benchmarks.dag_worker import DagRunner
    from benchmarks.env import migrate

    rows: list[report.Measurement] = []

    def section(name: str, fn: Callable[[], list[report.Measurement]]) -> None:
        if name in only:
            _say(f"{name} ...", started)
            rows.extend(fn())

    section("parse", lambda: parse_cost.run(quick=args.quick, log_path=logs / "parse_probe.log"))
    with run_localstripe() as url, run_counting_proxy(url) as proxy:
        flush = functools.partial(flush_localstripe, url)
        section("overhead", lambda: request_overhead.run(url, quick=args.quick))
        section("sensor", lambda: sensor_cost.run(url, proxy, flush))
        if set(only) & set(DAG_SECTIONS):
            _say("airflow db migrate ...", started)
            migrate()
            dags = DagRunner(workdir / "dags", logs / "dag_runs.log")
            try:
                _say("warm-up dag.test() ...", started)
                dags.warm_up(throughput.BATCH_DAG, throughput.warm_up_env(proxy))
                section("throughput", lambda: throughput.concurrency(proxy, flush, dags, quick=args.quick))
                section("mapping", lambda: mapping.run(proxy, flush, dags, quick=args.quick))
                section("ratelimit", lambda: throughput.rate_limit(proxy, flush, dags, quick=args.quick))
            finally:
                dags.close()

    total = time.monotonic() - started
    name = "benchmarks-quick" if args.quick else "benchmarks"
    if set(only) != set(SECTIONS):  # a subset never overwrites the results of a full run
        name += "-only-" + "-".join(sorted(only))
    env = report.environment(args.quick)
    table = report.markdown_table(rows)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    report.save_json(rows, env, args.results_dir / f"{name}.json", total)
    (args.results_dir / f"{name}.md").write_text(table + "\n", encoding="utf-8")
    subtitle = f"{'quick' if args.quick else 'full'} run, {env['cpus']} CPUs, load {env['load_average'][0]:.1f}"
    png = report.save_png(rows, args.results_dir / f"{name}.png", subtitle)
    print(table)
    _say(f"done in {total:.0f}s; results in {args.results_dir}/{name}.{{json,md{',png' if png else ''}}}", started)
    if not png:
        _say("no PNG: matplotlib is not installed (uv pip install -p .venv/bin/python matplotlib)", started)
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return 1 if any(m.met is False for m in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
