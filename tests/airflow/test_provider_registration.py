"""Airflow itself discovers the provider: connection type, form fields, plugin, provider info.

The facts are read in a fresh Python process, through the same Airflow services the API
server uses (``ProvidersManager``, ``HookMetaService.hook_meta_data()`` -- the payload the
connection form is rendered from -- and the plugins manager), so nothing is served from
this test process's caches. The process runs outside the source checkout, as an installed
provider does (see :mod:`tests.airflow.subprocess_env`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT, snake_case
from airflow_provider_stripe.connection.form import CONNECTION_FIELDS, HIDDEN_STANDARD_FIELDS
from airflow_provider_stripe.constants import CONN_TYPE, HOOK_NAME
from airflow_provider_stripe.get_provider_info import PACKAGE_NAME, get_provider_info
from tests.airflow.subprocess_env import installed_env, neutral_cwd

PLUGIN_CLASS = "airflow_provider_stripe.plugins.StripePlugin"
MIDDLEWARE_CLASS = "airflow_provider_stripe.plugins.connection_test_fix.StripeConnectionTestPortFix"

#: Runs in the child: prints what Airflow learned about the provider, as JSON.
_PROBE = """
import json, warnings
warnings.simplefilter("ignore")
from airflow import plugins_manager
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from airflow.providers_manager import ProvidersManager

pm = ProvidersManager()
package = {package!r}
conn_type = {conn_type!r}
hook_meta = [m.model_dump(mode="json") for m in HookMetaService.hook_meta_data() if m.connection_type == conn_type]
hook = pm.hooks.get(conn_type)
print(json.dumps({{
    "provider": pm.providers[package].data if package in pm.providers else None,
    "hook_meta": hook_meta,
    "hook": hook._asdict() if hook else None,
    "sensitive": {{
        k: w.is_sensitive for k, w in pm.connection_form_widgets.items() if k.startswith(f"extra__{{conn_type}}__")
    }},
    "provider_plugins": [p._asdict() for p in pm.plugins],
    "plugins": plugins_manager.get_plugin_info(),
    # get_import_errors() from Airflow 3.2; 3.1 keeps them in a module attribute.
    "plugin_import_errors": (
        plugins_manager.get_import_errors() if hasattr(plugins_manager, "get_import_errors")
        else plugins_manager.import_errors
    ),
}}, default=str))
"""


@pytest.fixture(scope="module")
def discovered() -> dict[str, Any]:
    """What a fresh Airflow process discovers about the provider."""
    probe = _PROBE.format(package=PACKAGE_NAME, conn_type=CONN_TYPE)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=installed_env(),
        cwd=neutral_cwd(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"probe failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _contract_properties() -> list[tuple[str, bool]]:
    """(contract property, is secret) for every configSchema and secretSchema property."""
    return [(p, False) for p in STRIPE_CONTRACT.config.properties] + [
        (p, True) for p in STRIPE_CONTRACT.secrets.properties
    ]


def test_connection_type_is_registered_with_its_hook(discovered: dict[str, Any]) -> None:
    assert discovered["provider"] is not None, f"{PACKAGE_NAME} not found by ProvidersManager"
    (meta,) = discovered["hook_meta"]
    assert meta["hook_name"] == HOOK_NAME == "Stripe"
    assert meta["hook_class_name"] == "airflow_provider_stripe.hooks.stripe.StripeHook"
    hook = discovered["hook"]
    assert hook["hook_name"] == "Stripe"
    assert hook["connection_testable"] is True, "the Test button needs StripeHook.test_connection"


def test_form_has_the_contract_fields_secrets_masked(discovered: dict[str, Any]) -> None:
    (meta,) = discovered["hook_meta"]
    extra_fields = meta["extra_fields"]  # what the UI renders the form from, keyed by extra key
    for prop, secret in _contract_properties():
        name = snake_case(prop)
        assert name in extra_fields, f"contract property {prop} has no form field"
        # format "password" is what makes the UI mask the input, on 3.1 (hook widgets) and 3.2+ (conn-fields).
        assert (extra_fields[name]["schema"].get("format") == "password") is secret
        assert extra_fields[name]["description"].startswith(
            (STRIPE_CONTRACT.secrets if secret else STRIPE_CONTRACT.config).properties[prop]["description"]
        )
    assert {"api_key", "webhook_secret", "account_id", "region"} <= set(extra_fields)
    # Every field of the form is shown, with its label as the schema title.
    assert {k: v["schema"]["title"] for k, v in extra_fields.items()} == {f.name: f.label for f in CONNECTION_FIELDS}
    hidden = {name for name, behaviour in meta["standard_fields"].items() if behaviour and behaviour["hidden"]}
    assert hidden == {"url_schema" if f == "schema" else f for f in HIDDEN_STANDARD_FIELDS}


@pytest.mark.airflow_min("3.2", reason="Airflow 3.1 flags widgets sensitive from the real WTForms widget only")
def test_secret_fields_are_flagged_sensitive(discovered: dict[str, Any]) -> None:
    for prop, secret in _contract_properties():
        name = snake_case(prop)
        assert discovered["sensitive"][f"extra__{CONN_TYPE}__{name}"] is secret, f"{name}: masked is not {secret}"


@pytest.mark.airflow_min("3.2", reason="Airflow 3.1's form makes every custom field optional")
def test_only_the_contracts_required_secrets_are_required_in_the_form(discovered: dict[str, Any]) -> None:
    """Airflow's form requires every field whose type does not admit null (and disables Save)."""
    (meta,) = discovered["hook_meta"]
    required = {
        name
        for name, field in meta["extra_fields"].items()
        if not (isinstance(field["schema"]["type"], list) and "null" in field["schema"]["type"])
    }
    assert required == {snake_case(p) for p in STRIPE_CONTRACT.secrets.required} == {"api_key", "webhook_secret"}


def test_plugin_is_loaded_with_the_test_button_middleware(discovered: dict[str, Any]) -> None:
    (plugin,) = [p for p in discovered["plugins"] if p["name"] == "stripe"]
    middlewares = [m["middleware"] for m in plugin["fastapi_root_middlewares"]]
    assert middlewares == [MIDDLEWARE_CLASS]
    assert f"{PACKAGE_NAME}==" in plugin["source"]
    assert discovered["plugin_import_errors"] == {}
    # Registered once, through the airflow.plugins entry point; listing it in the provider
    # info as well would load it twice ("Plugin 'stripe' already registered").
    assert not any(p["plugin_class"] == PLUGIN_CLASS for p in discovered["provider_plugins"])


def test_provider_info_validates_against_airflows_schemas() -> None:
    import airflow

    airflow_dir = Path(airflow.__file__).parent
    info = get_provider_info()
    jsonschema.validate(info, json.loads((airflow_dir / "provider_info.schema.json").read_text()))
    # provider_info.schema.json does not describe conn-fields; provider.yaml's schema does.
    yaml_schema = json.loads((airflow_dir / "provider.yaml.schema.json").read_text())
    for conn_type in info["connection-types"]:
        jsonschema.validate(conn_type, yaml_schema["properties"]["connection-types"]["items"])


def test_provider_info_covers_every_contract_property(discovered: dict[str, Any]) -> None:
    """What Airflow loaded (not just what the function returns) carries the whole contract."""
    expected = json.loads(json.dumps(get_provider_info()))
    assert {k: discovered["provider"].get(k) for k in expected} == expected
    (conn_type,) = discovered["provider"]["connection-types"]
    fields = conn_type["conn-fields"]
    for prop, secret in _contract_properties():
        schema = fields[snake_case(prop)]["schema"]
        assert (schema.get("format") == "password") is secret, f"{prop}: format {schema.get('format')!r}"
    masked = {name for name, f in fields.items() if f["schema"].get("format") == "password"}
    assert masked == {f.name for f in CONNECTION_FIELDS if f.secret}


def test_airflow_config_list_shows_the_allowlist_option_with_its_description() -> None:
    """``airflow config list`` (a fresh process) knows ``[stripe] allowed_base_urls`` and describes it."""
    from airflow_provider_stripe.compat import AIRFLOW_VERSION

    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow"),
            "config",
            "list",
            "--section",
            "stripe",
            "--include-descriptions",
            # Airflow 3.2 hides values unless asked; 3.1 shows them and knows no such flag.
            *(["--show-values"] if AIRFLOW_VERSION >= (3, 2) else []),
        ],
        env=installed_env(AIRFLOW__STRIPE__ALLOWED_BASE_URLS="http://127.0.0.1:9"),
        cwd=neutral_cwd(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[stripe]" in result.stdout
    assert "# Base URLs a stripe connection may send its API key to" in result.stdout
    assert "allowed_base_urls = http://127.0.0.1:9" in result.stdout, result.stdout
