"""The webhook signing secret(s) a connection holds, as a tuple.

Pure (no Airflow, no provider errors): the connection form's field declaration uses it, and
provider info is loaded while Airflow initialises its configuration, where importing Airflow
or the provider's error hierarchy would be circular.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_SECRET_SEPARATORS = re.compile(r"[,\s]+")


def parse_webhook_secrets(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise the webhook signing secret(s) held by a connection into a tuple.

    During a secret rotation an endpoint has several live secrets, so a connection may hold a
    list, or one string with the secrets separated by commas, whitespace or newlines (what a
    form field or an environment variable gives). A string that looks like a JSON list
    (``'["whsec_a", "whsec_b"]'``, e.g. a connection extra typed into a text field) is read as
    JSON rather than split into broken pieces. Each secret is stripped; empty entries are
    dropped; order is kept (the first is tried first) and duplicates are removed.

    Raises ``TypeError`` for anything that is not a string or a sequence of strings, and
    ``ValueError`` for a string that starts like a JSON list but is not one. Error messages
    never contain a secret.
    """
    if value is None:
        return ()
    items: Sequence[Any]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    "The webhook secrets start with '[' but are not a valid JSON list of strings. "
                    "Give a JSON list, or the secrets separated by commas, spaces or newlines."
                ) from None
            if not isinstance(loaded, list):
                raise ValueError("The webhook secrets parsed as JSON but not as a list of strings.")
            items = loaded
        else:
            items = (text,)
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(f"Webhook secrets must be a string or a sequence of strings, not {type(value).__name__}.")
    else:
        items = value
    secrets: dict[str, None] = {}  # an ordered set
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"Webhook secret #{index} is a {type(item).__name__}, not a string.")
        for part in _SECRET_SEPARATORS.split(item):
            if part:
                secrets.setdefault(part)
    return tuple(secrets)
