"""Measure what importing modules and DAG files costs on top of ``airflow.sdk`` (child process).

Airflow's DAG processor imports Airflow once, calls ``gc.freeze()`` and forks a child per
DAG file to parse; what a provider adds is the import of its operators and sensors in
that child. This probe does the same: it imports the baseline (:func:`import_baseline`),
freezes the collector, then per job forks a fresh child that imports the given modules
and DAG files, timing only that part and listing the modules it added to ``sys.modules``.

Run as ``python -m benchmarks.parse_probe`` (jobs on stdin, see :mod:`benchmarks.jobs`),
or ``python -m benchmarks.parse_probe --once --modules a,b --files x.py`` to measure in
this process and print one answer line (used by ``tests/unit/test_parse_cost.py``).
Only the standard library is imported before the baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.jobs import MARKER, run_job, write_answer  # standard library only

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_stripe"
PARSE_TIME_PACKAGES = ("operators", "sensors")
"""What a DAG file imports from the provider: operators and sensors."""
RUN_TIME_PACKAGES = ("triggers",)
"""Imported by the triggerer (and by a deferring sensor at run time), not by DAG files."""
BASELINE_MARK = "@@baseline-imported@@"
"""Printed to stderr once the baseline is imported (splits ``-X importtime`` output)."""


def import_baseline() -> None:
    """What every DAG file pays anyway: ``airflow.sdk`` and the names DAG files and operators use."""
    from airflow.sdk import DAG, BaseHook, BaseOperator, BaseSensorOperator, Param, task  # noqa: F401

    print(BASELINE_MARK, file=sys.stderr, flush=True)


def provider_modules(packages: Sequence[str] = PARSE_TIME_PACKAGES) -> list[str]:
    """The provider's modules in ``packages`` (found on disk, not imported), private ones included."""
    names = []
    for package in packages:
        for path in sorted((REPO / PACKAGE / package).glob("*.py")):
            if path.stem != "__init__":
                names.append(f"{PACKAGE}.{package}.{path.stem}")
    return names


def example_dag_files() -> list[Path]:
    """The example DAG files shipped in ``dags_examples/``."""
    return sorted((REPO / "dags_examples").glob("*.py"))


def measure(modules: Sequence[str], files: Sequence[str]) -> dict[str, Any]:
    """Import ``modules`` then execute DAG ``files`` as modules; time it and list what was added."""
    before = set(sys.modules)
    start = time.perf_counter()
    for name in modules:
        __import__(name)  # the import statement's path, which ``-X importtime`` reports
    for index, file in enumerate(files):
        spec = importlib.util.spec_from_file_location(f"bench_dag_file_{index}", file)
        assert spec is not None and spec.loader is not None, file
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    seconds = time.perf_counter() - start
    added = sorted(m for m in set(sys.modules) - before if not m.startswith("bench_dag_file_"))
    return {
        "seconds": seconds,
        "new_modules": added,
        "loaded_top_level": sorted({m.split(".")[0] for m in sys.modules}),
    }


def probe_once(
    modules: Sequence[str], files: Sequence[str] = (), *, env: Mapping[str, str], python_flags: Sequence[str] = ()
) -> tuple[dict[str, Any], str]:
    """Run ``--once`` in a fresh interpreter with ``env``: ``(result of measure, stderr)``."""
    command = [sys.executable, *python_flags, "-m", "benchmarks.parse_probe", "--once"]
    proc = subprocess.run(
        [*command, "--modules", ",".join(modules), "--files", ",".join(files)],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    answers = [line[len(MARKER) :] for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not answers:
        raise RuntimeError(f"parse probe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    answer = json.loads(answers[-1])
    if not answer["ok"]:
        raise RuntimeError(f"parse probe failed:\n{answer['error']}")
    result: dict[str, Any] = answer["result"]
    return result, proc.stderr


def measure_job(job: dict[str, Any]) -> dict[str, Any]:
    """A job ``{"modules": [...], "files": [...]}`` measured by :func:`measure`."""
    return measure(job.get("modules", ()), job.get("files", ()))


def serve_forked() -> None:
    """Job loop: each job is measured in a forked child, which writes the answer and exits.

    Like Airflow's DAG processor, which forks a child per DAG file, after ``gc.freeze()``
    so that the children do not copy every page the collector would touch.
    """
    import gc

    gc.freeze()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: measure, answer, leave without running the parent's cleanup
            try:
                write_answer(run_job(measure_job, job))
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:  # died before answering: answer for it
            write_answer({"ok": False, "error": f"parse probe child died ({status}) on {job}"})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="measure in this process and print one answer")
    parser.add_argument("--modules", default="", help="comma-separated module names")
    parser.add_argument("--files", default="", help="comma-separated DAG file paths")
    args = parser.parse_args(argv)
    import_baseline()
    if not args.once:
        serve_forked()
        return
    job = {"modules": [m for m in args.modules.split(",") if m], "files": [f for f in args.files.split(",") if f]}
    write_answer(run_job(measure_job, job))


if __name__ == "__main__":
    main()
