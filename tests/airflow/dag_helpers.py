"""Reading what a ``dag.test()`` run left in the metadata DB, and stopping service processes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass
class Triggerer:
    """A running ``airflow triggerer``: its process and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    log: Path

    def exit_code(self) -> int | None:
        """``None`` while it runs; its exit code once it died (a dead triggerer resumes no deferred task)."""
        return self.proc.poll()

    def log_tail(self, chars: int = 5000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


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
def run_triggerer(env: Mapping[str, str], log_path: Path, stop_timeout: float = 30.0) -> Iterator[Triggerer]:
    """A real ``airflow triggerer`` with this environment, output to ``log_path``; stopped on exit.

    A triggerer can take several seconds to clean up its triggers, hence the generous stop timeout.
    For one on the session's metadata DB, call :func:`drop_finished_triggers` first.
    """
    command = ["triggerer", "--skip-serve-logs", "--capacity", "10"]
    with run_airflow_service(command, env, log_path, stop_timeout) as proc:
        yield Triggerer(proc, log_path)


def drop_finished_triggers() -> None:
    """Delete the session DB's triggers that no deferred task waits for, before a real triggerer starts on it.

    An in-process ``dag.test()`` runs a deferred task's trigger inline and leaves its row, still
    named by the (finished) task instance's ``trigger_id``. A triggerer's first loop assigns itself
    every trigger a task instance names, whatever that task's state, and deletes the finished ones
    only after starting them: an earlier test's payout trigger then polls localstripe (``GET
    /v1/payouts``, its payouts long flushed) into a later test's request log. Airflow's own cleanup
    (``Trigger.clean_unused``) unlinks triggers from task instances ``WHERE state != 'deferred'``,
    which in SQL skips a cleared task instance (state NULL, its ``trigger_id`` kept): that trigger
    stays, and the triggerer runs it again after each event, for good (seen on 3.1: a payout batch
    run cleared by a later ``dag.test()``). So those are unlinked first, then the cleanup runs,
    before the triggerer's first loop.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import or_, update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.trigger_id.is_not(None))
            .where(or_(TaskInstance.state.is_(None), TaskInstance.state != TaskInstanceState.DEFERRED))
            .values(trigger_id=None)
        )
    Trigger.clean_unused()


@contextlib.contextmanager
def in_background(target: Callable[[], None], name: str, stop: threading.Event) -> Iterator[None]:
    """Run ``target`` in a daemon thread for the block; then set ``stop`` and wait (bounded) for it."""
    thread = threading.Thread(target=target, daemon=True, name=name)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@contextlib.contextmanager
def dag_tests_bounded(
    triggerer: Triggerer, timeout: float, note: Callable[[str], None], end_grace: float = 30.0
) -> Iterator[list[str]]:
    """Make every ``dag.test()`` in this block end if the triggerer dies or ``timeout`` seconds pass.

    ``dag.test()`` loops while its DAG run is running, and a deferred task waits for the
    triggerer: with the triggerer dead it waits forever. Nor can pytest-timeout's alarm stop
    it: Airflow's DAG-parse timeout (``DagBag``) resets the process's SIGALRM timer. So a
    watcher thread fails, in the metadata DB, every unfinished task instance of every running
    DAG run (each second, for later ``dag.test()`` calls too); ``dag.test()`` then sees its run
    fail and returns. Yields the list that receives the reason; the caller raises with it.

    Also seen on Airflow 3.1 under load: ``dag.test(use_executor=True)``'s run has finished and
    ``LocalExecutor.end()`` waits forever on one idle worker still blocked reading the task
    queue, its shutdown message gone (Airflow sends one per live worker). After ``end_grace``
    seconds in ``end()`` the watcher sends each worker another one (extra ones are dropped
    with the queue) and says so through ``note``: the run's outcome is already recorded.
    """
    stop = threading.Event()
    why: list[str] = []
    main = threading.main_thread().ident

    def watch() -> None:
        deadline = time.monotonic() + timeout
        ending_since: float | None = None
        while not stop.wait(1.0):
            if not why:
                if (code := triggerer.exit_code()) is not None:
                    why.append(f"the triggerer exited with {code}; its log ends:\n{triggerer.log_tail()}")
                elif time.monotonic() > deadline:
                    why.append(f"the DAG runs were still running after {timeout:.0f} s")
            if why:
                _fail_running_dag_runs()
            executor = _local_executor_ending(main)
            if executor is None:
                ending_since = None
            elif ending_since is None:
                ending_since = time.monotonic()
            elif time.monotonic() - ending_since > end_grace:
                workers = len(executor.workers)
                note(
                    f"LocalExecutor.end() still waiting after {end_grace:.0f} s for its idle workers "
                    f"(Airflow lost a shutdown message): sent {workers} more"
                )
                for _ in range(workers):
                    executor.activity_queue.put(None)
                ending_since = None

    with in_background(watch, "dag-test-watchdog", stop):
        yield why


def _local_executor_ending(thread_id: int | None) -> Any | None:
    """The ``LocalExecutor`` whose ``end()`` that thread is in right now, if it is."""
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    while frame is not None:
        if frame.f_code.co_name == "end" and frame.f_code.co_filename.endswith("local_executor.py"):
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


def _fail_running_dag_runs() -> None:
    """Fail the unfinished task instances of every running DAG run (plain sqlite3: usable from any thread)."""
    with contextlib.closing(sqlite3.connect(airflow_env.configure() / "airflow.db", timeout=30)) as conn, conn:
        conn.execute(
            "UPDATE task_instance SET state = 'failed' WHERE (state IS NULL OR state NOT IN "
            "('success', 'failed', 'skipped', 'upstream_failed', 'removed')) AND (dag_id, run_id) IN "
            "(SELECT dag_id, run_id FROM dag_run WHERE state = 'running')"
        )
