"""The payments.stripe integration contract (``shared/spec/payments.stripe.integration.ts``) as typed,
immutable data: :data:`STRIPE_CONTRACT`, the one source of its facts. No heavy imports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Literal


def _frozen(value: Any) -> Any:
    """Deep-freeze JSON-like data: dicts become read-only mappings, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn frozen contract data back into plain dicts and lists (for jsonschema, JSON)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class Stability(str, Enum):
    EXPERIMENTAL = "experimental"
    BETA = "beta"
    STABLE = "stable"
    DEPRECATED = "deprecated"


class Mode(str, Enum):
    """How the Stripe account behind a connection is provided (the contract's supportedModes)."""

    MANAGED = "managed"
    BYOK = "byok"


@dataclass(frozen=True)
class Meta:
    key: str
    version: str
    category: str
    title: str
    description: str
    domain: str
    owners: tuple[str, ...]
    tags: tuple[str, ...]
    stability: Stability


@dataclass(frozen=True)
class RestTransport:
    base_url: str
    api_version_header: str


@dataclass(frozen=True)
class WebhookTransport:
    signature_header: str
    signing_algorithm: Literal["hmac-sha256"]


@dataclass(frozen=True)
class SdkTransport:
    package_name: str
    min_version: str


@dataclass(frozen=True)
class ApiKeyAuth:
    header_name: str
    prefix: str


@dataclass(frozen=True)
class OAuth2Auth:
    grant_type: Literal["authorization_code"]
    authorization_url: str
    token_url: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class WebhookSigningAuth:
    algorithm: Literal["hmac-sha256"]
    signature_header: str


@dataclass(frozen=True)
class SupportedVersion:
    version: str
    status: Literal["stable", "beta", "deprecated"]


@dataclass(frozen=True)
class VersionPolicy:
    current_version: str
    supported_versions: tuple[SupportedVersion, ...]
    version_header: str

    @property
    def supported(self) -> tuple[str, ...]:
        return tuple(v.version for v in self.supported_versions)


@dataclass(frozen=True)
class CapabilityRef:
    key: str
    version: str | None = None
    optional: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class Capabilities:
    provides: tuple[CapabilityRef, ...]
    requires: tuple[CapabilityRef, ...]


@dataclass(frozen=True)
class SchemaWithExample:
    """A JSON schema (kept read-only) and the contract's example value for it."""

    schema: Mapping[str, Any]
    example: Mapping[str, Any]

    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        return self.schema.get("properties", MappingProxyType({}))

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.schema.get("required", ()))


@dataclass(frozen=True)
class HealthCheck:
    method: Literal["ping"]
    timeout_ms: int

    @property
    def timeout_seconds(self) -> float:
        return self.timeout_ms / 1000


@dataclass(frozen=True)
class RateLimit:
    rpm: int
    rph: int


@dataclass(frozen=True)
class ByokSetup:
    setup_instructions: str
    required_scopes: tuple[str, ...]
    key_rotation_supported: bool
    quota_tracking_supported: bool


@dataclass(frozen=True)
class IntegrationContract:
    meta: Meta
    supported_modes: tuple[Mode, ...]
    rest: RestTransport
    webhook: WebhookTransport
    sdk: SdkTransport
    preferred_transport: Literal["rest", "webhook", "sdk"]
    api_key_auth: ApiKeyAuth
    oauth2_auth: OAuth2Auth
    webhook_signing_auth: WebhookSigningAuth
    version_policy: VersionPolicy
    capabilities: Capabilities
    config: SchemaWithExample
    secrets: SchemaWithExample
    health_check: HealthCheck
    docs_url: str
    rate_limit: RateLimit
    byok_setup: ByokSetup


STRIPE_CONTRACT = IntegrationContract(
    meta=Meta(
        key="payments.stripe",
        version="1.0.0",
        category="payments",
        title="Stripe Payments",
        description="Stripe integration for payment processing, charges, and payouts.",
        domain="payments",
        owners=("platform.payments",),
        tags=("payments", "psp"),
        stability=Stability.STABLE,
    ),
    supported_modes=(Mode.MANAGED, Mode.BYOK),
    rest=RestTransport(base_url="https://api.stripe.com", api_version_header="Stripe-Version"),
    webhook=WebhookTransport(signature_header="stripe-signature", signing_algorithm="hmac-sha256"),
    sdk=SdkTransport(package_name="stripe", min_version="14.0.0"),
    preferred_transport="rest",
    api_key_auth=ApiKeyAuth(header_name="Authorization", prefix="Bearer "),
    oauth2_auth=OAuth2Auth(
        grant_type="authorization_code",
        authorization_url="https://connect.stripe.com/oauth/authorize",
        token_url="https://connect.stripe.com/oauth/token",
        scopes=("read_write",),
    ),
    webhook_signing_auth=WebhookSigningAuth(algorithm="hmac-sha256", signature_header="stripe-signature"),
    version_policy=VersionPolicy(
        current_version="2024-11-20.acacia",
        supported_versions=(SupportedVersion(version="2024-11-20.acacia", status="stable"),),
        version_header="Stripe-Version",
    ),
    capabilities=Capabilities(
        provides=(CapabilityRef(key="payments.psp", version="1.0.0"),),
        requires=(
            CapabilityRef(key="platform.webhooks", optional=True, reason="Recommended for reliable event ingestion"),
        ),
    ),
    config=SchemaWithExample(
        schema=_frozen(
            {
                "type": "object",
                "properties": {
                    "accountId": {
                        "type": "string",
                        "description": "Connected account ID when using Stripe Connect (BYOK).",
                    },
                    "region": {"type": "string", "description": "Optional Stripe region or data residency hint."},
                },
            }
        ),
        example=_frozen({"accountId": "acct_123", "region": "us-east-1"}),
    ),
    secrets=SchemaWithExample(
        schema=_frozen(
            {
                "type": "object",
                "required": ["apiKey", "webhookSecret"],
                "properties": {
                    "apiKey": {"type": "string", "description": "Stripe secret API key (sk_live_... or sk_test_...)."},
                    "webhookSecret": {"type": "string", "description": "Signing secret for webhook verification."},
                },
            }
        ),
        example=_frozen({"apiKey": "sk_live_***", "webhookSecret": "whsec_***"}),
    ),
    health_check=HealthCheck(method="ping", timeout_ms=5000),
    docs_url="https://stripe.com/docs/api",
    rate_limit=RateLimit(rpm=1000, rph=20000),
    byok_setup=ByokSetup(
        setup_instructions=(
            "Create a restricted Stripe API key with write access to Charges and provide a webhook signing secret."
        ),
        required_scopes=("charges:write", "customers:read"),
        key_rotation_supported=True,
        quota_tracking_supported=False,
    ),
)
"""The payments.stripe contract. Import this; never restate its values."""


def snake_case(name: str) -> str:
    """``accountId`` -> ``account_id``: contract property names become connection extra keys."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
