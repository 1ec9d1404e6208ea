"""The webhook signing secret(s) a connection holds, as a tuple; pure, as provider info loads it early."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_SECRET_SEPARATORS = re.compile(r"[,\s]+")


def parse_webhook_secrets(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise a connection's webhook secret(s) (a list, a JSON list, or text split on commas and
    whitespace) into a tuple, in order, stripped and de-duplicated; errors never quote a secret."""
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
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"Webhook secret #{index} is a {type(item).__name__}, not a string.")
    return tuple(dict.fromkeys(part for item in items for part in _SECRET_SEPARATORS.split(item) if part))
