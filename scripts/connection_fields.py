"""The connection-field table of docs/connection.md, generated from the connection form (one source of truth).

    .venv/bin/python scripts/connection_fields.py            # print the table
    .venv/bin/python scripts/connection_fields.py --write    # replace it in docs/connection.md
    .venv/bin/python scripts/connection_fields.py --check    # exit 1 if docs/connection.md differs

tests/unit/test_docs.py fails when docs/connection.md and the form disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from airflow_provider_stripe.connection.form import CONNECTION_FIELDS

PAGE = Path(__file__).resolve().parent.parent / "docs" / "connection.md"
START, END = "<!-- connection-fields:start -->", "<!-- connection-fields:end -->"


def table() -> str:
    """One row per connection field, in form order: key, label, type, default, masked, description."""
    rows = ["| extra key | form label | type | default | masked | what it is |", "|---|---|---|---|---|---|"]
    for f in CONNECTION_FIELDS:
        kind = f.schema.get("type", "")
        if "enum" in f.schema:
            kind = " \\| ".join(f"`{v}`" for v in f.schema["enum"])
        default = (
            "" if f.default is None else f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
        )
        description = f.description.replace("|", "\\|")
        rows.append(f"| `{f.name}` | {f.label} | {kind} | {default} | {'yes' if f.secret else ''} | {description} |")
    return "\n".join(rows)


def section() -> str:
    """The table between its markers, as docs/connection.md must hold it."""
    return f"{START}\n{table()}\n{END}"


def main() -> int:
    if "--write" in sys.argv:
        text = PAGE.read_text()
        new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section(), text, flags=re.S)
        PAGE.write_text(new)
    elif "--check" in sys.argv:
        if section() not in PAGE.read_text():
            print(
                "docs/connection.md's field table differs from the connection form: "
                "run .venv/bin/python scripts/connection_fields.py --write",
                file=sys.stderr,
            )
            return 1
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
