"""Dependencies point one way: the trainer (model/) may import the service (app/), never the
reverse, and the service does not import trainer-only packages. Read from the syntax tree of
every module, so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.core.config import REPO_ROOT

# packages that only the `train` extra installs (pyproject.toml): the service image lacks them
TRAINER_ONLY = {"model", "tqdm", "matplotlib", "scipy", "tensorboard"}


def imported_roots(source: str, filename: str = "<string>") -> set[str]:
    """Top-level package of every absolute import in `source` (`import a.b`, `from a.b import c`)."""
    roots = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def service_modules() -> list[Path]:
    return sorted((REPO_ROOT / "app").rglob("*.py")) + sorted((REPO_ROOT / "migrations").rglob("*.py"))


def test_the_scan_sees_every_form_of_import():
    src = ("import model\nimport model.faces.heads as h\nfrom model.faces import heads\n"
           "def f():\n    from tqdm import tqdm\n    importlib.import_module('matplotlib.pyplot')\n"
           "from . import sibling\n")
    assert imported_roots(src) == {"model", "tqdm", "matplotlib"}


@pytest.mark.parametrize("path", service_modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_service_module_does_not_import_the_trainer(path: Path):
    bad = imported_roots(path.read_text(), str(path)) & TRAINER_ONLY
    assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}; the service must not"


def test_there_are_service_modules_to_check():
    assert len(service_modules()) > 20
