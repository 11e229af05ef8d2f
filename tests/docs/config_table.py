"""docs/operations.md's settings table, generated from `Settings` (app/core/config.py owns every
default and its description; the docs only show them).

`python -m tests.docs.config_table` rewrites the table between its markers.
"""

from __future__ import annotations

from pathlib import Path

from app.core.config import PREFIX, REPO_ROOT, Settings

DOC = REPO_ROOT / "docs" / "operations.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _shown(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    for root, shown in ((str(REPO_ROOT.parent / "shared"), "../shared"), (str(REPO_ROOT), ".")):
        text = text.replace(root, shown)
    return f"`{text}`" if isinstance(value, (str, Path, list)) else text


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{PREFIX}{name.upper()}` | {_shown(default)} | {meaning} |")
    return "\n".join(rows)


def documented(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def rewrite() -> None:
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    DOC.write_text(f"{head}{START}\n{table()}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    rewrite()
