"""What the local Stripe holds, read straight from localstripe (not through Airflow), and instruction files."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import requests

from tests.servers.localstripe_server import TEST_API_KEY


def list_all(stripe_url: str, resource: str) -> list[dict[str, Any]]:
    """Every object of ``/v1/<resource>`` (paginated, 100 a page; bounded to 100 pages)."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    for _ in range(100):
        page = requests.get(f"{stripe_url}/v1/{resource}", params=params, auth=(TEST_API_KEY, ""), timeout=30)
        page.raise_for_status()
        body = page.json()
        out += body["data"]
        if not body.get("has_more") or not body["data"]:
            return out
        params["starting_after"] = body["data"][-1]["id"]
    raise AssertionError(f"more than 100 pages of {resource}")


def payouts_by_description(stripe_url: str, prefix: str) -> collections.Counter[str]:
    """How many payouts exist per description starting with ``prefix`` (a count above 1 is a double payment)."""
    return collections.Counter(
        p["description"] for p in list_all(stripe_url, "payouts") if str(p.get("description") or "").startswith(prefix)
    )


def instructions(tag: str, count: int, amount: int = 1000) -> list[dict[str, Any]]:
    """``count`` EUR payout instructions; reference and description both carry ``tag`` and the index."""
    return [
        {"reference": f"{tag}-{i:04d}", "amount": amount + i, "currency": "eur", "description": f"{tag}-{i:04d}"}
        for i in range(count)
    ]


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return str(path)
