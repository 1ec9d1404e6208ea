"""The README's quickstart, taken literally, in a fresh Airflow home.

The three blocks of that section are read from README.md (not copied here): the DAG is saved
in a fresh ``AIRFLOW_HOME``'s DAGs folder, the first shell block starts the local Stripe (its
``pip install`` line is skipped: the provider is installed in this venv), the second is run as
is by ``bash``. Nothing of the tests' own Airflow settings is inherited. The one change: the
README's port 8420 becomes a free port (others may be using 8420 on this machine), given with
``--port`` as docs/local-stripe.md says.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_stripe.testing.localstripe import DEFAULT_CLI_PORT
from tests import airflow_env
from tests.airflow.dag_helpers import stop_process_group
from tests.integration.payout_helpers import list_all_payouts

SECTION = "## Quickstart"
SERVER_READY = "LOCALSTRIPE_URLS="

pytestmark = pytest.mark.timeout(400)


def readme_blocks() -> list[str]:
    """The fenced code blocks of the README's quickstart section, in order."""
    text = (airflow_env.REPO / "README.md").read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```[a-z]*\n(.*?)^```", section, re.S | re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _newcomer_env(home: Path) -> dict[str, str]:
    """A shell of a newcomer: this venv first on PATH, a fresh AIRFLOW_HOME, no Airflow or Stripe settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRIPE", "PYTHONPATH"))}
    env["PATH"] = f"{airflow_env.BIN}{os.pathsep}{env.get('PATH', '')}"
    env["AIRFLOW_HOME"] = str(home)
    return env


@contextlib.contextmanager
def _local_stripe(command: str, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Run the README's server command until the block ends; yield the base_url it printed."""
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(SERVER_READY):
                yield line[len(SERVER_READY) :].split()[0]
                return
        raise AssertionError(f"{command!r} exited ({proc.wait()}) without serving")
    finally:
        stop_process_group(proc, 10)


def test_run_your_own_dag_locally_works_as_written(tmp_path: Path) -> None:
    dag_source, server_block, run_block = readme_blocks()
    (server_command,) = [line for line in server_block.splitlines() if line.startswith("python -m ")]
    port = _free_port()
    server_command = f"{server_command.split('#', 1)[0].strip()} --port {port}"
    run_script = run_block.replace(f":{DEFAULT_CLI_PORT}", f":{port}")
    assert f":{port}" in run_script, "the README's run block names no local base_url"
    (dag_id,) = re.findall(r"^airflow dags test (\S+)", run_script, re.M)

    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / f"{dag_id}.py").write_text(dag_source)
    env = _newcomer_env(home)

    with _local_stripe(server_command, env, tmp_path) as base_url:
        assert base_url == f"http://127.0.0.1:{port}"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", run_script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=360,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"the README's steps failed:\n{output[-6000:]}"
        payouts = list_all_payouts(base_url, "sk_test_local")
    (amount,) = re.findall(r"amount=(\d+)", dag_source)
    assert [(p["amount"], p["status"]) for p in payouts] == [(int(amount), "paid")], output[-6000:]
    assert "sk_test_local" not in output
