"""A ``stripe`` Airflow connection held in an environment variable, for local runs.

Airflow reads ``AIRFLOW_CONN_<CONN_ID>`` (JSON) before its metadata database, so a demo
or test can point a connection at a local Stripe-compatible server, or at Stripe's test
mode, without creating anything in the database.
"""

from __future__ import annotations

import json
from typing import Any

LOCAL_TEST_KEY = "sk_test_localstripe"
"""Any ``sk_test_`` key is accepted by localstripe."""
LOCAL_WEBHOOK_SECRET = "whsec_localdemo"
"""The contract requires a webhook secret on every connection; nothing verifies it here."""


def connection_env(
    conn_id: str,
    *,
    api_key: str = LOCAL_TEST_KEY,
    base_url: str | None = None,
    webhook_secret: str = LOCAL_WEBHOOK_SECRET,
    **fields: Any,
) -> dict[str, str]:
    """``{"AIRFLOW_CONN_<ID>": <json>}`` for a ``stripe`` connection (``base_url`` None: real Stripe).

    ``fields`` are further connection fields (``account_id``, ``max_network_retries``, ...).
    """
    extra: dict[str, Any] = {"api_key": api_key, "webhook_secret": webhook_secret, **fields}
    if base_url:
        extra["base_url"] = base_url
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "stripe", "extra": extra})}
