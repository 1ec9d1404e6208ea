"""StripeHook: one validated connection, its secrets masked, and its rate-limited, retrying
``StripeClient`` (never the global ``stripe.api_key``; the SDK is imported only to build one)."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_stripe.connection.config import StripeConnectionConfig, config_from_connection
from airflow_provider_stripe.constants import CONN_TYPE, DEFAULT_CONN_ID, HOOK_NAME
from airflow_provider_stripe.errors import LiveModeNotAllowedError
from airflow_provider_stripe.events.signature import DEFAULT_TOLERANCE_SECONDS
from airflow_provider_stripe.validation import validate_account_id

if TYPE_CHECKING:
    from stripe import StripeClient

    from airflow_provider_stripe.hooks.ratelimit import StripeRateLimiter
    from airflow_provider_stripe.hooks.requests import StripeRequests

_UNSET: Any = object()

SDK_LOGGER_NAME = "stripe"
"""The Stripe SDK's logger: one INFO line per request, and error lines that can quote keys."""

_sdk_logger_quieted = False


def _quiet_sdk_logger() -> None:
    """Set the SDK's logger to WARNING once, unless the user set its level: at INFO it logs every
    request, and some lines quote idempotency keys."""
    global _sdk_logger_quieted
    logger = logging.getLogger(SDK_LOGGER_NAME)
    if not _sdk_logger_quieted and logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    _sdk_logger_quieted = True


class StripeHook(BaseHook):
    """Interact with Stripe through the official SDK, configured from a ``stripe`` connection.

    :param stripe_conn_id: the Airflow connection holding the key and settings.
    :param account_id: a connected account (``acct_...``, sent as ``Stripe-Account``) overriding the
        connection's; a bad one raises :class:`~airflow_provider_stripe.errors.StripeInputError` here.
    """

    conn_name_attr = "stripe_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(self, stripe_conn_id: str = DEFAULT_CONN_ID, *, account_id: str | None = None) -> None:
        super().__init__()
        self.stripe_conn_id = stripe_conn_id
        self._account_override = None if not account_id else validate_account_id(account_id)
        self._clients: dict[tuple[Any, ...], StripeClient] = {}

    @cached_property
    def config(self) -> StripeConnectionConfig:
        """The validated connection; its secrets are registered with the masker first."""
        conn = self.get_connection(self.stripe_conn_id)
        _mask_raw_secrets(conn)
        config = config_from_connection(conn)
        for secret in config.secrets():
            _mask(secret)
        return config

    @property
    def account_id(self) -> str | None:
        return self._account_override or self.config.account_id

    @property
    def rate_limiter(self) -> StripeRateLimiter:
        """The limiter of this hook's account (:meth:`rate_limiter_for`)."""
        return self.rate_limiter_for(self.account_id)

    def rate_limiter_for(self, account: str | None) -> StripeRateLimiter:
        """The process-wide limiter of requests with this connection's key to ``account`` (``None``:
        the platform), with this connection's limits: shared with every connection holding the same key."""
        from airflow_provider_stripe.hooks.ratelimit import RateLimitSpec, get_rate_limiter, limit_key

        cfg = self.config
        spec = RateLimitSpec(cfg.rate_limit_per_minute, cfg.rate_limit_per_hour, cfg.rate_limit_storage_uri)
        return get_rate_limiter(limit_key(cfg.api_key, account), spec)

    def ensure_live_mode_allowed(self, action: str = "move money") -> None:
        """Refuse live keys for money-moving work unless the connection opts in."""
        cfg = self.config
        if cfg.livemode and not cfg.allow_live_mode:
            raise LiveModeNotAllowedError(
                f"connection {cfg.conn_id!r} holds a live key ({cfg.key_kind}) but does not allow live mode, "
                f"so this task will not {action}. If this Airflow really should move real money, switch on "
                "'Allow live mode' (extra allow_live_mode=true) on the connection."
            )

    def get_client(
        self,
        *,
        account_id: str | None = _UNSET,
        max_network_retries: int | None = None,
        timeout: float | None = None,
        rate_limited: bool = True,
    ) -> StripeClient:
        """A configured ``StripeClient``: what :attr:`requests` sends through.

        :param account_id: act on this connected account instead of the hook's (``None``: the platform).
        :param max_network_retries: override the connection's retry count (0 disables).
        :param timeout: override the connection's per-request timeout, in seconds.
        :param rate_limited: wait on the connection's shared rate limiter before each attempt.
        """
        cfg = self.config
        if account_id is _UNSET:
            account = self.account_id
        else:
            account = None if account_id is None else validate_account_id(account_id)
        retries = cfg.max_network_retries if max_network_retries is None else max_network_retries
        seconds = cfg.timeout if timeout is None else timeout
        key = (account, retries, seconds, rate_limited)
        if key not in self._clients:
            self._clients[key] = self._build_client(account, retries, seconds, rate_limited)
        return self._clients[key]

    def _build_client(self, account: str | None, retries: int, timeout: float, rate_limited: bool) -> StripeClient:
        from stripe import StripeClient

        from airflow_provider_stripe.hooks.http_client import GovernedRequestsClient

        _quiet_sdk_logger()
        cfg = self.config
        limiter = self.rate_limiter_for(account) if rate_limited else None
        return StripeClient(
            cfg.api_key,
            stripe_account=account,
            stripe_version=cfg.api_version,
            base_addresses=cfg.base_addresses(),  # type: ignore[arg-type]
            client_id=cfg.oauth_client_id,
            max_network_retries=retries,
            http_client=GovernedRequestsClient(timeout=timeout, limiter=limiter),
        )

    @property
    def requests(self) -> StripeRequests:
        """The provider's Stripe requests (:mod:`~airflow_provider_stripe.hooks.requests`) on :meth:`get_client`."""
        from airflow_provider_stripe.hooks.requests import StripeRequests

        return StripeRequests(self.get_client())

    def test_connection(self) -> tuple[bool, str]:
        """The contract's ``ping`` within its time budget; backs the UI's Test button and CLI."""
        from airflow_provider_stripe.errors import StripeConfigurationError, redact
        from airflow_provider_stripe.hooks.requests import check_health
        from airflow_provider_stripe.plugins.connection_test_fix import TESTED_CONNECTION_ID

        tested = TESTED_CONNECTION_ID.get()
        label = f"Stripe connection {tested!r}" if tested else "This Stripe connection"
        try:
            _ = self.config
        except StripeConfigurationError as exc:  # the problem names the field; it never holds a secret
            field = f", field {exc.field!r}" if exc.field else ""
            return False, f"{label} is invalid{field}: {exc.problem}"
        except Exception as exc:
            return False, f"{label} could not be read: {type(exc).__name__}: {redact(str(exc))}"
        return check_health(self)

    def construct_event(
        self, payload: bytes | str, sig_header: str | None, tolerance: int = DEFAULT_TOLERANCE_SECONDS
    ) -> dict[str, Any]:
        """Verify a webhook delivery against every secret on the connection; return the event."""
        from airflow_provider_stripe.events.signature import construct_event

        return construct_event(payload, sig_header, self.config.webhook_secrets, tolerance=tolerance)

    # Airflow 3.1 builds the connection form from these two; 3.2+ reads get_provider_info() instead.

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The Stripe fields of the connection form on Airflow 3.1 (secrets masked)."""
        from airflow_provider_stripe.connection.form import form_widgets

        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The standard fields the form hides on Airflow 3.1 (Stripe does not use them)."""
        from airflow_provider_stripe.connection.form import HIDDEN_STANDARD_FIELDS

        return {"hidden_fields": list(HIDDEN_STANDARD_FIELDS), "relabeling": {}, "placeholders": {}}


def _mask(secret: str) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def _mask_raw_secrets(conn: Any) -> None:
    """Mask secrets as stored, before validation, so even an error about them cannot leak them."""
    from airflow_provider_stripe.connection.form import CONNECTION_FIELDS

    extra = conn.extra_dejson or {}
    if conn.password:
        _mask(conn.password)
    for field in (f for f in CONNECTION_FIELDS if f.secret):
        for key in field.extra_keys:
            value = extra.get(key)
            parts = field.items(value) if isinstance(value, str) and value else value if isinstance(value, list) else ()
            for part in parts:
                if isinstance(part, str) and part:
                    _mask(part)
