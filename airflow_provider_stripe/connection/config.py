"""A ``stripe`` connection, parsed and validated (one ``jsonschema`` pass over the contract's and the
form's schemas) into a frozen :class:`StripeConnectionConfig`, or :class:`StripeConfigurationError`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT, Mode, snake_case, thaw
from airflow_provider_stripe.connection.form import (
    AUTH_OAUTH2,
    CONNECTION_FIELDS,
    FIELDS_BY_NAME,
    SECRET_FIELD_NAMES,
    ConnField,
)
from airflow_provider_stripe.constants import (
    ALLOWED_BASE_URLS_KEY,
    ALLOWED_BASE_URLS_SECTION,
    MAX_RATE_LIMIT_PER_HOUR_KEY,
    MAX_RATE_LIMIT_PER_MINUTE_KEY,
)
from airflow_provider_stripe.errors import StripeConfigurationError
from airflow_provider_stripe.validation import validate_account_id

STRIPE_FILES_BASE_URL = "https://files.stripe.com"
"""Where Stripe serves file uploads and downloads (report results); the contract names no files host."""

T = TypeVar("T")

_API_KEY_RE = re.compile(r"(?P<kind>sk|rk)_(?P<env>test|live)_[A-Za-z0-9]{1,247}")


class ConnectionLike(Protocol):
    @property
    def conn_id(self) -> str | None: ...

    @property
    def password(self) -> str | None: ...

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


class _Value(Generic[T]):
    """A config property: ``values[key]`` (the attribute's name by default), typed by ``cast``."""

    def __init__(self, cast: Callable[[Any], T], key: str | None = None) -> None:
        self.cast, self.key = cast, key

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = self.key or name

    def __get__(self, config: StripeConnectionConfig, owner: type | None = None) -> T:
        return self.cast(config.values[str(self.key)])


def _as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True, repr=False)
class StripeConnectionConfig:
    """Everything the hook needs from a ``stripe`` connection, validated: one value per field of
    :data:`~airflow_provider_stripe.connection.form.CONNECTION_FIELDS` (a list as a tuple); ``repr`` hides secrets."""

    conn_id: str
    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        missing = {f.name for f in CONNECTION_FIELDS} - set(self.values)
        if missing:
            raise ValueError(f"StripeConnectionConfig lacks the declared fields {sorted(missing)}")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def __hash__(self) -> int:
        return hash((self.conn_id, tuple(self.values.items())))

    api_key = _Value(str)
    webhook_secrets = _Value[tuple[str, ...]](tuple, "webhook_secret")
    account_id = _Value[str | None](_as_is)
    region = _Value[str | None](_as_is)
    mode = _Value(Mode)
    auth_type = _Value(str)
    api_version = _Value(str)
    oauth_client_id = _Value[str | None](_as_is)
    oauth_refresh_token = _Value[str | None](_as_is)
    allow_live_mode = _Value(bool)
    rate_limit_per_minute = _Value(int)
    rate_limit_per_hour = _Value(int)
    rate_limit_storage_uri = _Value(str)
    max_network_retries = _Value(int)
    timeout = _Value(float)
    base_url = _Value(str)

    @property
    def livemode(self) -> bool:
        return self.api_key.startswith(("sk_live_", "rk_live_"))

    @property
    def key_kind(self) -> str:
        return describe_key(self.api_key)

    def base_addresses(self) -> dict[str, str]:
        """The SDK's base address per kind of request (``api``, ``connect``, ``files``): Stripe's three hosts, or
        the one ``base_url`` of a Stripe-compatible server, so the key goes nowhere else."""
        token_url = urlsplit(STRIPE_CONTRACT.oauth2_auth.token_url)  # Connect's host
        stripe_hosts = {
            "api": STRIPE_CONTRACT.rest.base_url,
            "connect": f"{token_url.scheme}://{token_url.netloc}",
            "files": STRIPE_FILES_BASE_URL,
        }
        if self.base_url == stripe_hosts["api"]:
            return stripe_hosts
        return dict.fromkeys(stripe_hosts, self.base_url)

    def secrets(self) -> tuple[str, ...]:
        """Every secret this config holds, for Airflow's secrets masker (the storage's password too)."""
        from airflow_provider_stripe.hooks.ratelimit import userinfo_secrets

        held: list[str] = []
        for f in CONNECTION_FIELDS:
            value = self.values[f.name]
            if f.secret and value:
                held.extend(f.items(value))
            elif f.userinfo_secret and value:
                held.extend(userinfo_secrets(value))
        return tuple(s for s in held if s)

    def __repr__(self) -> str:
        from airflow_provider_stripe.hooks.ratelimit import hide_userinfo

        shown = [f"conn_id={self.conn_id!r}"]
        for f in CONNECTION_FIELDS:
            if not f.secret:
                value = getattr(self, f.name, self.values[f.name])  # typed where a property gives it
                if f.userinfo_secret:
                    value = hide_userinfo(value)
                shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def describe_key(api_key: str) -> str:
    """A printable description of a key (``restricted test key``), never the key itself."""
    m = _API_KEY_RE.fullmatch(api_key or "")
    if not m:
        return "publishable key" if (api_key or "").startswith("pk_") else "unrecognised key"
    return f"{'secret' if m['kind'] == 'sk' else 'restricted'} {m['env']} key"


def validate_api_key(api_key: str | None, *, conn_id: str | None = None) -> str:
    """Return the key if it is a secret (``sk_``) or restricted (``rk_``) key, else raise."""
    if not api_key:
        problem = "no API key: set api_key (or the connection password) to a secret sk_... or restricted rk_... key"
    elif api_key.startswith("pk_"):
        problem = (
            "a publishable key (pk_...) cannot call the Stripe API from a server; use a secret sk_... or "
            "restricted rk_... key"
        )
    elif not _API_KEY_RE.fullmatch(api_key):
        problem = (
            "malformed API key: expected sk_test_..., sk_live_..., rk_test_... or rk_live_... followed by "
            "letters and digits (check for stray spaces or quotes)"
        )
    else:
        return api_key
    raise StripeConfigurationError(problem, field="api_key", conn_id=conn_id)


def admin_env(key: str) -> str:
    """The environment variable setting the admin option ``key``: ``AIRFLOW__STRIPE__<KEY>``."""
    return f"AIRFLOW__{ALLOWED_BASE_URLS_SECTION.upper()}__{key.upper()}"


ALLOWED_BASE_URLS_ENV = admin_env(ALLOWED_BASE_URLS_KEY)

# One strict grammar, read once: scheme://host[:port][/]. Anything a URL parser could read in
# two ways (userinfo, backslashes, whitespace, control characters, percent-escapes, paths)
# does not match, so what is checked is exactly where urllib3 connects.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_BASE_URL_RE = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    rf"(?P<host>{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?/?"
)
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class BaseUrl:
    """A base URL as the HTTP library will use it: scheme, host and optional port, lower-cased."""

    scheme: str
    host: str
    port: int | None

    def allows(self, other: BaseUrl) -> bool:
        """As an allowlist entry: same scheme and host, and same port unless this entry has none."""
        if (self.scheme, self.host) != (other.scheme, other.host):
            return False
        return self.port is None or self.port == (_DEFAULT_PORTS[other.scheme] if other.port is None else other.port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}" + ("" if self.port is None else f":{self.port}")


def parse_base_url(text: object) -> BaseUrl:
    """Parse ``scheme://host[:port]`` strictly; the ``ValueError`` never quotes the URL (it may hold a password)."""
    if not isinstance(text, str):
        raise ValueError(f"is a {type(text).__name__}, not a URL string")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("contains whitespace or control characters")
    if "\\" in text:
        raise ValueError("contains a backslash, which URL parsers read differently")
    if "@" in text:
        raise ValueError("contains userinfo (a name or password before @); credentials never go in a base URL")
    if not text.isascii():
        raise ValueError("contains non-ASCII characters; use the host's ASCII (punycode) form")
    match = _BASE_URL_RE.fullmatch(text)
    if match is None:
        raise ValueError("is not of the form https://host[:port] (no path, query or fragment: the SDK adds /v1/...)")
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"has scheme {scheme!r}; only https:// (or http:// where the admin lists it) is used")
    port = None if match["port"] is None else int(match["port"])
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"has port {port}, outside 1-65535")
    return BaseUrl(scheme, match["host"].lower().rstrip("."), port)


def allowed_base_urls() -> tuple[BaseUrl, ...]:
    """Stripe's base URL plus the admin's ``[stripe] allowed_base_urls``, read now (never cached)."""
    from airflow.configuration import conf

    raw = conf.get(ALLOWED_BASE_URLS_SECTION, ALLOWED_BASE_URLS_KEY, fallback="") or ""
    allowed = [parse_base_url(STRIPE_CONTRACT.rest.base_url)]
    for position, entry in enumerate(raw.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        try:
            allowed.append(parse_base_url(entry.rstrip("/")))
        except ValueError as exc:
            raise StripeConfigurationError(
                f"entry {position} of the Airflow config option {admin_option(ALLOWED_BASE_URLS_KEY)} {exc}; "
                "ask the Airflow admin to fix it",
                field="base_url",
            ) from None
    return tuple(allowed)


def validate_base_url(base_url: str, *, conn_id: str | None = None) -> str:
    """Return the base URL if Stripe's or admin-allowed, else raise, before any DNS look-up; rebuilt from the parsed
    parts, so the HTTP library connects exactly where the check looked (messages never show userinfo)."""
    try:
        parsed = parse_base_url(base_url)
    except ValueError as exc:
        raise StripeConfigurationError(f"base_url {exc}", field="base_url", conn_id=conn_id) from None
    if not any(entry.allows(parsed) for entry in allowed_base_urls()):
        raise StripeConfigurationError(
            f"base_url {parsed} is not allowed: the API key is only sent to {STRIPE_CONTRACT.rest.base_url} "
            f"and to the base URLs the Airflow admin lists (comma-separated) in the config option "
            f"{admin_option(ALLOWED_BASE_URLS_KEY)}. Leave base_url empty for Stripe, or ask the "
            "admin to allow this server",
            field="base_url",
            conn_id=conn_id,
        )
    return str(parsed)


RATE_LIMIT_CAPS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "rate_limit_per_minute": (MAX_RATE_LIMIT_PER_MINUTE_KEY, STRIPE_CONTRACT.rate_limit.rpm),
        "rate_limit_per_hour": (MAX_RATE_LIMIT_PER_HOUR_KEY, STRIPE_CONTRACT.rate_limit.rph),
    }
)
"""Per rate-limit field: the admin option that may raise its maximum, and the contract's value (the default cap)."""


def admin_option(key: str) -> str:
    """How messages name an admin option; not ``[stripe] <key>``, which rich (``airflow connections test``) drops."""
    return f"{key} in section {ALLOWED_BASE_URLS_SECTION} (env {admin_env(key)})"


def rate_limit_cap(field: str) -> int:
    """The highest rate-limit ``field`` a connection may set: the contract's, or more if the admin allows
    (:data:`RATE_LIMIT_CAPS`), so a connection cannot switch the client-side limit off."""
    from airflow.configuration import conf

    key, contract_value = RATE_LIMIT_CAPS[field]
    raw = (conf.get(ALLOWED_BASE_URLS_SECTION, key, fallback="") or "").strip()
    if not raw:
        return contract_value
    if not raw.isdigit() or int(raw) < 1:
        raise StripeConfigurationError(
            f"the Airflow config option {admin_option(key)} is {raw!r}, not a whole number of requests; "
            "ask the Airflow admin to fix it",
            field=field,
        )
    return max(int(raw), contract_value)


_BOOL_TEXT = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off", ""), False),
}
_FROM_TEXT: dict[str, Callable[[str], Any]] = {"integer": int, "number": float, "boolean": _BOOL_TEXT.__getitem__}


def _coerce(field: ConnField, value: Any, *, conn_id: str | None) -> Any:
    """Values typed into the form or an env var may arrive as strings: coerce per the field schema."""
    kind = field.schema.get("type")
    if value is None:
        return field.default
    if isinstance(value, str) and kind in _FROM_TEXT:
        try:
            return _FROM_TEXT[kind](value.strip().lower())
        except (ValueError, KeyError):
            raise StripeConfigurationError(
                f"{value!r} is not a valid {kind}", field=field.name, conn_id=conn_id
            ) from None
    return value


def _check_schema(name: str, value: Any, schema: Mapping[str, Any], *, conn_id: str | None) -> None:
    import jsonschema

    try:
        jsonschema.validate(value, thaw(schema))
    except jsonschema.ValidationError as exc:
        allowed = schema.get("enum")
        hint = f" (allowed: {', '.join(map(str, allowed))})" if allowed else ""
        # jsonschema's message quotes the value, and reaches places the log masker does not: not for a secret
        if name not in SECRET_FIELD_NAMES:
            message = exc.message
        elif exc.validator == "type":
            kind = type(exc.instance).__name__
            message = f"must be of type {exc.validator_value!r}, not {kind} (value not shown: a secret)"
        else:
            message = f"fails the {exc.validator!r} rule {exc.validator_value!r} (value not shown: a secret)"
        raise StripeConfigurationError(f"{message}{hint}", field=name, conn_id=conn_id) from None


def config_from_connection(conn: ConnectionLike) -> StripeConnectionConfig:
    """Parse and validate a ``stripe`` connection; raise naming the field at fault."""
    conn_id = conn.conn_id or "<unnamed>"
    extra = conn.extra_dejson or {}
    raw: dict[str, Any] = {}
    for field in CONNECTION_FIELDS:
        value = next((extra[key] for key in field.extra_keys if extra.get(key) not in (None, "")), None)
        raw[field.name] = _coerce(field, value, conn_id=conn_id)  # list fields stay text until checked
    if not raw["api_key"] and conn.password:
        raw["api_key"] = conn.password
    if raw["api_version"] not in STRIPE_CONTRACT.version_policy.supported:
        raise StripeConfigurationError(
            f"Stripe API version {raw['api_version']!r} is not supported; supported: "
            + ", ".join(STRIPE_CONTRACT.version_policy.supported),
            field="api_version",
            conn_id=conn_id,
        )
    _check_fields(raw, conn_id)
    for name, (key, contract_value) in RATE_LIMIT_CAPS.items():
        cap = rate_limit_cap(name)
        if raw[name] > cap:
            raise StripeConfigurationError(
                f"{raw[name]} is above the maximum of {cap} (the {STRIPE_CONTRACT.meta.key} contract's limit is "
                f"{contract_value}): lower it, or ask the Airflow admin to allow more with the config option "
                f"{admin_option(key)}",
                field=name,
                conn_id=conn_id,
            )
    _check_contract(raw, conn_id)
    validate_api_key(raw["api_key"], conn_id=conn_id)
    if raw["account_id"] is not None:
        validate_account_id(raw["account_id"], conn_id=conn_id)
    auth_type = raw["auth_type"]  # the rules between auth type, mode and the OAuth fields
    if auth_type == AUTH_OAUTH2:
        for needed in ("oauth_client_id", "account_id"):
            if not raw[needed]:
                raise StripeConfigurationError(
                    "auth type oauth2 (Stripe Connect) needs it: run `airflow-stripe-oauth` to obtain the "
                    "connected account and refresh token",
                    field=needed,
                    conn_id=conn_id,
                )
    if raw["mode"] == Mode.MANAGED and auth_type != AUTH_OAUTH2:
        raise StripeConfigurationError(
            "mode managed means a Stripe account connected through Stripe Connect OAuth: set auth_type to "
            f"{AUTH_OAUTH2}, or use mode byok with your own key",
            field="auth_type",
            conn_id=conn_id,
        )
    raw["base_url"] = validate_base_url(raw["base_url"] or STRIPE_CONTRACT.rest.base_url, conn_id=conn_id)
    return StripeConnectionConfig(conn_id=conn_id, values=raw)


def _check_fields(raw: dict[str, Any], conn_id: str) -> None:
    """Field-level rules from the form's schemas (numbers must be finite: ``nan`` passes bounds)."""
    for field in CONNECTION_FIELDS:
        value = raw[field.name]
        if isinstance(value, float) and not math.isfinite(value):
            limit = field.schema.get("maximum")
            raise StripeConfigurationError(
                f"{value!r} is not a finite number: pass a number" + (f" of at most {limit}" if limit else ""),
                field=field.name,
                conn_id=conn_id,
            )
        if value is not None and field.parse_items is None:
            schema = {k: v for k, v in field.schema.items() if k not in ("format", "default")}
            _check_schema(field.name, value, schema, conn_id=conn_id)
    for field in CONNECTION_FIELDS:
        if field.parse_items is not None:
            try:
                raw[field.name] = field.parse_items(raw[field.name])
            except (TypeError, ValueError) as exc:  # their messages never hold a secret
                raise StripeConfigurationError(str(exc), field=field.name, conn_id=conn_id) from None


def _check_contract(raw: Mapping[str, Any], conn_id: str) -> None:
    """The contract's secret and config schemas, on its camelCase names (a list field gives its first item)."""
    for prop in STRIPE_CONTRACT.secrets.required:
        value = raw[snake_case(prop)]
        if FIELDS_BY_NAME[snake_case(prop)].parse_items is not None:
            value = value[0] if value else None
        if not value:
            raise StripeConfigurationError(
                f"required by the {STRIPE_CONTRACT.meta.key} contract but empty: "
                + STRIPE_CONTRACT.secrets.properties[prop]["description"],
                field=snake_case(prop),
                conn_id=conn_id,
            )
    config_doc = {p: raw[snake_case(p)] for p in STRIPE_CONTRACT.config.properties if raw[snake_case(p)] is not None}
    _check_schema("config", config_doc, STRIPE_CONTRACT.config.schema, conn_id=conn_id)
