"""The Stripe SDK's own logger is quiet in tasks (WARNING), unless the user set its level.

The SDK logs every request at INFO on the ``stripe`` logger; a task's root logger is at
INFO, so without this every request line (and error lines that can quote idempotency
keys) would land in task logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from airflow_provider_stripe.hooks import stripe as stripe_hook
from airflow_provider_stripe.hooks.stripe import StripeHook
from tests.integration.stripe_task_context import stripe_connection
from tests.servers.stub_stripe import StubServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fresh_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The SDK logger as a new process sees it (its level is restored afterwards)."""
    logger = logging.getLogger(stripe_hook.SDK_LOGGER_NAME)
    before = logger.level
    monkeypatch.setattr(stripe_hook, "_sdk_logger_quieted", False)
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(before)


def test_sdk_request_lines_are_not_logged_at_info(
    fresh_guard: logging.Logger,
    stub_stripe: StubServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # as in a task: the root logger at INFO
    client = StripeHook(stripe_connection(monkeypatch, stub_stripe.url)).get_client()
    client.v1.balance.retrieve()
    assert fresh_guard.level == logging.WARNING
    assert [r for r in caplog.records if r.name == "stripe"] == []
    assert len(stub_stripe.requests) == 1


def test_a_level_set_by_the_user_is_kept(
    fresh_guard: logging.Logger,
    stub_stripe: StubServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fresh_guard.setLevel(logging.INFO)
    StripeHook(stripe_connection(monkeypatch, stub_stripe.url)).get_client().v1.balance.retrieve()
    assert fresh_guard.level == logging.INFO
    assert any(r.name == "stripe" and "Request to Stripe api" in r.getMessage() for r in caplog.records)
