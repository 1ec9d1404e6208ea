"""``get_provider_info()``: what Airflow's ProvidersManager learns about this provider, derived from
the contract and the connection form."""

from __future__ import annotations

from typing import Any

from airflow_provider_stripe import __version__, constants
from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.connection.form import conn_fields, ui_field_behaviour

PACKAGE_NAME = "airflow-provider-stripe"


def get_provider_info() -> dict[str, Any]:
    meta = STRIPE_CONTRACT.meta
    return {
        "package-name": PACKAGE_NAME,
        "name": meta.title,
        "description": (
            f"{meta.description} Contract {meta.key} {meta.version} ({meta.stability.value}); "
            f"tags: {', '.join(meta.tags)}; owners: {', '.join(meta.owners)}. Docs: {STRIPE_CONTRACT.docs_url}"
        ),
        "versions": [__version__],
        "integrations": [
            {"integration-name": meta.title, "external-doc-url": STRIPE_CONTRACT.docs_url, "tags": ["service"]}
        ],
        "hooks": _modules("hooks", "stripe"),
        "operators": _modules("operators", "charges", "payouts", "exports", "reconciliation", "reports"),
        "sensors": _modules("sensors", "payouts"),
        "triggers": _modules("triggers", "payouts", "events", "reports"),
        "extra-links": ["airflow_provider_stripe.links.dashboard.StripeDashboardLink"],
        "connection-types": [
            {
                "connection-type": constants.CONN_TYPE,
                "hook-class-name": "airflow_provider_stripe.hooks.stripe.StripeHook",
                "hook-name": constants.HOOK_NAME,
                "conn-fields": conn_fields(),
                "ui-field-behaviour": ui_field_behaviour(),
            }
        ],
        "config": _config_options(),
        "asset-uris": [
            {"schemes": ["stripe"], "handler": "airflow_provider_stripe.events.assets.normalize_stripe_uri"}
        ],
    }


def _modules(kind: str, *names: str) -> list[dict[str, Any]]:
    """The entry listing the modules ``airflow_provider_stripe.<kind>.<name>``."""
    modules = [f"airflow_provider_stripe.{kind}.{name}" for name in names]
    return [{"integration-name": STRIPE_CONTRACT.meta.title, "python-modules": modules}]


def _config_options() -> dict[str, Any]:
    """The ``config`` entry: the admin-only ``[stripe]`` options (allowed base URLs, rate-limit caps)."""
    limits = STRIPE_CONTRACT.rate_limit
    caps = {
        key: {
            "description": (
                f"The highest rate_limit_per_{unit} a stripe connection may set. Empty: the "
                f"{STRIPE_CONTRACT.meta.key} contract's {value} per {unit}; a smaller value is ignored. A connection "
                "asking for more fails before any request, so a user who may edit connections cannot switch the "
                "client-side limit off. Read each time a connection is used."
            ),
            "version_added": "1.1.0",
            "type": "integer",
            "example": str(value * 10),
            "default": "",
        }
        for key, unit, value in (
            (constants.MAX_RATE_LIMIT_PER_MINUTE_KEY, "minute", limits.rpm),
            (constants.MAX_RATE_LIMIT_PER_HOUR_KEY, "hour", limits.rph),
        )
    }
    return {
        constants.ALLOWED_BASE_URLS_SECTION: {
            "description": "Settings of the Stripe provider that only the Airflow admin may change.",
            "options": {
                constants.ALLOWED_BASE_URLS_KEY: {
                    "description": (
                        f"Base URLs a stripe connection may send its API key to, besides "
                        f"{STRIPE_CONTRACT.rest.base_url} (always allowed), comma-separated. An entry without a "
                        "port allows any port on that scheme and host (http://127.0.0.1 allows every local "
                        "port). Nothing else is allowed, not even loopback: a connection whose base_url is "
                        "not listed fails before any request, so a user who may edit or test connections "
                        "cannot send a stored key elsewhere. Read each time a connection is used."
                    ),
                    "version_added": "1.1.0",
                    "type": "string",
                    "example": "http://127.0.0.1,https://stripe-mock.internal:12111",
                    "default": "",
                },
                **caps,
            },
        }
    }
