"""One real deployment (Postgres, Redis, localstripe, api-server, scheduler, dag-processor, triggerer)
shared by every test of the tier: started once, stopped when the tier's tests are done."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment.deployment import Deployment, run_deployment
from tests.deployment.services import ServiceUnavailable


@pytest.fixture(scope="package")
def deployment() -> Iterator[Deployment]:
    workdir = Path(tempfile.mkdtemp(prefix="airflow-deployment-"))
    workdir.chmod(0o755)  # the postgres user must reach its data directory inside
    try:
        with run_deployment(workdir) as running:
            yield running
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
