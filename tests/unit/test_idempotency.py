"""The provider's idempotency keys: derivation, generations in the state store, explicit keys."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_stripe.errors import StripeRequestError
from airflow_provider_stripe.idempotency import (
    GENERATION_STATE_PREFIX,
    RequestKeys,
    RunIdentity,
    allows_fresh_key,
    explicit_key_function,
    without_key,
)
from airflow_provider_stripe.operators._base import derive_idempotency_key
from airflow_provider_stripe.validation import StripeInputError
from tests.integration.payout_helpers import MemoryStateStore, payout_context
from tests.integration.stripe_task_context import task_context


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


def _keys(store: Any = None, try_number: int = 1, explicit: str | None = None) -> RequestKeys:
    return RequestKeys(
        identity=RunIdentity.from_context(payout_context(try_number=try_number)),
        scope="charges.create",
        store=store,
        explicit=explicit_key_function(explicit) if explicit else None,
    )


def test_generations_are_stored_before_use_and_walked_one_by_one() -> None:
    store = MemoryStateStore()
    keys = _keys(store)
    assert keys.current() == 0
    assert keys.advance(0) == 1 and store.get(GENERATION_STATE_PREFIX + "charges.create") == 1
    assert _keys(store, try_number=5).current() == 1, "the next try starts at the stored generation"
    # Without a store every try starts at 0 and walks (never jumps past an earlier try's key).
    assert _keys(None, try_number=5).current() == 0 and _keys(None, try_number=5).advance(0) == 1
    store.set(GENERATION_STATE_PREFIX + "charges.create", "garbage")
    assert _keys(store).current() == 0
    assert keys.key(0) != keys.key(1) and keys.key(1) == keys.key(1)


def test_explicit_key_gets_a_suffix_for_fresh_generations_and_a_length_limit() -> None:
    keys = _keys(explicit="order-42")
    assert [keys.key(g) for g in (0, 1, 2)] == ["order-42", "order-42-retry1", "order-42-retry2"]
    with pytest.raises(StripeInputError, match=r"field 'idempotency_key'.*241 characters"):
        explicit_key_function("k" * 241)


def _error(status: int | None, kind: str, message: str = "m") -> StripeRequestError:
    return StripeRequestError(
        operation="x", error_type=kind, code=None, message=message, request_id=None, http_status=status
    )


def test_idempotency_error_is_never_definitive() -> None:
    assert _error(402, "card_error").is_definitive and allows_fresh_key(_error(402, "card_error"))
    conflict = _error(400, "idempotency_error")
    assert not conflict.is_definitive and not allows_fresh_key(conflict)
    assert not _error(409, "idempotency_error").is_definitive


def test_keys_quoted_by_stripe_are_masked() -> None:
    error = _error(400, "idempotency_error", "Try using a key other than 'airflow-x-123' if you meant ...")
    masked = without_key(error, "airflow-x-123")
    assert "airflow-x-123" not in str(masked) and "<idempotency key>" in masked.stripe_message
    assert without_key(_error(400, "x"), "airflow-x-123").stripe_message == "m"
