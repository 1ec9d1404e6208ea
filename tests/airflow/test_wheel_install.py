"""The wheel as users get it: only ``airflow_provider_stripe`` inside, installed (not editable) into
a clean virtualenv with the pinned dependencies, where Airflow lists the provider and the
``[local]`` extra's command serves localstripe behind the front.

Built and installed with uv (the tool ``scripts/bootstrap.sh`` installs; its cache makes
the install take seconds). Everything runs outside the source checkout, so nothing is
imported from it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_stripe.get_provider_info import PACKAGE_NAME
from tests import airflow_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = airflow_env.REPO


def _uv_command() -> list[str]:
    """uv as ``scripts/combo.sh`` finds it: on PATH, else the one bootstrap installed into ``.venvs/uv``."""
    found = shutil.which("uv") or REPO / ".venvs" / "uv" / "bin" / "uv"
    if not Path(found).is_file():
        pytest.fail("uv not found: run scripts/bootstrap.sh (it installs uv)")
    return [str(found)]


def _uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*_uv_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, f"uv {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH or virtualenv of ours; a throwaway AIRFLOW_HOME."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("AIRFLOW")
    }
    env.update(AIRFLOW_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--wheel", "--out-dir", str(out), str(REPO), cwd=out)
    (built,) = out.glob("airflow_provider_stripe-*.whl")
    return built


def _constraints() -> Path:
    """The pins of the combination this venv was built from (constraints/, see scripts/pin.sh)."""
    import airflow

    python = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    for path in sorted((REPO / "constraints").glob(f"*-{python}.txt")):
        if re.search(rf"^apache-airflow=={re.escape(airflow.__version__)}\s", path.read_text(), re.M):
            return path
    raise AssertionError(f"no constraints/*-{python}.txt pins apache-airflow=={airflow.__version__}")


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    _uv("venv", "-q", "-p", sys.executable, str(root / "venv"), cwd=root)
    python = root / "venv" / "bin" / "python"
    pins = ["-c", str(_constraints())]
    _uv("pip", "install", "-q", "-p", str(python), f"{wheel}[local]", *pins, cwd=root)
    return root


def test_wheel_ships_only_the_provider(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist()}
        names = archive.namelist()
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert top == {"airflow_provider_stripe", dist_info}, top
    assert "airflow_provider_stripe/testing/front.py" in names and "airflow_provider_stripe/py.typed" in names


def _run(venv: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """A command of the clean venv, outside the checkout."""
    return subprocess.run(
        [str(venv / "venv" / "bin" / command[0]), *command[1:]],
        cwd=venv,
        env=_clean_env(venv),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_installed_wheel_is_listed_by_airflow(venv: Path) -> None:
    # Not the checkout's copy, and no top-level benchmarks package beside it.
    located = _run(venv, "python", "-c", "import airflow_provider_stripe as p; print(p.__file__); import benchmarks")
    assert "site-packages/airflow_provider_stripe/" in located.stdout, located.stderr
    assert "No module named 'benchmarks'" in located.stderr
    listed = _run(venv, "airflow", "providers", "list", "-o", "plain")
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert PACKAGE_NAME in listed.stdout, listed.stdout[-3000:]


@contextlib.contextmanager
def _local_server(venv: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [str(venv / "venv" / "bin" / "python"), "-m", "airflow_provider_stripe.testing.localstripe", "--port", "0"],
        cwd=venv,
        env=_clean_env(venv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first line, printed once both servers listen
        assert line.startswith("LOCALSTRIPE_URLS="), (line, proc.poll())
        yield line.split("=", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
        proc.stdout.close()


def test_local_extra_serves_localstripe_behind_the_front(venv: Path) -> None:
    with _local_server(venv) as url:
        auth = ("sk_test_wheel", "")
        requests.post(f"{url}/v1/payouts", data={"amount": 100, "currency": "eur"}, auth=auth, timeout=5)
        listed = requests.get(f"{url}/v1/payouts", params={"created[gte]": 1}, auth=auth, timeout=5)
        assert listed.status_code == 200 and len(listed.json()["data"]) == 1
        assert requests.get(f"{url}/v1/account", auth=auth, timeout=5).json()["object"] == "account"
