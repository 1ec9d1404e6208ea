"""Stripe Connect OAuth (the contract's ``oauth2`` method) on the SDK's OAuth service: the platform's
key exchanges the code; the connected account is then sent as ``Stripe-Account``. Tokens are masked."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.compat import as_dict
from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT

if TYPE_CHECKING:
    from airflow_provider_stripe.hooks.requests import StripeRequests
    from airflow_provider_stripe.hooks.stripe import StripeHook

_OAUTH = STRIPE_CONTRACT.oauth2_auth


@dataclass(frozen=True)
class ConnectGrant:
    """The result of a code exchange or a refresh. ``repr`` hides the tokens."""

    stripe_user_id: str
    scope: str
    livemode: bool
    access_token: str
    refresh_token: str | None

    def __repr__(self) -> str:
        return f"ConnectGrant(stripe_user_id={self.stripe_user_id!r}, scope={self.scope!r}, livemode={self.livemode})"

    def connection_extra(self, client_id: str) -> dict[str, Any]:
        """The extras to store on a ``stripe`` connection for this connected account."""
        return {
            "auth_type": "oauth2",
            "mode": "managed",
            "oauth_client_id": client_id,
            "account_id": self.stripe_user_id,
            "oauth_refresh_token": self.refresh_token,
        }


def authorize_url(client_id: str, redirect_uri: str | None = None, state: str | None = None) -> tuple[str, str]:
    """The URL to send the account owner to, and the anti-CSRF ``state`` to check on return."""
    from urllib.parse import urlencode

    state = state or secrets.token_urlsafe(24)
    params = {"response_type": "code", "client_id": client_id, "scope": " ".join(_OAUTH.scopes), "state": state}
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    return f"{_OAUTH.authorization_url}?{urlencode(params)}", state


def _grant(response: Any) -> ConnectGrant:
    from airflow.sdk.log import mask_secret

    token = as_dict(response)
    access = str(token["access_token"])
    refresh = token.get("refresh_token")
    mask_secret(access)
    if refresh:
        mask_secret(str(refresh))
    return ConnectGrant(
        stripe_user_id=str(token["stripe_user_id"]),
        scope=str(token.get("scope", "")),
        livemode=bool(token.get("livemode", False)),
        access_token=access,
        refresh_token=str(refresh) if refresh else None,
    )


def _platform(hook: StripeHook) -> StripeRequests:
    """Requests as the platform itself: OAuth calls never carry ``Stripe-Account``."""
    from airflow_provider_stripe.hooks.requests import StripeRequests

    return StripeRequests(hook.get_client(account_id=None))


def exchange_code(hook: StripeHook, code: str) -> ConnectGrant:
    """Exchange an authorization code for tokens (``grant_type=authorization_code``)."""
    params = {"grant_type": _OAUTH.grant_type, "code": code}
    return _grant(_platform(hook).oauth_token(params, "OAuth code exchange"))


def refresh(hook: StripeHook, refresh_token: str | None = None) -> ConnectGrant:
    """Obtain a fresh access token from the connection's (or the given) refresh token."""
    token_value = refresh_token or hook.config.oauth_refresh_token
    if not token_value:
        raise ValueError(f"connection {hook.stripe_conn_id!r} has no oauth_refresh_token to refresh with")
    params = {"grant_type": "refresh_token", "refresh_token": token_value}
    return _grant(_platform(hook).oauth_token(params, "OAuth refresh"))


def deauthorize(hook: StripeHook, stripe_user_id: str | None = None) -> str:
    """Disconnect the connected account from the platform; returns the account id."""
    account = stripe_user_id or hook.config.account_id
    client_id = hook.config.oauth_client_id
    if not account or not client_id:
        raise ValueError("deauthorize needs the connection's oauth_client_id and account_id")
    result = _platform(hook).oauth_deauthorize({"client_id": client_id, "stripe_user_id": account})
    return str(as_dict(result)["stripe_user_id"])
