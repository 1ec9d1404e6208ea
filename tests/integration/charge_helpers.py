"""Helpers for the charge refusal tests: a scripted charges API for the recording stub.

:class:`FakeChargesApi` answers ``POST /v1/charges`` on a
:class:`~tests.servers.stub_stripe.StubServer` like Stripe does, except when its
``decline`` callback returns a refusal (e.g. :func:`card_declined`); refusals create
nothing. Put the fault proxy in front of the stub to get Stripe's idempotency semantics
(a reused key replays the saved refusal).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from tests.servers.stub_stripe import RecordedRequest, StubResponse, stripe_error

Decline = Callable[[Mapping[str, str]], StubResponse | None]


def card_declined(decline_code: str = "insufficient_funds") -> StubResponse:
    """Stripe's answer to a declined card: a definitive 402 ``card_error``."""
    return stripe_error(
        402, "card_error", "card_declined", "Your card has insufficient funds.", decline_code=decline_code
    )


class FakeChargesApi:
    """``POST /v1/charges`` for the stub: creates a charge unless ``decline(form)`` refuses it."""

    def __init__(self, decline: Decline | None = None) -> None:
        self.decline = decline
        self.charges: list[dict[str, Any]] = []
        self.creates: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, req: RecordedRequest) -> StubResponse | None:
        if req.path != "/v1/charges" or req.method != "POST":
            return None
        form = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        with self._lock:
            self.creates.append(req)
            refusal = self.decline(form) if self.decline else None
            if refusal is not None:
                return refusal
            charge = {
                "id": f"ch_fake{next(self._ids):08d}",
                "object": "charge",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "status": "succeeded",
                "paid": True,
                "captured": form.get("capture") != "false",
                "refunded": False,
                "amount_refunded": 0,
                "livemode": False,
                "created": int(time.time()),
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.charges.append(charge)
        return StubResponse(200, charge)

    @property
    def keys(self) -> list[str]:
        """The ``Idempotency-Key`` of every create that reached the stub, in order."""
        return [r.headers["Idempotency-Key"] for r in self.creates]


def decline_first(times: int = 1, match: Mapping[str, str] | None = None) -> Decline:
    """Decline the first ``times`` creates whose form has every ``match`` field, then accept."""
    left = {"n": times}
    wanted = dict(match or {})

    def decline(form: Mapping[str, str]) -> StubResponse | None:
        if left["n"] > 0 and all(form.get(k) == v for k, v in wanted.items()):
            left["n"] -= 1
            return card_declined()
        return None

    return decline
