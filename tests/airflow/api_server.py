"""Run a real ``airflow api-server`` on 127.0.0.1 for a test, with a known admin login.

Why a subprocess: the Test button, the connection form and the provider's plugin
(webhook endpoint, Test-button middleware) only exist inside the API server as Airflow
starts it, so browser and HTTP tests must talk to the real thing.

Use::

    with run_api_server() as server:
        server.url                    # http://127.0.0.1:PORT
        server.username, server.password
        server.api("GET", "/api/v2/connections")   # authenticated requests.Response

The server shares the test session's AIRFLOW_HOME and SQLite DB (``tests.airflow_env``);
the DB is migrated first. It runs outside the source checkout, like an installed provider
(see :mod:`tests.airflow.subprocess_env`). SimpleAuthManager (Airflow 3's default) gets one ``admin`` user
whose password is written to a private passwords file, so tests can log in through the
login page. The server runs in its own process group, is stopped (terminate, then kill)
on exit, and its output goes to ``log_path`` (quoted when start-up fails).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests import airflow_env
from tests.airflow.dag_helpers import run_airflow_service
from tests.airflow.subprocess_env import installed_env

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
HEALTH_PATH = "/api/v2/monitor/health"


@dataclass
class ApiServer:
    """A running API server: where it listens and how to log in."""

    url: str
    username: str
    password: str
    log_path: Path
    _token: str | None = field(default=None, repr=False)

    def token(self) -> str:
        """A JWT for the admin user (``POST /auth/token``), cached."""
        if self._token is None:
            resp = requests.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=10,
            )
            resp.raise_for_status()
            self._token = str(resp.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, *, json: Any = None, timeout: float = 30) -> requests.Response:
        """An authenticated request to ``path`` (e.g. ``/api/v2/connections``); no status check."""
        return requests.request(
            method,
            f"{self.url}{path}",
            json=json,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=timeout,
        )

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's output, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], server: ApiServer, timeout: float) -> None:
    """Poll the health endpoint until it answers 200, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"airflow api-server exited with code {proc.returncode} before it was ready:\n{server.log_tail()}"
            )
        try:
            resp = requests.get(f"{server.url}{HEALTH_PATH}", timeout=2)
            if resp.status_code == 200:
                return
            last = resp.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"airflow api-server not ready after {timeout:.0f}s (last: {last!r}):\n{server.log_tail()}")


@contextlib.contextmanager
def run_api_server(
    *,
    env: Mapping[str, str] | None = None,
    username: str = "admin",
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[ApiServer]:
    """Start ``airflow api-server`` on a free 127.0.0.1 port; yield an :class:`ApiServer`.

    :param env: extra environment for the server (``AIRFLOW_CONN_*``, config overrides).
    :param username: the admin user created in SimpleAuthManager.
    :param ready_timeout: seconds to wait for ``/api/v2/monitor/health``.
    """
    airflow_env.migrate()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="airflow-api-server-") as tmp:
        workdir = Path(tmp)
        password = secrets.token_urlsafe(12)
        passwords_file = workdir / "passwords.json"
        passwords_file.write_text(json.dumps({username: password}))
        passwords_file.chmod(0o600)
        log_path = workdir / "api-server.log"
        defaults = {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
        }
        server_env = installed_env(**{**defaults, **dict(env or {})})  # ``env`` may override a default
        server = ApiServer(url=f"http://127.0.0.1:{port}", username=username, password=password, log_path=log_path)
        command = ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        with run_airflow_service(command, server_env, log_path, STOP_TIMEOUT_S) as proc:
            _wait_ready(proc, server, ready_timeout)
            yield server
