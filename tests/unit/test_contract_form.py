"""The contract is carried once and the connection form / provider info derive from it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT, snake_case, thaw
from airflow_provider_stripe.connection.form import CONNECTION_FIELDS, FIELDS_BY_NAME, HIDDEN_STANDARD_FIELDS
from airflow_provider_stripe.get_provider_info import PACKAGE_NAME, get_provider_info

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "payments.stripe.integration.ts"


def _conn_type() -> dict:
    (entry,) = get_provider_info()["connection-types"]
    return entry


def test_provider_info_validates_against_airflows_schema() -> None:
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    assert get_provider_info()["package-name"] == PACKAGE_NAME == "airflow-provider-stripe"


@pytest.mark.parametrize(
    ("schema", "secret"), [(STRIPE_CONTRACT.config, False), (STRIPE_CONTRACT.secrets, True)], ids=["config", "secret"]
)
def test_every_contract_property_is_a_form_field(schema, secret: bool) -> None:
    fields = _conn_type()["conn-fields"]
    for prop, prop_schema in schema.properties.items():
        name = snake_case(prop)
        assert name in fields, f"{prop} missing from conn-fields"
        entry = fields[name]
        assert entry["description"].startswith(prop_schema["description"])
        expected_type = prop_schema["type"] if prop in schema.required else [prop_schema["type"], "null"]
        assert entry["schema"]["type"] == expected_type
        assert (entry["schema"].get("format") == "password") is secret


def test_only_secret_fields_are_masked() -> None:
    masked = {name for name, f in _conn_type()["conn-fields"].items() if f["schema"].get("format") == "password"}
    assert masked == {"api_key", "webhook_secret", "oauth_refresh_token"}


def test_defaults_come_from_the_contract() -> None:
    assert FIELDS_BY_NAME["api_version"].default == STRIPE_CONTRACT.version_policy.current_version
    assert FIELDS_BY_NAME["api_version"].schema["enum"] == list(STRIPE_CONTRACT.version_policy.supported)
    assert FIELDS_BY_NAME["rate_limit_per_minute"].default == STRIPE_CONTRACT.rate_limit.rpm
    assert FIELDS_BY_NAME["rate_limit_per_hour"].default == STRIPE_CONTRACT.rate_limit.rph
    assert set(FIELDS_BY_NAME["mode"].schema["enum"]) == {m.value for m in STRIPE_CONTRACT.supported_modes}
    api_key_help = FIELDS_BY_NAME["api_key"].description
    assert STRIPE_CONTRACT.docs_url in api_key_help
    assert STRIPE_CONTRACT.byok_setup.setup_instructions in api_key_help


def test_unused_standard_fields_hidden() -> None:
    behaviour = _conn_type()["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == set(HIDDEN_STANDARD_FIELDS) >= {"host", "port", "login", "schema"}


def test_field_schemas_are_valid_json_schemas() -> None:
    for field in CONNECTION_FIELDS:
        jsonschema.Draft202012Validator.check_schema(field.schema)


def test_contract_data_is_immutable() -> None:
    with pytest.raises(TypeError):
        STRIPE_CONTRACT.secrets.schema["required"] = []  # type: ignore[index]
    with pytest.raises(AttributeError):
        STRIPE_CONTRACT.rate_limit.rpm = 5  # type: ignore[misc]
    assert thaw(STRIPE_CONTRACT.secrets.schema)["required"] == ["apiKey", "webhookSecret"]


@pytest.mark.skipif(not SPEC.exists(), reason="shared/spec not beside the repo")
def test_typed_contract_matches_the_spec_file() -> None:
    """Every literal fact of the TypeScript contract appears in the typed contract."""
    text = SPEC.read_text()
    c = STRIPE_CONTRACT
    facts = [
        c.meta.key, c.meta.version, c.meta.title, c.meta.description, c.rest.base_url, c.rest.api_version_header,
        c.webhook.signature_header, c.webhook.signing_algorithm, c.sdk.package_name, c.sdk.min_version,
        c.api_key_auth.header_name, c.api_key_auth.prefix, c.oauth2_auth.authorization_url, c.oauth2_auth.token_url,
        *c.oauth2_auth.scopes, c.version_policy.current_version, c.capabilities.provides[0].key,
        c.capabilities.requires[0].key, c.capabilities.requires[0].reason or "", c.docs_url,
        c.byok_setup.setup_instructions, *c.byok_setup.required_scopes, *c.meta.tags, *c.meta.owners,
    ]  # fmt: skip
    for fact in facts:
        assert f"'{fact}'" in text or fact in text, fact
    assert f"rpm: {c.rate_limit.rpm}" in text and f"rph: {c.rate_limit.rph}" in text
    assert f"timeoutMs: {c.health_check.timeout_ms}" in text
    for prop in (*c.config.properties, *c.secrets.properties):
        assert f"{prop}:" in text


def test_api_key_help_lists_every_scope_and_who_needs_it() -> None:
    """Issue 8: the help listed charges:write and customers:read only."""
    from airflow_provider_stripe.operators import charges, exports, payouts
    from airflow_provider_stripe.sensors import payouts as payout_sensors
    from airflow_provider_stripe.triggers import events
    from airflow_provider_stripe.triggers import payouts as payout_triggers

    help_text = FIELDS_BY_NAME["api_key"].description
    for scope in (
        "charges:write",
        "customers:read",
        "refunds:write",
        "charges:read",
        "payouts:write",
        "payouts:read",
        "balance:read",
        "events:read",
    ):
        assert f"{scope}: " in help_text, scope
    task_classes = [
        charges.StripeCreateChargeOperator,
        charges.StripeCaptureChargeOperator,
        charges.StripeRefundChargeOperator,
        payouts.StripeCreatePayoutOperator,
        payouts.StripePayoutBatchOperator,
        payouts.StripeCancelPayoutOperator,
        exports.StripeExportOperator,
        payout_sensors.StripePayoutSensor,
        payout_triggers.StripePayoutTrigger,
        events.StripeEventTrigger,
    ]
    for cls in task_classes:
        assert cls.__name__ in help_text, cls.__name__
