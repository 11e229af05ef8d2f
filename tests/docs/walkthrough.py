"""The walkthrough as data: the README's "## Walkthrough" section, then docs/walkthrough.md
(its continuation), run in order in one bash session. A ```sh block followed by a ```json or
```text block must print that response; a JSON response is piped through
`.venv/bin/python -m json.tool` and shown exactly as json.tool prints it.

`python -m tests.docs.walkthrough URL` runs it against a server (with FACEAPI_DATABASE_URL
pointing at the server's database, for the key commands) and rewrites the shown responses
with the real ones: how the responses are regenerated after the service changes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from app.core.config import REPO_ROOT

README = REPO_ROOT / "README.md"
SECTION = "## Walkthrough"
CONTINUED = REPO_ROOT / "docs" / "walkthrough.md"
CONTINUED_SECTION = "# Walkthrough, continued"
PARTS = ((README, SECTION), (CONTINUED, CONTINUED_SECTION))
JSON_TOOL = "| .venv/bin/python -m json.tool"  # how every JSON response is shown
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
URL_LINE = re.compile(r"^URL=\S+$", re.M)
# values that differ between runs and machines; the rest must agree
VOLATILE = {"distance", "similarity", "score", "box", "created_at", "updated_at", "added_at", "threshold",
            "verify_threshold", "model_version", "impostor_pair_rate", "request_id", "instance"}


@dataclass
class Step:
    command: str
    kind: str | None = None  # "json" or "text": the response shown after the command
    expected: str | None = None
    span: tuple[int, int] | None = None  # where the response block's body is in the README


def section(text: str, heading: str = SECTION) -> tuple[int, str]:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return start, text[start:end if end != -1 else len(text)]


def steps(text: str, heading: str = SECTION) -> list[Step]:
    offset, body = section(text, heading)
    out: list[Step] = []
    for m in FENCE.finditer(body):
        lang, content = m.group(1), m.group(2)
        if lang == "sh":
            out.append(Step(content))
        elif lang in ("json", "text") and out and out[-1].kind is None:
            out[-1].kind, out[-1].expected = lang, content
            out[-1].span = (offset + m.start(2), offset + m.end(2))
    return out


def all_steps() -> list[tuple[Path, Step]]:
    """The whole walkthrough, in the order it runs: the README's part, then its continuation."""
    return [(path, step) for path, heading in PARTS for step in steps(path.read_text(), heading)]


def shown_as_json_tool(step: Step) -> list[str]:
    """A JSON step pipes its response through json.tool and shows what json.tool prints."""
    if step.kind != "json":
        return []
    problems = [] if step.command.rstrip().endswith(JSON_TOOL) else [f"not piped {JSON_TOOL!r}"]
    if step.expected.strip("\n") != pretty(json.loads(step.expected)):
        problems.append("the response is not shown as json.tool prints it")
    return problems


def run_steps(all_steps: list[Step], url: str, python: str, env: dict, cwd: Path = REPO_ROOT,
              timeout: float = 300) -> list[str]:
    """Run every step in one bash session; return each step's output."""
    script = ["set -u"]
    for i, step in enumerate(all_steps):
        command = URL_LINE.sub(f"URL={url}", step.command).replace(".venv/bin/python", python)
        script += [command, f"echo; echo '@@step {i} done@@'"]
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    parts = re.split(r"^@@step \d+ done@@$", done.stdout, flags=re.M)
    if len(parts) != len(all_steps) + 1:
        raise RuntimeError(f"the walkthrough stopped early:\n{done.stdout}\n{done.stderr}")
    return [p.strip("\n") for p in parts[:-1]]


def agree(expected, actual, path: str = "$") -> list[str]:
    """Where `actual` differs from `expected` in shape or in a decision (all but VOLATILE)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = [f"{path}: keys {sorted(expected)} != {sorted(actual)}"] if set(expected) != set(actual) else []
        for k in expected.keys() & actual.keys():
            if k in VOLATILE:
                if type(expected[k]) is not type(actual[k]) and not _numbers(expected[k], actual[k]):
                    problems.append(f"{path}.{k}: {type(expected[k]).__name__} != {type(actual[k]).__name__}")
            else:
                problems += agree(expected[k], actual[k], f"{path}.{k}")
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items shown, {len(actual)} returned"]
        return [p for e, a in zip(expected, actual) for p in agree(e, a, f"{path}[]")]
    if expected != actual or type(expected) is not type(actual):
        return [f"{path}: README shows {expected!r}, the service says {actual!r}"]
    return []


def _numbers(a, b) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))


def compare(step: Step, output: str) -> list[str]:
    if step.kind == "json":
        try:
            actual = json.loads(output)
        except json.JSONDecodeError:
            return [f"not JSON: {output[:300]!r}"]
        return agree(json.loads(step.expected), actual)
    return [] if output.strip() == step.expected.strip() else [f"{step.expected!r} != {output!r}"]


def pretty(obj) -> str:
    """JSON as `python -m json.tool` prints it (indent 4, ASCII escapes, keys in order)."""
    return json.dumps(obj, indent=4)


def regenerate(url: str) -> None:
    import os

    located = all_steps()
    outputs = run_steps([step for _, step in located], url, sys.executable, dict(os.environ))
    for path, _ in PARTS:
        text = path.read_text()
        mine = [(step, out) for (p, step), out in zip(located, outputs) if p == path]
        for step, output in sorted(mine, key=lambda so: -(so[0].span or (0, 0))[0]):
            if step.span is None:
                continue
            shown = pretty(json.loads(output)) if step.kind == "json" else output.strip()
            text = text[:step.span[0]] + shown + "\n" + text[step.span[1]:]
        path.write_text(text)


if __name__ == "__main__":
    regenerate(sys.argv[1])
