"""The ``stripe`` connection's fields (:data:`CONNECTION_FIELDS`, from the contract): the source of the
3.2+ declarative form, 3.1's WTForms widgets, the validation schema and the hook's defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT, Mode, snake_case, thaw
from airflow_provider_stripe.constants import (
    ALLOWED_BASE_URLS_SECTION,
    CONN_TYPE,
    MAX_RATE_LIMIT_PER_HOUR_KEY,
    MAX_RATE_LIMIT_PER_MINUTE_KEY,
    MEMORY_STORAGE,
)
from airflow_provider_stripe.events.secrets import parse_webhook_secrets

#: Standard Airflow connection fields Stripe does not use. ``password`` is hidden too: the
#: form has a dedicated, masked ``api_key`` field, but a URI-style connection
#: (``stripe://:sk_test_...@``) may still carry the key as its password.
HIDDEN_STANDARD_FIELDS: tuple[str, ...] = ("host", "port", "login", "schema", "password")

AUTH_API_KEY = "api_key"
AUTH_OAUTH2 = "oauth2"

_RL = STRIPE_CONTRACT.rate_limit

MAX_TIMEOUT_S = 600
"""The longest per-request timeout a connection may set: a longer wait is a hung worker, not a
slow answer (and ``inf`` or ``1e308`` overflow the HTTP library on every request)."""


@dataclass(frozen=True)
class ConnField:
    """One custom connection field: stored under its ``name`` in the connection's extra."""

    name: str
    label: str
    description: str
    schema: dict[str, Any]
    secret: bool = False
    #: The contract property this field carries, if any (``apiKey`` for ``api_key``).
    contract_property: str | None = None
    #: For a list stored as one comma-separated text (webhook secrets during a rotation): its items, or
    #: ``TypeError`` / ``ValueError`` never quoting the value. ``None``: a single value.
    parse_items: Callable[[Any], tuple[str, ...]] | None = None
    #: A URI that may carry credentials in its userinfo (``redis://:password@host``): shown without them.
    userinfo_secret: bool = False

    @property
    def extra_keys(self) -> tuple[str, str]:
        """Where the extra may hold this field: its plain name, or the ``extra__stripe__`` form older Airflow wrote."""
        return (self.name, f"extra__{CONN_TYPE}__{self.name}")

    def items(self, value: Any) -> tuple[Any, ...]:
        """The separate values a stored value holds: its items for a list field, else itself."""
        return (value,) if self.parse_items is None else self.parse_items(value)

    @property
    def default(self) -> Any:
        return self.schema.get("default")

    @property
    def required(self) -> bool:
        """Only what the contract requires (apiKey, webhookSecret) must be filled in."""
        return self.contract_property in (*STRIPE_CONTRACT.secrets.required, *STRIPE_CONTRACT.config.required)

    def provider_info_entry(self) -> dict[str, Any]:
        schema = dict(self.schema)
        if self.secret:
            schema["format"] = "password"
        if not self.required:
            # Airflow's form marks every field whose type does not admit null as required and
            # disables Save until it is filled: optional fields must say so.
            schema["type"] = [schema["type"], "null"]
        return {"label": self.label, "description": self.description, "schema": schema}


def _contract_field(
    prop: str, label: str, extra_help: str, *, secret: bool, parse_items: Callable[[Any], tuple[str, ...]] | None = None
) -> ConnField:
    schema = thaw((STRIPE_CONTRACT.secrets if secret else STRIPE_CONTRACT.config).properties[prop])
    description = f"{schema.pop('description')} {extra_help}".strip()
    return ConnField(
        snake_case(prop), label, description, schema, secret, contract_property=prop, parse_items=parse_items
    )


KEY_SCOPES: tuple[tuple[str, str], ...] = (
    ("charges:write", "StripeCreateChargeOperator, StripeCaptureChargeOperator"),
    ("customers:read", "StripeCreateChargeOperator (charging a customer)"),
    ("refunds:write", "StripeRefundChargeOperator"),
    ("charges:read", "StripeExportOperator (resource='charges')"),
    ("payouts:write", "StripeCreatePayoutOperator, StripePayoutBatchOperator, StripeCancelPayoutOperator"),
    (
        "payouts:read",
        "StripePayoutBatchOperator (finds payouts already made), StripePayoutSensor, StripePayoutTrigger, "
        "StripeExportOperator (resource='payouts')",
    ),
    ("balance:read", "the Test button and airflow connections test (without it: valid but restricted)"),
    ("events:read", "StripeEventTrigger"),
)
"""Every permission a restricted key may need, and what needs it: the contract's scopes first."""


def _byok_help() -> str:
    setup = STRIPE_CONTRACT.byok_setup
    missing = set(setup.required_scopes) - {scope for scope, _ in KEY_SCOPES}
    if missing:  # the contract's scopes must all appear in the table above
        raise RuntimeError(f"KEY_SCOPES lacks the contract's scopes {sorted(missing)}")
    scopes = "; ".join(f"{scope}: {users}" for scope, users in KEY_SCOPES)
    return (
        f"BYOK setup: {setup.setup_instructions} Required scopes (contract): {', '.join(setup.required_scopes)}. "
        f"A restricted key needs, per task: {scopes}. Grant only what your DAGs use. "
        "Rotate keys without downtime: create the new key, update this field, then roll the old "
        f"key in the Stripe Dashboard. Docs: {STRIPE_CONTRACT.docs_url}"
    )


CONNECTION_FIELDS: tuple[ConnField, ...] = (
    _contract_field(
        "apiKey",
        "API key",
        "Restricted keys (rk_test_/rk_live_) are accepted; publishable keys (pk_) are refused. " + _byok_help(),
        secret=True,
    ),
    _contract_field(
        "webhookSecret",
        "Webhook signing secret",
        "whsec_... from the webhook endpoint's page. During a rotation, give the new and the old "
        "secret separated by a comma: an event signed with either is accepted.",
        secret=True,
        parse_items=parse_webhook_secrets,
    ),
    _contract_field(
        "accountId",
        "Connected account ID",
        "Sent as the Stripe-Account header on every request (operators can override it per task).",
        secret=False,
    ),
    _contract_field("region", "Region", "", secret=False),
    ConnField(
        name="mode",
        label="Mode",
        description=(
            "byok: your own Stripe key (API key + webhook secret). managed: a Stripe account connected "
            "to your platform through Stripe Connect OAuth; needs OAuth client ID and connected account."
        ),
        schema={
            "type": "string",
            "enum": [m.value for m in STRIPE_CONTRACT.supported_modes],
            "default": Mode.BYOK.value,
        },
    ),
    ConnField(
        name="auth_type",
        label="Auth type",
        description=(
            "api_key: Authorization: Bearer <API key>. oauth2: Stripe Connect (authorization_code, "
            f"scope {' '.join(STRIPE_CONTRACT.oauth2_auth.scopes)}); requests act on the connected account."
        ),
        schema={"type": "string", "enum": [AUTH_API_KEY, AUTH_OAUTH2], "default": AUTH_API_KEY},
    ),
    ConnField(
        name="api_version",
        label="Stripe API version",
        description=f"Sent as {STRIPE_CONTRACT.version_policy.version_header} on every request.",
        schema={
            "type": "string",
            "enum": list(STRIPE_CONTRACT.version_policy.supported),
            "default": STRIPE_CONTRACT.version_policy.current_version,
        },
    ),
    ConnField(
        name="oauth_client_id",
        label="OAuth client ID",
        description="Stripe Connect platform client ID (ca_...), for auth type oauth2.",
        schema={"type": "string"},
    ),
    ConnField(
        name="oauth_refresh_token",
        label="OAuth refresh token",
        description="Stripe Connect refresh token, printed by the airflow-stripe-oauth command.",
        schema={"type": "string"},
        secret=True,
    ),
    ConnField(
        name="allow_live_mode",
        label="Allow live mode",
        description=(
            "Operators that move money refuse live keys (sk_live_/rk_live_) unless this is on, so a "
            "copied production connection cannot move real money by accident."
        ),
        schema={"type": "boolean", "default": False},
    ),
    ConnField(
        name="rate_limit_per_minute",
        label="Rate limit per minute",
        description=(
            "Client-side limit on requests per minute, shared by every task sending with this key to the same account; "
            f"at most {_RL.rpm} "
            f"unless the Airflow admin's [{ALLOWED_BASE_URLS_SECTION}] {MAX_RATE_LIMIT_PER_MINUTE_KEY} allows more."
        ),
        schema={"type": "integer", "minimum": 1, "default": _RL.rpm},
    ),
    ConnField(
        name="rate_limit_per_hour",
        label="Rate limit per hour",
        description=(
            f"Client-side limit on requests per hour; at most {_RL.rph} unless the Airflow admin's "
            f"[{ALLOWED_BASE_URLS_SECTION}] {MAX_RATE_LIMIT_PER_HOUR_KEY} allows more."
        ),
        schema={"type": "integer", "minimum": 1, "default": _RL.rph},
    ),
    ConnField(
        name="rate_limit_storage_uri",
        label="Rate limit storage",
        description=(
            "memory:// limits each process on its own; redis://host:6379/0 shares the limit among all workers."
        ),
        schema={"type": "string", "default": MEMORY_STORAGE},
        userinfo_secret=True,
    ),
    ConnField(
        name="max_network_retries",
        label="Max retries",
        description="Retries on connection errors, 409, 429 and 5xx, with exponential backoff and jitter.",
        schema={"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
    ),
    ConnField(
        name="timeout",
        label="Request timeout (s)",
        description=f"Timeout of each HTTP request, in seconds (at most {MAX_TIMEOUT_S}).",
        schema={"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S, "default": 30},
    ),
    ConnField(
        name="base_url",
        label="API base URL",
        description=(
            "Leave empty for Stripe. Any other base URL (a local Stripe-compatible test server) must be listed "
            "by the Airflow admin in the config option [stripe] allowed_base_urls; the API key is sent nowhere else."
        ),
        schema={"type": "string", "format": "url"},
    ),
)

FIELDS_BY_NAME: dict[str, ConnField] = {f.name: f for f in CONNECTION_FIELDS}
SECRET_FIELD_NAMES: frozenset[str] = frozenset(f.name for f in CONNECTION_FIELDS if f.secret)


def conn_fields() -> dict[str, dict[str, Any]]:
    """The ``conn-fields`` entry of ``get_provider_info()``."""
    return {f.name: f.provider_info_entry() for f in CONNECTION_FIELDS}


def form_widgets() -> dict[str, Any]:
    """The same fields as WTForms fields for Airflow 3.1, which takes only string, integer, boolean and
    password fields (enums get an ``any_of`` validator; a number is a string the parser converts)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for f in CONNECTION_FIELDS:
        validators: list[Any] = [] if f.required else [Optional()]
        if "enum" in f.schema:
            validators.append(any_of(list(f.schema["enum"])))
        kwargs: dict[str, Any] = {"description": f.description, "validators": validators}
        kind = f.schema["type"]
        if f.default is not None:  # a number field is a string the parser converts
            kwargs["default"] = str(f.default) if kind == "number" and not f.secret else f.default
        if f.secret:
            field = PasswordField(lazy_gettext(f.label), widget=BS3PasswordFieldWidget(), **kwargs)
        elif kind == "boolean":
            field = BooleanField(lazy_gettext(f.label), **kwargs)
        elif kind == "integer":
            field = IntegerField(lazy_gettext(f.label), widget=BS3TextFieldWidget(), **kwargs)
        else:
            field = StringField(lazy_gettext(f.label), widget=BS3TextFieldWidget(), **kwargs)
        widgets[f.name] = field
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """The ``ui-field-behaviour`` entry of ``get_provider_info()``."""
    return {"hidden-fields": list(HIDDEN_STANDARD_FIELDS), "relabeling": {}, "placeholders": {}}
