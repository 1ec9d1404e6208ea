"""The hostname a Celery worker of the deployment tier records on its task instances.

Airflow records ``[core] hostname_callable()`` as each task instance's ``hostname``; on one
machine every worker would report the same name. Each worker of the tier is started with this
directory on its ``PYTHONPATH``, ``AIRFLOW__CORE__HOSTNAME_CALLABLE=deployment_worker_host.hostname``
and its own ``DEPLOYMENT_WORKER_HOSTNAME``, so the REST API shows which worker ran what, as it
would for workers on separate machines.
"""

from __future__ import annotations

import os


def hostname() -> str:
    """This worker's name (``DEPLOYMENT_WORKER_HOSTNAME``, set by ``tests/deployment/deployment.py``)."""
    return os.environ["DEPLOYMENT_WORKER_HOSTNAME"]
