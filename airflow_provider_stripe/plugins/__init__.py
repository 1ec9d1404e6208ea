"""The provider's Airflow plugin: the webhook endpoint, the payout-batch view and the Test button fix.

Workers and the scheduler load plugins too, so this imports no web framework: each app is built on
its first request (FastAPI alone costs about 0.3 s to import).
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_stripe.constants import PAYOUT_VIEW_URL_PREFIX, WEBHOOK_URL_PREFIX
from airflow_provider_stripe.plugins import connection_test_fix as fix


class LazyApp:
    """An ASGI app that builds a FastAPI app (``module:factory``) when the first request arrives."""

    def __init__(self, factory: str) -> None:
        self._factory = factory
        self._app: fix.ASGIApp | None = None

    async def __call__(self, scope: fix.Scope, receive: fix.Receive, send: fix.Send) -> None:
        if self._app is None:
            module, name = self._factory.split(":")
            self._app = getattr(importlib.import_module(module), name)()
        await self._app(scope, receive, send)


class StripePlugin(AirflowPlugin):
    name = "stripe"
    fastapi_apps: list[dict[str, Any]] = [
        {
            "app": LazyApp("airflow_provider_stripe.events.endpoint:create_webhook_app"),
            "url_prefix": WEBHOOK_URL_PREFIX,
            "name": "Stripe webhooks",
        },
        {
            "app": LazyApp("airflow_provider_stripe.plugins.payout_view:create_payout_view_app"),
            "url_prefix": PAYOUT_VIEW_URL_PREFIX,
            "name": "Stripe payout batches",
        },
    ]
    external_views: list[dict[str, Any]] = [
        {
            "name": "Stripe payouts",
            "href": f"{PAYOUT_VIEW_URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "stripe_payouts",
        },
        {
            "name": "Payout batch",
            "href": f"{PAYOUT_VIEW_URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "stripe_payout_batch",
        },
    ]
    fastapi_root_middlewares = [
        {
            "middleware": fix.StripeConnectionTestPortFix,
            "args": [],
            "kwargs": {},
            "name": "Stripe connection Test button fix (Airflow 3.3.1-3.3.2, port 0)",
        }
    ]
