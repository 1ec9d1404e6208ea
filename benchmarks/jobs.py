"""A long-lived child Python process that runs benchmark jobs sent as JSON, one at a time.

Why: two benchmarks need a *separate* interpreter -- the DAG-parse probe (only
``airflow.sdk`` imported before measuring) and the ``dag.test()`` runner (its own
Airflow home and connections) -- and starting Airflow costs seconds, so each child is
started once and then fed jobs. The parent sends one JSON line per job on the child's
stdin; the child answers with one line ``@@bench@@<json>`` on stdout. Everything else
the child prints (Airflow's task logs) is copied to a log file, never parsed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from queue import Queue
from typing import IO, Any

MARKER = "@@bench@@"

Job = dict[str, Any]
Handler = Callable[[Job], Job]


def run_job(handler: Handler, job: Job) -> Job:
    """``handler(job)`` as an answer: ``{"ok": True, "result": ...}`` or ``{"ok": False, "error": traceback}``."""
    try:
        return {"ok": True, "result": handler(job)}
    except Exception:
        return {"ok": False, "error": traceback.format_exc()}


def write_answer(answer: Job) -> None:
    """Write one answer line to stdout, on a line of its own."""
    sys.stdout.flush()
    sys.stdout.write(f"\n{MARKER}{json.dumps(answer)}\n")
    sys.stdout.flush()


def serve(handler: Handler) -> None:
    """Child side: answer every JSON job read from stdin with ``handler(job)`` (or its error)."""
    for line in sys.stdin:
        if line.strip():
            write_answer(run_job(handler, json.loads(line)))


class JobProcess:
    """Parent side: a child ``python -m <module>`` fed jobs through :meth:`run`."""

    def __init__(self, module: str, *, env: Mapping[str, str], cwd: Path, log_path: Path, timeout: float) -> None:
        self.module = module
        self.timeout = timeout
        self._log: IO[str] = log_path.open("a", encoding="utf-8")
        self._answers: Queue[Job | None] = Queue()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._pump, name=f"bench-{module}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(MARKER):
                self._answers.put(json.loads(line[len(MARKER) :]))
            else:
                self._log.write(line)
        self._answers.put(None)  # EOF: the child exited

    def run(self, job: Job) -> Job:
        """Send one job and wait for its result; raise with the child's traceback on failure."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(job) + "\n")
        self._proc.stdin.flush()
        answer = self._answers.get(timeout=self.timeout)
        if answer is None:
            raise RuntimeError(f"benchmark child {self.module} exited (code {self._proc.wait()}); see {self._log.name}")
        if not answer["ok"]:
            raise RuntimeError(f"benchmark job {job.get('kind')} failed in {self.module}:\n{answer['error']}")
        result: Job = answer["result"]
        return result

    def close(self) -> None:
        """Close stdin (the child's loop ends), wait briefly, then kill if needed."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._reader.join(timeout=5)
        self._log.close()

    def __enter__(self) -> JobProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
