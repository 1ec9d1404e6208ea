"""The provider's Airflow plugin: what it adds to the API server.

* the Stripe webhook endpoint (see :mod:`airflow_provider_stripe.web.webhook_app`);
* a middleware that lets the Test button work for Stripe connections on Airflow
  3.3.1-3.3.2 (see :mod:`airflow_provider_stripe.web.connection_test_fix`).

Registered through the ``airflow.plugins`` entry point, so installing the package is enough.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_stripe.web.connection_test_fix import StripeConnectionTestPortFix
from airflow_provider_stripe.web.webhook_app import WEBHOOK_URL_PREFIX, create_webhook_app


def _fastapi_apps() -> list[dict[str, Any]]:
    return [{"app": create_webhook_app(), "url_prefix": WEBHOOK_URL_PREFIX, "name": "Stripe webhooks"}]


class StripePlugin(AirflowPlugin):
    name = "stripe"
    fastapi_apps = _fastapi_apps()
    fastapi_root_middlewares = [
        {
            "middleware": StripeConnectionTestPortFix,
            "args": [],
            "kwargs": {},
            "name": "Stripe connection Test button fix (Airflow 3.3.1-3.3.2, port 0)",
        }
    ]
