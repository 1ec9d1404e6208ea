"""Print the README's connection-field table, generated from the connection form (one source of truth).

    .venv/bin/python scripts/readme_fields.py            # print the table
    .venv/bin/python scripts/readme_fields.py --write    # replace it in README.md

tests/unit/test_readme.py fails when README.md and the form disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from airflow_provider_stripe.connection_form import CONNECTION_FIELDS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- connection-fields:start -->", "<!-- connection-fields:end -->"


def table() -> str:
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
    return f"{START}\n{table()}\n{END}"


def main() -> int:
    if "--write" in sys.argv:
        text = README.read_text()
        new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section(), text, flags=re.S)
        README.write_text(new)
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
