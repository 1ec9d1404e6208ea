"""The localstripe launcher lives in the package (the demo uses it too); re-exported for the tests."""

from airflow_provider_stripe.testing.localstripe import (
    TEST_API_KEY,
    flush_localstripe,
    register_webhook,
    run_localstripe,
)

__all__ = ["TEST_API_KEY", "flush_localstripe", "register_webhook", "run_localstripe"]
