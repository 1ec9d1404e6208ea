"""Reading what a ``dag.test()`` run left in the metadata DB, and stopping service processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests import airflow_env


def example_dag(dag_id: str) -> Any:
    """The example DAG ``dags_examples/<dag_id>.py``, parsed as the DAG processor would."""
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag

    bag = DagBag(dag_folder=str(airflow_env.DAGS_FOLDER / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def xcoms(dag_run: Any, task_id: str) -> list[Any]:
    """Every ``return_value`` of a (possibly mapped) task in the run, by map index."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value", map_indexes=None
        )
        rows: list[Any] = sorted(session.scalars(query), key=lambda row: row.map_index)
        return [XComModel.deserialize_value(row) for row in rows]


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    """``{(task_id, map_index): state}`` of every task instance in the run."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def stop_process_group(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM the process group (servers fork workers), then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def run_airflow_service(
    args: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    stop_timeout: float = 30.0,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``airflow <args>`` service in its own process group, output to ``log_path``.

    Runs in ``cwd`` (default: outside the checkout, as an installed provider runs); stopped
    (the whole group: servers fork workers) on exit.
    """
    from tests.airflow.subprocess_env import neutral_cwd

    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(airflow_env.BIN / "airflow"), *args],
            env=dict(env),
            cwd=cwd or neutral_cwd(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_process_group(proc, stop_timeout)


@contextlib.contextmanager
def run_triggerer(env: Mapping[str, str], log_path: Path, stop_timeout: float = 30.0) -> Iterator[Path]:
    """A real ``airflow triggerer`` with this environment, output to ``log_path``; stopped on exit.

    A triggerer can take several seconds to clean up its triggers, hence the generous stop timeout.
    """
    with run_airflow_service(["triggerer", "--skip-serve-logs", "--capacity", "10"], env, log_path, stop_timeout):
        yield log_path
