"""The idempotent-request engine: every money-moving request of the provider goes through it.

Stripe replays the first answer for a key, errors included, for ~24 h. So a request refused
definitively (``StripeRequestError.is_definitive``: nothing created) moves to the next key
generation; one whose answer was lost keeps its key, as money may have moved. Generations are
taken in order, never skipped, so every try and run meets the keys the others used."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from airflow_provider_stripe.compat import read_field
from airflow_provider_stripe.errors import StripeRequestError, from_stripe_error

if TYPE_CHECKING:
    import logging

    from airflow_provider_stripe.payouts.keys import KeyFunction, RunIdentity
    from airflow_provider_stripe.payouts.ledger import Ledger

T = TypeVar("T")


MAX_KEY_HOPS = 3
"""How many times one try moves on to a fresh key after *replayed* refusals (or more: one
generation per earlier try)."""


def was_replayed(answer: Any) -> bool:
    """Whether Stripe answered from its idempotency store (``Idempotent-Replayed: true``) on an error or response."""
    headers = getattr(answer, "headers", None) or {}
    for name, value in dict(headers).items():
        if str(name).lower() == "idempotent-replayed":
            return str(value).lower() == "true"
    return False


def without_key(error: StripeRequestError, key: str, operation: str | None = None) -> StripeRequestError:
    """The same error with the idempotency key (which Stripe quotes in some messages) masked,
    named by ``operation`` if given (the engine's name of the request, e.g. which item)."""
    if key not in error.stripe_message and operation in (None, error.operation):
        return error
    same = {k: getattr(error, k) for k in ("error_type", "code", "request_id", "http_status", "decline_code", "param")}
    message = error.stripe_message.replace(key, "<idempotency key>")
    return StripeRequestError(operation=operation or error.operation, message=message, **same)


Outcome = Literal["created", "existing", "refused", "used_elsewhere", "unknown"]
"""How a request ended: ``created`` by this try; ``existing`` (Stripe replayed an earlier success);
``refused`` definitively (next attempt: fresh key); ``used_elsewhere`` (key used with other
parameters: something may exist, see :func:`used_elsewhere`); ``unknown`` (lost, transient or
still in flight: the object may exist, the next attempt reuses the key)."""

IN_FLIGHT_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds to wait before sending again while Stripe says another request with the key is in
flight (``409 idempotency_key_in_use``; Stripe runs it to its end): 15.5 s in all."""


def used_elsewhere(error: StripeRequestError) -> bool:
    """Whether Stripe refused the key because it was used with *other* parameters (``400 idempotency_error``)."""
    return error.error_type == "idempotency_error" and error.http_status == 400


def in_flight(error: StripeRequestError) -> bool:
    """Whether another request with the same key is still in flight at Stripe (``409``)."""
    in_use = error.error_type == "idempotency_error" or error.code == "idempotency_key_in_use"
    return error.http_status == 409 and in_use


@dataclass(frozen=True)
class Attempt:
    """One request to send: which reference, under which generation's key. ``hops``: fresh keys taken
    within this try after replayed refusals; ``sent_before``: this generation's key may have been sent by
    an earlier try; ``waits``: waits so far for another request with this key in flight (:data:`IN_FLIGHT_WAITS`)."""

    reference: str
    generation: int
    hops: int = 0
    sent_before: bool = False
    waits: int = 0


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What one :meth:`IdempotentRequests.send` brought back (``result`` or ``error``, the key masked);
    ``cause`` is the SDK exception to chain, ``None`` if it quotes the key; ``settle`` sets ``outcome``."""

    attempt: Attempt
    key: str
    operation: str
    result: T | None = None
    error: StripeRequestError | None = None
    cause: BaseException | None = None
    replayed: bool = False
    outcome: Outcome | None = None


class IdempotentRequests(Generic[T]):
    """Sends requests of one scope under the provider's key rules. ``scope``: the kind of request
    (``charges.create``, ``payout``), the derived keys' prefix; ``key_for``: ``(reference, generation) -> key``,
    default the identity's task key."""

    def __init__(
        self, *, identity: RunIdentity, scope: str, ledger: Ledger, key_for: KeyFunction | None = None
    ) -> None:
        self.identity = identity
        self.scope = scope
        self.ledger = ledger
        self.key_for = key_for
        # A try may need one hop per earlier try (each may have spent a generation).
        self.max_hops = max(MAX_KEY_HOPS, identity.try_number)
        self.started = int(time.time()) - 1
        """Unix time this try began: a replayed success created before it is an earlier try's."""

    def key(self, reference: str, generation: int) -> str:
        """The idempotency key of ``reference`` at ``generation``. Never log it."""
        if self.key_for is not None:
            return self.key_for(reference, generation)
        return self.identity.idempotency_key(self.scope, reference, generation)

    def current_generation(self, reference: str) -> int:
        """The generation the ledger holds for ``reference`` (0 if none); writes nothing (dry runs)."""
        state = self.ledger.get(reference)
        return state.generation if state is not None else 0

    def plan(self, reference: str) -> Attempt:
        """The first attempt of this try: the remembered generation, or the next one after a refusal."""
        state = self.ledger.get(reference)
        if state is None:
            return Attempt(reference, 0)
        if state.code == "refused":
            return self.advance(reference, state.generation, hops=0)
        return Attempt(reference, state.generation, sent_before=True)

    def send(
        self,
        attempt: Attempt,
        call: Callable[[str], T],
        operation: str,
        *,
        key: str | None = None,
        contain: bool = False,
    ) -> Answer[T]:
        """Send ``call(key)`` under the attempt's key (or ``key``), from any thread, after any in-flight wait.

        A Stripe error is returned in the answer, not raised; with ``contain`` any other exception too
        (as an unknown outcome), for worker threads that must not raise."""
        key = key or self.key(attempt.reference, attempt.generation)
        if attempt.waits:
            time.sleep(IN_FLIGHT_WAITS[attempt.waits - 1])
        try:
            result = call(key)
        except StripeRequestError as exc:
            sdk_error = exc.__cause__
            # Stripe quotes the key in some messages: keep the SDK's error out of the chain then.
            cause = None if key in str(sdk_error) else sdk_error
            error = without_key(exc, key, operation)
            return Answer(attempt, key, operation, error=error, cause=cause, replayed=was_replayed(sdk_error))
        except Exception as exc:
            if not contain:
                raise
            return Answer(attempt, key, operation, error=without_key(from_stripe_error(exc, operation), key))
        replayed = was_replayed(getattr(result, "last_response", None))
        return Answer(attempt, key, operation, result=result, replayed=replayed)

    def settle(self, answer: Answer[T], log: logging.Logger | Any) -> Attempt | Answer[T]:
        """Record an answer in the ledger (calling thread); return a follow-up :class:`Attempt` or the final answer.

        A replayed refusal (an earlier try's) goes on at once under a fresh key; a key still in flight is
        retried after a wait, never under another key, since that request may pay."""
        attempt = answer.attempt
        reference = attempt.reference
        if answer.error is None:
            # A replay of this try's own request (the SDK retried after a lost answer) is still
            # "created"; a replay of an earlier try's request is "existing".
            earlier = answer.replayed and (
                attempt.sent_before or int(read_field(answer.result, "created") or 0) < self.started
            )
            # An earlier try's object: the caller learns which try from its creation time.
            made_by = None if earlier else self.identity.try_number
            self.ledger.record(reference, attempt.generation, "ok", read_field(answer.result, "id"), made_by)
            return replace(answer, outcome="existing" if earlier else "created")
        error = answer.error
        if in_flight(error) and attempt.waits < len(IN_FLIGHT_WAITS):
            log.info(
                "%s: another request with this idempotency key is in flight at Stripe; waiting %.1f s, then "
                "asking again under the same key",
                answer.operation,
                IN_FLIGHT_WAITS[attempt.waits],
            )
            return replace(attempt, waits=attempt.waits + 1)
        if not error.is_definitive:
            self.ledger.record(reference, attempt.generation, "unknown")
            return replace(answer, outcome="used_elsewhere" if used_elsewhere(error) else "unknown")
        if answer.replayed and attempt.hops < self.max_hops:
            log.info(
                "%s: Stripe replayed a refusal an earlier try saved under its idempotency key (%s); nothing was "
                "done under it, so it is sent again under a fresh key",
                answer.operation,
                error.code or error.error_type or error.http_status,
            )
            return self.advance(reference, attempt.generation, hops=attempt.hops + 1)
        self.ledger.record(reference, attempt.generation, "refused")
        return replace(answer, outcome="refused")

    def request(self, reference: str, call: Callable[[str], T], operation: str, log: logging.Logger | Any) -> Answer[T]:
        """Send one request to its end in the calling thread: plan, send, settle, follow fresh keys."""
        settled: Attempt | Answer[T] = self.plan(reference)
        while isinstance(settled, Attempt):
            settled = self.settle(self.send(settled, call, operation), log)
        return settled

    def advance(self, reference: str, generation: int, *, hops: int) -> Attempt:
        """Move past ``generation``, proven to hold nothing paid: the next one, recorded before use."""
        self.ledger.record(reference, generation + 1, "sent")
        return Attempt(reference, generation + 1, hops=hops)
