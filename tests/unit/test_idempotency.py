"""The provider's idempotency keys: derivation, generations in the state store, explicit keys."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.errors import StripeInputError, StripeRequestError
from airflow_provider_stripe.hooks import idempotency
from airflow_provider_stripe.hooks.idempotency import Attempt, IdempotentRequests, without_key
from airflow_provider_stripe.hooks.requests import translated
from airflow_provider_stripe.payouts.keys import RunIdentity, explicit_key_function
from airflow_provider_stripe.payouts.ledger import GENERATION_STATE_PREFIX, SingleRequestLedger
from tests.integration.payout_helpers import MemoryStateStore, payout_context
from tests.integration.stripe_task_context import task_context


def derive_idempotency_key(context: Any, operation: str, *parts: str, generation: int = 0) -> str:
    return RunIdentity.from_context(context).idempotency_key(operation, "/".join(parts), generation)


def test_single_request_keys_are_stable_across_tries_and_differ_per_request() -> None:
    key = derive_idempotency_key(task_context(), "charges.create")
    assert key.startswith("airflow-charges.create-") and len(key) == len("airflow-charges.create-") + 64
    assert derive_idempotency_key(task_context(try_number=4), "charges.create") == key
    others = {
        derive_idempotency_key(task_context(), "charges.capture"),
        derive_idempotency_key(task_context(), "charges.create", "ch_1"),
        derive_idempotency_key(task_context(), "charges.create", generation=1),
        derive_idempotency_key(task_context(map_index=0), "charges.create"),
        derive_idempotency_key(task_context(run_id="manual__other"), "charges.create"),
        derive_idempotency_key(task_context(task_id="other"), "charges.create"),
    }
    assert key not in others and len(others) == 6


def _keys(store: Any = None, try_number: int = 1, explicit: str | None = None) -> IdempotentRequests[Any]:
    return IdempotentRequests(
        identity=RunIdentity.from_context(payout_context(try_number=try_number)),
        scope="charges.create",
        ledger=SingleRequestLedger(store, "charges.create"),
        key_for=explicit_key_function(explicit) if explicit else None,
    )


def _advance(keys: IdempotentRequests[Any], generation: int) -> int:
    return keys.advance("", generation, hops=0).generation


def _current(keys: IdempotentRequests[Any]) -> int:
    return keys.plan("").generation


def test_generations_are_stored_before_use_and_walked_one_by_one() -> None:
    store = MemoryStateStore()
    keys = _keys(store)
    assert _current(keys) == 0
    assert _advance(keys, 0) == 1 and store.get(GENERATION_STATE_PREFIX + "charges.create") == 1
    assert _current(_keys(store, try_number=5)) == 1, "the next try starts at the stored generation"
    # Without a store every try starts at 0 and walks (never jumps past an earlier try's key).
    assert _current(_keys(None, try_number=5)) == 0 and _advance(_keys(None, try_number=5), 0) == 1
    store.set(GENERATION_STATE_PREFIX + "charges.create", "garbage")
    assert _current(_keys(store)) == 0
    assert keys.key("", 0) != keys.key("", 1) and keys.key("", 1) == keys.key("", 1)


def test_explicit_key_gets_a_suffix_for_fresh_generations_and_a_length_limit() -> None:
    keys = _keys(explicit="order-42")
    assert [keys.key("", g) for g in (0, 1, 2)] == ["order-42", "order-42-retry1", "order-42-retry2"]
    with pytest.raises(StripeInputError, match=r"field 'idempotency_key'.*241 characters"):
        explicit_key_function("k" * 241)


def _error(status: int | None, kind: str, message: str = "m") -> StripeRequestError:
    return StripeRequestError(
        operation="x", error_type=kind, code=None, message=message, request_id=None, http_status=status
    )


def test_idempotency_error_is_never_definitive() -> None:
    assert _error(402, "card_error").is_definitive
    conflict = _error(400, "idempotency_error")
    assert not conflict.is_definitive
    assert not _error(409, "idempotency_error").is_definitive


def test_keys_quoted_by_stripe_are_masked() -> None:
    error = _error(400, "idempotency_error", "Try using a key other than 'airflow-x-123' if you meant ...")
    masked = without_key(error, "airflow-x-123")
    assert "airflow-x-123" not in str(masked) and "<idempotency key>" in masked.stripe_message
    assert without_key(_error(400, "x"), "airflow-x-123").stripe_message == "m"


class _StripeKeys:
    """Stripe's idempotency store in miniature: the first answer per key is saved and replayed."""

    def __init__(self, refusals: int) -> None:
        self.saved: dict[str, str | None] = {}  # key -> object id, or None for a saved refusal
        self.executed: list[str] = []
        self.refusals = refusals

    def __call__(self, key: str) -> SimpleNamespace:
        replayed = key in self.saved
        if not replayed:
            self.executed.append(key)
            self.saved[key] = None if len(self.executed) <= self.refusals else f"ch_{len(self.executed)}"
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        if self.saved[key] is None:
            body = {"error": {"type": "card_error", "code": "card_declined", "message": "declined"}}
            raise stripe.CardError("declined", None, "card_declined", http_status=402, json_body=body, headers=headers)
        created = 0 if replayed else int(time.time()) + 5
        return SimpleNamespace(id=self.saved[key], created=created, last_response=SimpleNamespace(headers=headers))


def _as_request(call: Any) -> Any:
    """``call`` as a ``StripeRequests`` method sends it: its SDK errors translated (what the engine meets)."""

    def send(key: str) -> Any:
        with translated("op"):
            return call(key)

    return send


def _engine(store: Any, try_number: int) -> IdempotentRequests[Any]:
    identity = RunIdentity.from_context(payout_context(try_number=try_number))
    return IdempotentRequests(identity=identity, scope="s", ledger=SingleRequestLedger(store, "s"))


def _send(stripe_keys: _StripeKeys, store: Any, try_number: int) -> Any:
    return _engine(store, try_number).request("", _as_request(stripe_keys), "op", logging.getLogger(__name__))


def test_engine_walks_past_replayed_refusals_and_never_repeats_an_earlier_success() -> None:
    stripe_keys = _StripeKeys(refusals=1)
    first = _send(stripe_keys, None, 1)
    assert first.outcome == "refused" and first.error.code == "card_declined" and first.attempt == Attempt("", 0)
    second = _send(stripe_keys, None, 2)  # meets the saved refusal, walks on to generation 1
    assert (second.outcome, second.attempt.generation, second.result.id) == ("created", 1, "ch_2")
    third = _send(stripe_keys, None, 3)  # walks through both saved answers: the success is replayed
    assert (third.outcome, third.result.id, third.key) == ("existing", "ch_2", second.key)
    assert len(stripe_keys.executed) == 2, "an earlier success is returned, never repeated"


def _idempotency_error(status: int) -> stripe.IdempotencyError:
    code = "idempotency_key_in_use" if status == 409 else None
    body = {"error": {"type": "idempotency_error", "code": code, "message": "key"}}
    return stripe.IdempotencyError("key", None, http_status=status, json_body=body, code=code)


def test_engine_waits_for_a_request_in_flight_under_the_same_key_and_never_takes_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(idempotency, "IN_FLIGHT_WAITS", (0.01, 0.01, 0.01))
    keys_sent: list[str] = []

    def busy_twice(key: str) -> Any:
        keys_sent.append(key)
        if len(keys_sent) <= 2:
            raise _idempotency_error(409)
        return SimpleNamespace(id="po_1", created=int(time.time()) + 5, last_response=None)

    answer = _engine(None, 1).request("", _as_request(busy_twice), "op", logging.getLogger(__name__))
    assert (answer.outcome, answer.attempt.waits, len(set(keys_sent))) == ("created", 2, 1)

    def always_busy(key: str) -> Any:
        raise _idempotency_error(409)

    answer = _engine(None, 1).request("", _as_request(always_busy), "op", logging.getLogger(__name__))
    assert (answer.outcome, answer.attempt.waits) == ("unknown", 3), "bounded: then unknown, the key kept"

    def other_params(key: str) -> Any:
        raise _idempotency_error(400)

    answer = _engine(None, 1).request("", _as_request(other_params), "op", logging.getLogger(__name__))
    assert (answer.outcome, answer.attempt.generation) == ("used_elsewhere", 0)


def test_engine_with_a_store_starts_at_the_fresh_key_and_keeps_a_lost_answers_key() -> None:
    store = MemoryStateStore()
    stripe_keys = _StripeKeys(refusals=1)
    assert _send(stripe_keys, store, 1).outcome == "refused"
    assert store.get(GENERATION_STATE_PREFIX + "s") == 1, "the fresh generation is stored with the refusal"
    second = _send(stripe_keys, store, 2)
    assert (second.outcome, second.attempt.generation, len(stripe_keys.saved)) == ("created", 1, 2)

    def lost(key: str) -> Any:
        raise stripe.APIConnectionError("connection reset")

    engine = _engine(MemoryStateStore(), 1)
    unknown = engine.request("", _as_request(lost), "op", logging.getLogger(__name__))
    assert unknown.outcome == "unknown" and engine.current_generation("") == 0, "a lost answer keeps its key"
