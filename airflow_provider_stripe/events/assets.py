"""Stripe events as Airflow assets: the ``stripe://`` asset URIs and the event summary they carry.

Polled and pushed events carry the same :func:`summarize_event` dict. Light imports only (DAG-parse time).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from airflow_provider_stripe.compat import read_field

if TYPE_CHECKING:
    from airflow.sdk import Asset

ASSET_SCHEME = "stripe"

EVENTS_HOST = "events"
"""``stripe://events/<event type>``: the assets the webhook endpoint records events on."""

_EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
"""Stripe event types are dotted lowercase words: ``payout.paid``, ``charge.dispute.created``."""

_EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
"""Stripe object ids (``evt_1Nq...``): letters, digits and underscores, nothing else."""

_OTHER_HOST_PATH = re.compile(r"/[A-Za-z0-9_.\-/]+")


def is_event_type(value: str) -> bool:
    """True for a concrete Stripe event type such as ``payout.paid`` (no wildcard)."""
    return bool(_EVENT_TYPE.fullmatch(value))


def event_asset_uri(event_type: str) -> str:
    """``stripe://events/<event_type>``, the URI the webhook endpoint records ``event_type`` on."""
    if not is_event_type(event_type):
        raise ValueError(
            f"{event_type!r} is not a Stripe event type: expected dotted lowercase words such as 'payout.paid' "
            "(wildcards like 'payout.*' can be polled by StripeEventTrigger but are not asset URIs)"
        )
    return f"{ASSET_SCHEME}://{EVENTS_HOST}/{event_type}"


def event_asset(event_type: str, **kwargs: Any) -> Asset:
    """An :class:`airflow.sdk.Asset` for ``stripe://events/<event_type>``; other keyword arguments go to ``Asset``."""
    from airflow.sdk import Asset

    uri = event_asset_uri(event_type)
    return Asset(name=kwargs.pop("name", uri), uri=uri, **kwargs)


def normalize_stripe_uri(parts: SplitResult) -> SplitResult:
    """Airflow asset-URI handler for ``stripe://``: lower-case the host and refuse malformed URIs, so a
    misspelt one fails at parse time; ``stripe://events/<type>`` must name one concrete type."""
    host = parts.netloc.lower()
    if not host:
        raise ValueError("a stripe:// asset URI needs a host, e.g. stripe://events/payout.paid")
    if host == EVENTS_HOST:
        event_type = parts.path.lstrip("/")
        if not is_event_type(event_type) or parts.query:
            raise ValueError(
                f"stripe://{EVENTS_HOST}/ asset URIs name one Stripe event type, e.g. "
                f"stripe://{EVENTS_HOST}/payout.paid; got path {parts.path!r}"
                + (f" and query {parts.query!r}" if parts.query else "")
            )
    elif parts.path not in ("", "/") and not _OTHER_HOST_PATH.fullmatch(parts.path):
        raise ValueError(f"stripe:// asset URI path {parts.path!r} may only hold letters, digits and . _ - /")
    return parts._replace(netloc=host)


def summarize_event(event: Any) -> dict[str, Any]:
    """The small, JSON-serialisable description of a Stripe event (dict or ``stripe.Event``) that Airflow records:
    never the object (it may hold personal data). ``ValueError`` when it is not a Stripe event."""
    event_id = read_field(event, "id")
    event_type = read_field(event, "type")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise ValueError("not a Stripe event: it needs a string 'id' of letters, digits and underscores")
    if not isinstance(event_type, str) or not is_event_type(event_type):
        raise ValueError("not a Stripe event: its 'type' must be dotted lowercase words such as 'payout.paid'")
    data_object = read_field(read_field(event, "data"), "object")
    created = read_field(event, "created")
    if created is not None and (isinstance(created, bool) or not isinstance(created, int)):
        raise ValueError("not a Stripe event: its 'created' must be an integer number of seconds")
    account = read_field(event, "account")
    object_id = read_field(data_object, "id")
    object_type = read_field(data_object, "object")
    return {
        "event_id": event_id,
        "type": event_type,
        "created": created,
        "livemode": bool(read_field(event, "livemode")),
        "account": account if isinstance(account, str) else None,
        "object_id": object_id if isinstance(object_id, str) else None,
        "object_type": object_type if isinstance(object_type, str) else None,
    }
