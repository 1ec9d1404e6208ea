"""Every Stripe request of the provider is made here, and only here: one :class:`StripeRequests`
method per operation (money-moving ones take the engine's key); SDK errors become a chained
:class:`~airflow_provider_stripe.errors.StripeRequestError` (:func:`translated`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.errors import from_stripe_error, redact

if TYPE_CHECKING:
    from stripe import StripeClient

    from airflow_provider_stripe.hooks.stripe import StripeHook

#: Time kept back from the health check's budget for Python's own work around the requests.
_SAFETY_MARGIN_S = 0.25


@contextmanager
def translated(operation: str, *, chain: bool = True) -> Iterator[None]:
    """Raise a Stripe SDK error inside as :class:`StripeRequestError` naming ``operation``; not chained
    when ``chain`` is false (OAuth errors may quote the code or token sent)."""
    import stripe

    try:
        yield
    except stripe.StripeError as exc:
        raise from_stripe_error(exc, operation) from (exc if chain else None)


def _keyed(key: str) -> dict[str, Any]:
    return {"idempotency_key": key}


class StripeRequests:
    """The provider's Stripe requests on one configured client (the hook's, for one account)."""

    def __init__(self, client: StripeClient) -> None:
        self.client = client

    def _call(self, operation: str, method: Callable[..., Any], *args: Any) -> Any:
        with translated(operation):
            return method(*args)

    def charges_create(self, params: Mapping[str, Any], key: str) -> Any:
        return self._call("charges.create", self.client.v1.charges.create, dict(params), _keyed(key))

    def charges_capture(self, charge_id: str, params: Mapping[str, Any], key: str) -> Any:
        return self._call("charges.capture", self.client.v1.charges.capture, charge_id, dict(params), _keyed(key))

    def refunds_create(self, params: Mapping[str, Any], key: str) -> Any:
        return self._call("refunds.create", self.client.v1.refunds.create, dict(params), _keyed(key))

    def payouts_create(self, params: Mapping[str, Any], key: str) -> Any:
        return self._call("payouts.create", self.client.v1.payouts.create, dict(params), _keyed(key))

    def payouts_cancel(self, payout_id: str, key: str) -> Any:
        return self._call("payouts.cancel", self.client.v1.payouts.cancel, payout_id, None, _keyed(key))

    def payouts_retrieve(self, payout_id: str) -> Any:
        return self._call(f"payouts.retrieve({payout_id})", self.client.v1.payouts.retrieve, payout_id)

    async def payouts_retrieve_async(self, payout_id: str) -> Any:
        with translated(f"payouts.retrieve({payout_id})"):
            return await self.client.v1.payouts.retrieve_async(payout_id)

    def report_type_retrieve(self, report_type: str) -> Any:
        return self._call(
            "reporting.report_types.retrieve", self.client.v1.reporting.report_types.retrieve, report_type
        )

    def report_run_create(self, params: Mapping[str, Any]) -> Any:
        return self._call("reporting.report_runs.create", self.client.v1.reporting.report_runs.create, dict(params))

    def report_run_retrieve(self, run_id: str) -> Any:
        return self._call("reporting.report_runs.retrieve", self.client.v1.reporting.report_runs.retrieve, run_id)

    async def report_run_retrieve_async(self, run_id: str) -> Any:
        with translated("reporting.report_runs.retrieve"):
            return await self.client.v1.reporting.report_runs.retrieve_async(run_id)

    def file_contents(self, file_id: str, *, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """The contents of a Stripe file (files host, authenticated), chunk by chunk, never whole in memory."""
        with translated(f"files.contents({file_id})"):
            # The SDK's own streaming request (as quotes.pdf uses), against the files base.
            response = self.client.v1.files._request_stream(
                "get", f"/v1/files/{file_id}/contents", base_address="files"
            )
        try:
            while chunk := response.io.read(chunk_size):
                yield chunk
        finally:
            response.io.close()

    def oauth_token(self, params: Mapping[str, Any], operation: str) -> Any:
        """``POST /oauth/token`` (code exchange or refresh); ``operation`` names it in errors."""
        with translated(operation, chain=False):
            return self.client.oauth.token(dict(params))  # type: ignore[arg-type]

    def oauth_deauthorize(self, params: Mapping[str, Any]) -> Any:
        with translated("OAuth deauthorize", chain=False):
            return self.client.oauth.deauthorize(dict(params))  # type: ignore[arg-type]

    def first_page(self, service: str, params: Mapping[str, Any]) -> tuple[list[Any], bool]:
        """One page of ``client.v1.<service>.list``: ``(objects, has_more)``."""
        with translated(f"{service}.list"):
            page = getattr(self.client.v1, service).list(dict(params))
        return list(page.data), bool(page.has_more)

    def list_all(self, service: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Every object of ``client.v1.<service>.list`` (``payouts``, ``balance_transactions``,
        ``events``, an export's resource...), following pages as the caller reads."""
        with translated(f"{service}.list"):
            yield from getattr(self.client.v1, service).list(dict(params)).auto_paging_iter()

    async def list_all_async(self, service: str, params: Mapping[str, Any]) -> AsyncIterator[Any]:
        """:meth:`list_all` with the SDK's async client (triggers)."""
        with translated(f"{service}.list"):
            page = await getattr(self.client.v1, service).list_async(dict(params))
            async for obj in page.auto_paging_iter():
                yield obj


# -- the connection test ------------------------------------------------------------------------


def check_health(hook: StripeHook) -> tuple[bool, str]:
    """The contract's ``ping`` (``GET /v1/balance``: readable by most keys, tells test from live, moves
    nothing) within its ``timeoutMs`` without retries, even against a server that never answers."""
    import stripe

    from airflow_provider_stripe.hooks.ratelimit import RateLimitWaitExceeded, hide_userinfo

    cfg = hook.config
    budget = STRIPE_CONTRACT.health_check.timeout_seconds
    started = time.monotonic()

    def remaining() -> float:
        return budget - _SAFETY_MARGIN_S - (time.monotonic() - started)

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
            f"Stripe health check failed: {cause} reaching {cfg.base_url} after {elapsed:.1f}s "
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
    account = hook.account_id or _own_account_id(hook, remaining())
    account_part = f", account {account}" if account else ""
    elapsed_ms = (time.monotonic() - started) * 1000
    return True, (
        f"Stripe connection OK: {_mode(livemode)}, API version {version}{account_part}, {cfg.key_kind}, "
        f"{elapsed_ms:.0f} ms."
    )


def _own_account_id(hook: StripeHook, time_left: float) -> str | None:
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
