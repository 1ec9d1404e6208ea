"""The contract's health check (``ping`` within ``timeoutMs``), behind the Test button.

Airflow's UI Test button (``POST /api/v2/connections/test``, run inside the API server) and
``airflow connections test`` both call ``StripeHook.test_connection()``, which lands here.
The ping is ``GET /v1/balance``: every secret key and most restricted keys may read it, it
tells test from live mode, and it moves nothing. The whole check, including an optional
look-up of the account, fits in the contract's budget with no retries, even against a
server that accepts the connection and never answers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from airflow_provider_stripe.contract import STRIPE_CONTRACT
from airflow_provider_stripe.errors import redact

if TYPE_CHECKING:
    from airflow_provider_stripe.config import StripeConnectionConfig
    from airflow_provider_stripe.hooks.stripe import StripeHook

#: Time kept back from the budget for Python's own work around the requests.
_SAFETY_MARGIN_S = 0.25


def run_health_check(hook: StripeHook, cfg: StripeConnectionConfig) -> tuple[bool, str]:
    import stripe

    from airflow_provider_stripe.errors import RateLimitWaitExceeded
    from airflow_provider_stripe.ratelimit import hide_userinfo

    budget = STRIPE_CONTRACT.health_check.timeout_seconds
    started = time.monotonic()

    def remaining() -> float:
        return budget - _SAFETY_MARGIN_S - (time.monotonic() - started)

    where = cfg.base_url
    try:
        hook.rate_limiter.acquire(max_wait=max(remaining(), 0))
    except RateLimitWaitExceeded:
        return False, (
            f"Stripe health check not run: the connection's client-side rate limit ({cfg.rate_limit_per_minute}/min, "
            f"{cfg.rate_limit_per_hour}/h) has no free slot within the {budget:.0f}s budget; try again in a minute."
        )
    except Exception as exc:  # the shared storage (Redis) is unreachable or misconfigured
        return False, (
            f"Stripe health check not run: the rate limit storage {hide_userinfo(cfg.rate_limit_storage_uri)} "
            f"failed ({type(exc).__name__}). Check rate_limit_storage_uri and that the storage is reachable."
        )
    try:
        client = hook.get_client(max_network_retries=0, timeout=max(remaining(), 0.1), rate_limited=False)
        balance = client.v1.balance.retrieve()
    except stripe.AuthenticationError as exc:
        return False, (
            f"Stripe rejected the API key ({cfg.key_kind}): invalid API key. Check the API key field; "
            f"request id {exc.request_id or 'n/a'}."
        )
    except stripe.PermissionError:
        # A restricted key without balance read access is still a valid key.
        return True, (
            f"Stripe connection OK ({_mode(cfg.livemode)}, API version {cfg.api_version}): the {cfg.key_kind} "
            "is valid but restricted (no permission to read the balance)."
        )
    except stripe.APIConnectionError as exc:
        elapsed = time.monotonic() - started
        cause = "timed out" if "timed out" in str(exc).lower() or elapsed >= budget - 1 else "could not connect"
        return False, (
            f"Stripe health check failed: {cause} reaching {where} after {elapsed:.1f}s "
            f"(budget {budget:.0f}s). Check the network path or the base URL."
        )
    except stripe.StripeError as exc:
        return False, redact(
            f"Stripe health check failed: HTTP {exc.http_status}, {exc.code or type(exc).__name__}: "
            f"{exc.user_message or exc}; request id {exc.request_id or 'n/a'}."
        )
    livemode = bool(getattr(balance, "livemode", cfg.livemode))
    headers = getattr(getattr(balance, "last_response", None), "headers", None) or {}
    version = headers.get("stripe-version") or cfg.api_version
    account = hook.account_id or _account_id(hook, remaining())
    account_part = f", account {account}" if account else ""
    elapsed_ms = (time.monotonic() - started) * 1000
    return True, (
        f"Stripe connection OK: {_mode(livemode)}, API version {version}{account_part}, {cfg.key_kind}, "
        f"{elapsed_ms:.0f} ms."
    )


def _account_id(hook: StripeHook, time_left: float) -> str | None:
    """The key's own account id, if there is time left and the server offers ``/v1/account``."""
    import stripe

    if time_left < 0.3:
        return None
    try:
        client = hook.get_client(max_network_retries=0, timeout=time_left, rate_limited=False)
        if hook.rate_limiter.try_acquire() != 0:
            return None
        account = client.v1.accounts.retrieve_current()
    except stripe.StripeError:
        return None
    return str(account.id) if getattr(account, "id", None) else None


def _mode(livemode: bool) -> str:
    return "live mode" if livemode else "test mode"
