"""Stripe payout outcomes (``payout.paid`` / ``payout.failed``) drive a reconciliation DAG, two ways.

* **Pull** -- ``stripe_payout_events_polled``: an asset watched by a
  :class:`~airflow_provider_stripe.triggers.events.StripeEventTrigger`. The triggerer polls
  Stripe's events API (rate limited, with backoff) and records an asset event per new payout
  outcome; the cursor survives triggerer restarts in the asset's state store. Needs only
  outbound access to Stripe and a running ``airflow triggerer``; Airflow runs an asset's
  watchers only while a DAG scheduled on that asset is unpaused.
* **Push** -- ``stripe_payout_events_webhook``: scheduled on ``stripe://events/payout.paid``
  and ``stripe://events/payout.failed``, the assets the provider's webhook endpoint records
  on. Point a Stripe webhook endpoint (events ``payout.paid``, ``payout.failed``) at
  ``https://<airflow api-server>/stripe/webhooks/stripe_default``.

Either way, each triggering asset event carries the same small ``payload`` (event id, type,
created, livemode, account, object id and type); the task fetches the payout itself and
reports whether Stripe's current state confirms the event. It only reads, so a replayed
event (possible after a triggerer crash) is harmless.

Parsing stays cheap: no Stripe SDK import at module level, no connection lookups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_stripe.events.assets import event_asset
from airflow_provider_stripe.triggers.events import StripeEventTrigger

STRIPE_CONN_ID = "stripe_default"
PAYOUT_OUTCOMES = ["payout.paid", "payout.failed"]
EXPECTED_STATUS = {"payout.paid": "paid", "payout.failed": "failed"}

polled_payout_outcomes = Asset(
    name="stripe_payout_outcomes_polled",
    uri="stripe://polled/payout-outcomes",
    watchers=[
        AssetWatcher(
            name="stripe_payout_outcomes",
            trigger=StripeEventTrigger(stripe_conn_id=STRIPE_CONN_ID, types=PAYOUT_OUTCOMES, poll_interval=60),
        )
    ],
)
payout_paid, payout_failed = (event_asset(event_type) for event_type in PAYOUT_OUTCOMES)


@task
def reconcile_payouts(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
    """Check each payout outcome event against the payout as Stripe reports it now."""
    from airflow_provider_stripe.hooks.stripe import StripeHook

    hook = StripeHook(STRIPE_CONN_ID)
    results: list[dict[str, Any]] = []
    for events in (triggering_asset_events or {}).values():
        for asset_event in events:
            summary = asset_event.extra.get("payload") or {}
            if summary.get("object_type") != "payout" or summary.get("type") not in EXPECTED_STATUS:
                continue
            options = {"stripe_account": summary["account"]} if summary.get("account") else {}
            payout = hook.get_client().v1.payouts.retrieve(summary["object_id"], options=options)  # type: ignore[arg-type]
            expected = EXPECTED_STATUS[summary["type"]]
            result = {
                "event_id": summary["event_id"],
                "payout_id": payout.id,
                "event_type": summary["type"],
                "status": payout.status,
                "amount": payout.amount,
                "currency": payout.currency,
                "confirmed": payout.status == expected,
                "failure_code": getattr(payout, "failure_code", None),
            }
            if not result["confirmed"]:
                print(f"Payout {payout.id} is {payout.status!r} now, not {expected!r} as {summary['type']} said")
            results.append(result)
    return results


with DAG(
    dag_id="stripe_payout_events_polled",
    schedule=[polled_payout_outcomes],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["stripe", "payouts", "events"],
    doc_md=__doc__,
):
    reconcile_payouts()

with DAG(
    dag_id="stripe_payout_events_webhook",
    schedule=(payout_paid | payout_failed),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["stripe", "payouts", "webhooks"],
    doc_md=__doc__,
):
    reconcile_payouts()
