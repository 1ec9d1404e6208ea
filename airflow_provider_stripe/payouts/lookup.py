"""Fetch many Stripe payouts' status cheaply: list 100 a page until every id is seen (``ceil(n / 100)``
requests for recent payouts), then, after :data:`LIST_SLACK_PAGES` extra pages, retrieve the rest one by
one (missing if unknown); a handful (``<= RETRIEVE_AT_MOST``) are retrieved directly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.constants import PAGE_SIZE
from airflow_provider_stripe.errors import StripeRequestError
from airflow_provider_stripe.payouts.watch import PayoutSnapshot

if TYPE_CHECKING:
    from airflow_provider_stripe.hooks.requests import StripeRequests

LIST_SLACK_PAGES = 2
RETRIEVE_AT_MOST = 3


@dataclass
class PayoutLookup:
    """What one lookup found, and what it cost."""

    found: dict[str, PayoutSnapshot] = field(default_factory=dict)
    list_requests: int = 0
    retrieve_requests: int = 0

    @property
    def requests(self) -> int:
        return self.list_requests + self.retrieve_requests

    def describe(self) -> str:
        return (
            f"{len(self.found)} payouts looked up with {self.requests} Stripe requests "
            f"({self.list_requests} list pages, {self.retrieve_requests} retrieves)"
        )


class _Scan:
    """Bookkeeping of one lookup: which ids are still unseen, when to stop listing."""

    def __init__(self, payout_ids: Sequence[str]) -> None:
        self.wanted = tuple(dict.fromkeys(payout_ids))
        self.unseen = set(self.wanted)
        self.use_list = len(self.wanted) > RETRIEVE_AT_MOST
        self.result = PayoutLookup(list_requests=int(self.use_list))
        pages = math.ceil(len(self.wanted) / PAGE_SIZE) + LIST_SLACK_PAGES
        self._budget = pages * PAGE_SIZE
        self._listed = 0

    def add_listed(self, payout: Any) -> bool:
        """Take one listed payout; True when listing should stop."""
        self._listed += 1
        self.result.list_requests = math.ceil(self._listed / PAGE_SIZE)
        payout_id = payout["id"]
        if payout_id in self.unseen:
            self.unseen.discard(payout_id)
            self.result.found[payout_id] = PayoutSnapshot.from_stripe(payout)
        return not self.unseen or self._listed >= self._budget

    def remaining(self) -> list[str]:
        return [p for p in self.wanted if p in self.unseen]

    def add_retrieved(self, payout_id: str, payout: Any) -> None:
        """Take a retrieved payout, or ``None`` when Stripe answered 404 (left out of ``found``)."""
        self.result.retrieve_requests += 1
        self.unseen.discard(payout_id)
        if payout is not None:
            self.result.found[payout_id] = PayoutSnapshot.from_stripe(payout)

    def add_failed(self, payout_id: str, error: StripeRequestError) -> None:
        """A 404 while retrieving leaves the payout out of ``found``; other errors raise."""
        if error.http_status != 404:
            raise error
        self.add_retrieved(payout_id, None)


def fetch_payouts(requests: StripeRequests, payout_ids: Sequence[str]) -> PayoutLookup:
    """Look up ``payout_ids`` with sync requests (sensor pokes)."""
    scan = _Scan(payout_ids)
    if scan.use_list:
        for payout in requests.list_all("payouts", {"limit": PAGE_SIZE}):
            if scan.add_listed(payout):
                break
    for payout_id in scan.remaining():
        try:
            scan.add_retrieved(payout_id, requests.payouts_retrieve(payout_id))
        except StripeRequestError as error:
            scan.add_failed(payout_id, error)
    return scan.result


async def afetch_payouts(requests: StripeRequests, payout_ids: Sequence[str]) -> PayoutLookup:
    """Look up ``payout_ids`` with the SDK's async client (the trigger)."""
    scan = _Scan(payout_ids)
    if scan.use_list:
        async for payout in requests.list_all_async("payouts", {"limit": PAGE_SIZE}):
            if scan.add_listed(payout):
                break
    for payout_id in scan.remaining():
        try:
            scan.add_retrieved(payout_id, await requests.payouts_retrieve_async(payout_id))
        except StripeRequestError as error:
            scan.add_failed(payout_id, error)
    return scan.result
