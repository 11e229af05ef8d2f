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


def test_the_litert_serve_path_runs_where_tensorflow_and_keras_cannot_be_imported(model_artifact):
    """As in the default Docker image: TensorFlow and Keras absent (imports fail, no package
    metadata), the service's modules import and the default artefact's LiteRT embedder is built
    from a cache prepared elsewhere (keyed by its manifest) and embeds a face."""
    from app.core.config import Settings
    from app.inference import litert_build

    litert_build.prepare(model_artifact, Settings().model_cache_dir, log=lambda line: None)
    code = """
import sys
for name in ("tensorflow", "keras", "tf_keras"):
    sys.modules[name] = None  # `import tensorflow` raises ImportError
from app.inference import litert
litert.converter_version = lambda: None  # as where the packages are not installed
import numpy as np
import app.main, app.startup
from app.core.config import Settings
from app.inference.artifacts import load_artifact
from app.inference.runtimes import build_for, choose_runtime
settings = Settings()
artifact = load_artifact(settings.model_dir())
choice = choose_runtime(settings, artifact)
embedder = build_for(choice, settings, artifact)
s = embedder.input_size
out = embedder.embed(np.full((1, s, s, 3), 128, np.uint8))
assert out.shape == (1, artifact.embedding_dim) and np.all(np.isfinite(out)), out
print(choice.name, type(embedder).__name__, [m for m in ("tensorflow", "keras") if sys.modules.get(m)])
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "litert FusionEmbedder []", done.stdout
