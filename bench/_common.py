"""What the benchmarks share: a free loopback port, and writing one block of docs/benchmarks.md."""

from __future__ import annotations

import socket
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_docs_block(name: str, body: str, path: Path = DOCS) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` with `body`.

    Hand-written notes that follow a `<!-- name:notes ... -->` marker inside the block are
    kept, so a rerun regenerates the figures without losing the analysis written below them.
    """
    text = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    i, j = text.index(start) + len(start), text.index(end)
    old, marker = text[i:j], f"<!-- {name}:notes"
    notes = "\n" + old[old.index(marker):].strip() + "\n" if marker in old else ""
    path.write_text(text[:i] + "\n" + body.strip() + "\n" + notes + text[j:])
