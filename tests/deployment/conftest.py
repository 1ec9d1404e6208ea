"""Real deployments (Postgres, Redis, localstripe, api-server, scheduler, dag-processor, triggerer)
shared by the tests of the tier.

* ``deployment`` (LocalExecutor): started once for the package, stopped when its tests are done.
* ``celery_deployment`` (CeleryExecutor, two workers): module-scoped, so it is up only while its
  module runs (``test_celery_workers.py`` sorts first: the two never run at once on a small CI box).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deployment.deployment import Deployment, run_deployment
from tests.deployment.services import ServiceUnavailable


def _deployment(celery_workers: int = 0) -> Iterator[Deployment]:
    workdir = Path(tempfile.mkdtemp(prefix="airflow-deployment-"))
    workdir.chmod(0o755)  # the postgres user must reach its data directory inside
    try:
        with run_deployment(workdir, celery_workers=celery_workers) as running:
            yield running
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="package")
def deployment() -> Iterator[Deployment]:
    yield from _deployment()


@pytest.fixture(scope="module")
def celery_deployment() -> Iterator[Deployment]:
    pytest.importorskip(
        "airflow.providers.celery", reason="apache-airflow-providers-celery is installed by the newest combination only"
    )
    yield from _deployment(celery_workers=2)
