"""The provider's Airflow plugin: what it adds to the API server.

* the Stripe webhook endpoint (see :mod:`airflow_provider_stripe.events.endpoint`);
* a middleware that lets the Test button work for Stripe connections on Airflow
  3.3.1-3.3.2 (see :mod:`airflow_provider_stripe.plugins.connection_test_fix`).

Registered through the ``airflow.plugins`` entry point, so installing the package is enough.
Workers and the scheduler load plugins too, so loading this one imports no web framework:
the webhook app is built on its first request (FastAPI alone costs about 0.3 s to import).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_stripe.constants import WEBHOOK_URL_PREFIX
from airflow_provider_stripe.plugins.connection_test_fix import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    StripeConnectionTestPortFix,
)


class LazyWebhookApp:
    """An ASGI app that builds the webhook FastAPI app when the first request arrives."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from airflow_provider_stripe.events.endpoint import create_webhook_app

            self._app = create_webhook_app()
        await self._app(scope, receive, send)


class StripePlugin(AirflowPlugin):
    name = "stripe"
    fastapi_apps: list[dict[str, Any]] = [
        {"app": LazyWebhookApp(), "url_prefix": WEBHOOK_URL_PREFIX, "name": "Stripe webhooks"}
    ]
    fastapi_root_middlewares = [
        {
            "middleware": StripeConnectionTestPortFix,
            "args": [],
            "kwargs": {},
            "name": "Stripe connection Test button fix (Airflow 3.3.1-3.3.2, port 0)",
        }
    ]
