"""The services of a real Airflow deployment, each a subprocess on 127.0.0.1 in its own process group.

* :func:`run_postgres` -- a throwaway PostgreSQL cluster from Debian's ``postgresql`` package
  (``initdb`` then ``postgres`` in the foreground, data under /tmp, an ephemeral port, trust
  auth on loopback only). As root it runs as the ``postgres`` user (``runuser``): the server
  refuses to run as root.
* :func:`run_redis` -- a Redis without persistence, for rate limits shared by processes.
* :func:`run_airflow` -- one Airflow component (``api-server``, ``scheduler``,
  ``dag-processor``, ``triggerer``, ``celery worker``), output to a log file.

Every process is started with ``start_new_session=True`` and stopped by process group
(SIGTERM, then SIGKILL), so nothing outlives the test session. Waits are bounded.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.airflow.api_server import free_port
from tests.airflow.dag_helpers import run_airflow_service, stop_process_group

STOP_TIMEOUT_S = 20.0


class ServiceUnavailable(RuntimeError):
    """A system package the tier needs is not installed (scripts/system-packages.sh installs it)."""


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise ServiceUnavailable(
            "PostgreSQL is not installed (scripts/system-packages.sh installs Debian's postgresql)"
        )
    return Path(found[-1]).parent


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float) -> None:
    """Until 127.0.0.1:``port`` accepts connections; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s:\n{tail(log)}")


def tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file, for failure messages."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _as_db_owner(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceUnavailable("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    return [runuser, "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def run_postgres(
    workdir: Path, *, database: str = "airflow", user: str = "airflow", extra_databases: Sequence[str] = ()
) -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1; yield its SQLAlchemy URL (psycopg2 driver) for ``database``.

    ``extra_databases`` are created too (e.g. Celery's result backend), reached by replacing the
    URL's last path segment.
    """
    bindir = postgres_bin_dir()
    data = Path(tempfile.mkdtemp(prefix="pgdata-", dir=workdir))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    log = workdir / "postgres.log"
    init = subprocess.run(
        _as_db_owner([str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(data),
        "max_connections": "300",
        "fsync": "off",  # a throwaway cluster: durability buys nothing here
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(bindir / "postgres"), "-D", str(data)] + [f"-c{k}={v}" for k, v in settings.items()]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _as_db_owner(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        wait_for_port(port, proc, "postgres", log, timeout=60)
        for name in (database, *extra_databases):
            _create_database(port, user, name)
        yield f"postgresql+psycopg2://{user}@127.0.0.1:{port}/{database}"
    finally:
        stop_process_group(proc, STOP_TIMEOUT_S)
        shutil.rmtree(data, ignore_errors=True)


def _create_database(port: int, user: str, database: str, timeout: float = 30) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", connect_timeout=5)
            break
        except psycopg2.OperationalError:  # accepting TCP before it accepts logins
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
    finally:
        conn.close()


@contextlib.contextmanager
def run_redis(workdir: Path) -> Iterator[str]:
    """A Redis on 127.0.0.1 without persistence; yield ``redis://127.0.0.1:PORT/0``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server is not installed (scripts/system-packages.sh installs it)")
    port = free_port()
    log = workdir / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc, "redis-server", log, timeout=20)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process_group(proc, STOP_TIMEOUT_S)


def run_airflow(
    args: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path, stop_timeout: float = STOP_TIMEOUT_S
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``airflow <args>`` with this environment in ``cwd``, output to ``log``; stopped (process group) on exit."""
    return run_airflow_service(args, env, log, stop_timeout, cwd=cwd)
