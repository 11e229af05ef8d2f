"""app/inference imports without a circle, counting imports made inside functions (which may
only keep TensorFlow out of a process that does not need it, never hide a circle), and the
registry of embedder kinds loads no TensorFlow when it is imported."""

from __future__ import annotations

import subprocess
import sys

from app.core.config import REPO_ROOT
from tests.model.test_import_graph import _cycles

PACKAGE = REPO_ROOT / "app" / "inference"


def _modules() -> dict:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(REPO_ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(path, modules: dict) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"  # `from app.inference.backbones.dlib import embedder`
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules.keys()


def test_inference_modules_import_each_other_without_a_circle():
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert "app.inference.backbones.sface.embedder" in graph["app.inference.registry"]  # real edges
    assert _cycles(graph) == []


def test_the_registry_names_every_kind_and_loads_no_tensorflow():
    code = ("import sys; from app.inference.registry import BUILDERS; import app.inference.runtimes; "
            "print(sorted(BUILDERS), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout.split("\n")[0]
    assert out == "['dlib-keras', 'facenet-graph', 'fusion', 'sface-keras'] False False"
