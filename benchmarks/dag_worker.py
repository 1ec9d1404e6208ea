"""Child process that runs benchmark DAGs with ``dag.test()`` and times them (jobs on stdin).

One job: ``{"dag_file", "dag_id", "env", "logical_date"}``. The job's ``env`` (item count,
connection) is applied, the file parsed with a DagBag (as the DAG processor would), and
``dag.test()`` -- Airflow's real task runner, XComs, mapping and task state store, all
in this process -- is timed. The answer holds the seconds, the run's state and how many
task instances ended in which state. Started by :class:`benchmarks.jobs.JobProcess`,
so Airflow is imported once for all jobs.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.jobs import Job, serve


def run_dag(job: Job) -> dict[str, Any]:
    """Parse ``job["dag_file"]``, ``dag.test()`` its ``dag_id``; return timing and outcome."""
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag
    from airflow.utils.session import create_session

    os.environ.update(job.get("env", {}))
    bag = DagBag(dag_folder=job["dag_file"])
    if bag.import_errors:
        raise RuntimeError(f"DAG file failed to parse: {bag.import_errors}")
    dag = bag.get_dag(job["dag_id"])
    if dag is None:
        raise RuntimeError(f"no DAG {job['dag_id']!r} in {job['dag_file']}")
    logging.getLogger("stripe").setLevel(logging.WARNING)  # as for the bare loop: see request_overhead
    started_monotonic = time.monotonic()  # comparable with the proxy's arrival times (same clock)
    start = time.perf_counter()
    dag_run = dag.test(logical_date=datetime.fromisoformat(job["logical_date"]))
    seconds = time.perf_counter() - start
    with create_session() as session:
        states = Counter(str(ti.state) for ti in dag_run.get_task_instances(session=session))
    return {
        "seconds": seconds,
        "state": str(dag_run.state),
        "task_states": dict(states),
        "started_monotonic": started_monotonic,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # this process's peak so far
    }


class DagRunner:
    """Parent side: one :mod:`benchmarks.dag_worker` child running the benchmark DAGs, one at a time."""

    def __init__(self, dags_folder: Path, log_path: Path) -> None:
        from benchmarks.env import REPO, child_env
        from benchmarks.jobs import JobProcess

        self.dags_folder = dags_folder
        self._runs = 0
        self._worker = JobProcess("benchmarks.dag_worker", env=child_env(), cwd=REPO, log_path=log_path, timeout=900)

    def run(self, dag_id: str, env: dict[str, str]) -> dict[str, Any]:
        """``dag.test()`` the benchmark DAG ``dag_id`` with ``env``; each run gets its own logical date."""
        self._runs += 1
        logical_date = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=self._runs)
        job = {
            "dag_file": str(self.dags_folder / f"{dag_id}.py"),
            "dag_id": dag_id,
            "env": env,
            "logical_date": logical_date.isoformat(),
        }
        return self._worker.run(job)

    def warm_up(self, dag_id: str, env: dict[str, str]) -> None:
        """One unmeasured run: the first ``dag.test()`` in a process pays for imports and caches."""
        self.run(dag_id, env)

    def close(self) -> None:
        self._worker.close()


def install_dags(dags_folder: Path) -> None:
    """Copy the benchmark DAG files into ``dags_folder`` (the temporary Airflow DAGs folder)."""
    from benchmarks.env import DAG_TEMPLATES

    dags_folder.mkdir(parents=True, exist_ok=True)
    for template in DAG_TEMPLATES.glob("*.py"):
        shutil.copy(template, dags_folder / template.name)


if __name__ == "__main__":
    serve(run_dag)
