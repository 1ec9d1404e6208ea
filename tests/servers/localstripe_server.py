"""The localstripe launcher and its front live in the package (the demo and users' local runs use
them too: see ``airflow_provider_stripe/testing/front.py`` for why); re-exported for the tests."""

from airflow_provider_stripe.testing.front import LoggedRequest, clear_request_log, request_log
from airflow_provider_stripe.testing.localstripe import (
    TEST_API_KEY,
    LocalStripe,
    flush_localstripe,
    register_webhook,
    run_local_stripe,
    run_localstripe,
)

__all__ = [
    "TEST_API_KEY",
    "LocalStripe",
    "LoggedRequest",
    "clear_request_log",
    "flush_localstripe",
    "register_webhook",
    "request_log",
    "run_local_stripe",
    "run_localstripe",
]
