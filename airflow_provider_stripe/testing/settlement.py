"""SIMULATION ONLY: a "bank" that settles payouts on a local Stripe-compatible server.

Real Stripe moves a payout from ``pending`` to ``paid`` (or ``failed``) itself, when the
bank confirms it. localstripe never does: its payouts stay ``pending`` forever, so a
sensor waiting for them would never finish. :class:`SettlementSimulator` plays the bank:
a background thread lists the server's payouts and, once a payout has been seen
``pending`` for ``delay`` seconds, sets its status through localstripe's update endpoint
(``POST /v1/payouts/{id}`` with ``status=paid``, a JSON body so that dates stay integers) --
a call real Stripe refuses, which is why this refuses any base URL that is not a loopback
address.

``decide`` chooses the outcome per payout (default: paid), so tests can also simulate a
``failed`` payout with a ``failure_code`` and ``failure_message``; ``delay`` may also be
chosen per payout (e.g. keep some pending long enough for a sensor to defer).

As Stripe does, a payout it marks paid gets ``arrival_date`` = the time it was paid, and a
paid payout can fail later (:attr:`Settlement.then`): Stripe then sets ``status=failed``,
``failure_code``, ``failure_message`` and ``failure_balance_transaction`` (the
``payout_failure`` transaction returning the amount to the balance).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests


@dataclass(frozen=True)
class Settlement:
    """The outcome the simulated bank gives one payout."""

    status: str = "paid"
    failure_code: str | None = None
    failure_message: str | None = None
    then: Settlement | None = None
    """What the bank does ``then_after`` seconds later (e.g. fail a paid payout)."""
    then_after: float = 0.0

    def form(self, payout_id: str, now: float) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "status": self.status,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
        }
        if self.status == "paid":
            fields["arrival_date"] = int(now)
        elif self.status == "failed":
            fields["failure_balance_transaction"] = f"txn_failure_{payout_id}"
        return {k: v for k, v in fields.items() if v is not None}


PAID = Settlement()


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Decide = Callable[[Mapping[str, Any]], Settlement]
Delay = Callable[[Mapping[str, Any]], float]


class SettlementSimulator:
    """Settle every ``pending`` payout of a local server ``delay`` seconds after first seeing it.

    Use as a context manager (starts and stops the thread). ``settled`` maps each payout
    id it changed to the :class:`Settlement` it applied (its last one).

    :param base_url: the local server, e.g. ``http://127.0.0.1:PORT`` (loopback only).
    :param api_key: any test key the server accepts.
    :param delay: seconds a payout stays ``pending`` before it is settled, or payout (as
        JSON) -> those seconds.
    :param interval: seconds between scans.
    :param decide: payout (as JSON) -> :class:`Settlement`; default: paid.
    :param accounts: whose payouts it settles: ``None`` is the platform, an ``acct_...`` id a
        connected account (listed and settled with ``Stripe-Account``, since Stripe's lists, and
        the local front's, show one account's payouts only).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        delay: float | Delay = 2.0,
        interval: float = 0.25,
        decide: Decide | None = None,
        accounts: Sequence[str | None] = (None,),
    ) -> None:
        if not _is_loopback(urlsplit(base_url).hostname or ""):
            raise ValueError(f"the settlement simulator only drives a local test server, not {base_url}")
        self.base_url = base_url.rstrip("/")
        if callable(delay):
            self.delay: Delay = delay
        else:
            seconds = float(delay)
            self.delay = lambda _payout: seconds
        self.interval = interval
        self.decide = decide or (lambda _payout: PAID)
        self.accounts = tuple(accounts)
        self.settled: dict[str, Settlement] = {}
        self._first_seen: dict[str, float] = {}
        self._later: dict[str, tuple[float, Settlement]] = {}
        self._session = requests.Session()
        self._session.auth = (api_key, "")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="settlement-simulator", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> SettlementSimulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._session.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except requests.RequestException as exc:  # the server may be restarting: keep trying
                self.error = exc
            self._stop.wait(self.interval)

    def scan_once(self) -> None:
        """Settle the pending payouts whose delay has passed, and apply due later outcomes (one pass)."""
        now = time.monotonic()
        for account, payout in self._iter_payouts():
            payout_id = payout["id"]
            later = self._later.get(payout_id)
            if later is not None and now >= later[0]:
                del self._later[payout_id]
                self._apply(account, payout_id, later[1], now)
                continue
            if payout.get("status") != "pending" or payout_id in self.settled:
                continue
            first = self._first_seen.setdefault(payout_id, now)
            if now - first < self.delay(payout):
                continue
            self._apply(account, payout_id, self.decide(payout), now)

    def _apply(self, account: str | None, payout_id: str, outcome: Settlement, now: float) -> None:
        resp = self._session.post(
            f"{self.base_url}/v1/payouts/{payout_id}",
            json=outcome.form(payout_id, time.time()),
            headers=_headers(account),
            timeout=5,
        )
        resp.raise_for_status()
        self.settled[payout_id] = outcome
        if outcome.then is not None:
            self._later[payout_id] = (now + outcome.then_after, outcome.then)

    def _iter_payouts(self) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """Every payout of every account it settles, with that account."""
        for account in self.accounts:
            params: dict[str, Any] = {"limit": 100}
            while True:
                resp = self._session.get(
                    f"{self.base_url}/v1/payouts", params=params, headers=_headers(account), timeout=5
                )
                resp.raise_for_status()
                page = resp.json()
                yield from ((account, payout) for payout in page["data"])
                if not page.get("has_more") or not page["data"]:
                    break
                params["starting_after"] = page["data"][-1]["id"]


def _headers(account: str | None) -> dict[str, str]:
    return {"Stripe-Account": account} if account else {}
