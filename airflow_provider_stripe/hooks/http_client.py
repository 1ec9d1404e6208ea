"""The Stripe SDK's own HTTP clients (its bounded retry loop kept), with two changes: every attempt
first takes a rate-limiter slot, and a 429 is retried too unless ``Stripe-Should-Retry: false``."""

from __future__ import annotations

from typing import Any

from stripe import HTTPXClient, RequestsClient

from airflow_provider_stripe.hooks.ratelimit import StripeRateLimiter


class GovernedAsyncClient(HTTPXClient):
    """The SDK's httpx client for ``*_async`` calls; rate limited by the owning sync client."""

    name = "airflow-stripe-httpx"


class GovernedRequestsClient(RequestsClient):
    """The SDK's requests client, rate limited, retrying 429s; async calls go to httpx."""

    name = "airflow-stripe-requests"

    def __init__(self, *, timeout: float, limiter: StripeRateLimiter | None, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, async_fallback_client=GovernedAsyncClient(timeout=timeout), **kwargs)
        self.limiter = limiter

    def _should_retry(
        self, response: Any, api_connection_error: Any, num_retries: int, max_network_retries: int | None
    ) -> bool:
        if response is not None and response[1] == 429 and num_retries < (max_network_retries or 0):
            return (response[2] or {}).get("stripe-should-retry") != "false"
        return bool(super()._should_retry(response, api_connection_error, num_retries, max_network_retries))

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if self.limiter is not None:
            self.limiter.acquire()
        return super().request(*args, **kwargs)

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        if self.limiter is not None:
            self.limiter.acquire()
        return super().request_stream(*args, **kwargs)

    async def request_async(self, *args: Any, **kwargs: Any) -> Any:
        if self.limiter is not None:
            await self.limiter.acquire_async()
        return await super().request_async(*args, **kwargs)

    async def request_stream_async(self, *args: Any, **kwargs: Any) -> Any:
        if self.limiter is not None:
            await self.limiter.acquire_async()
        return await super().request_stream_async(*args, **kwargs)
