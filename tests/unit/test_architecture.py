"""Dependencies point one way: the trainer (model/) may import the service (app/), never the
reverse, and the service does not import trainer-only packages; inside app, each package imports
only the layers below its own (LAYERS). Read from the syntax tree of every module, so an import
inside a function counts as much as one at the top."""

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


# --- layers inside app: each package imports only packages below it, never one above ----------

LAYERS: tuple[tuple[str, ...], ...] = (
    ("domain",),  # pure maths and the error catalogue: numpy and the standard library only
    ("core",),  # settings, database engine, pools, rate limits, telemetry, weight-source pins
    ("vision",),  # decode, detect, align: photos to aligned faces
    ("inference",),  # embedders and the model artefact (its alignment template is vision's)
    ("storage",),  # tables, persons and their search index, API keys
    ("services",),  # the face use cases: pipeline + embedder + store + threshold policy
    ("runtime",),  # the state the request handlers share
    ("startup",),  # builds the runtime and warms the models up
    ("api",),  # HTTP: routes, dependencies, schemas, middleware, problem answers
    ("main", "cli", "__main__"),  # entry points: the app factory, the command line
)
"""Bottom to top. Why this order: `domain` is the pure core every layer may use; `core` is the
plumbing (config, database, pools) that only needs domain's errors; `vision` needs only those two;
`inference` sits above vision because the artefact carries the alignment template the embedders
were trained on (app/inference/artifacts.py reads app.vision.align); `storage` needs only domain
and core (it could sit beside vision and inference; one line keeps one rule); `services` join
pipeline, embedder, store and threshold (services/threshold.py reads the artefact); `runtime` holds
what `startup` builds, so runtime sits below startup; `api` reads the runtime; the entry points
(`main` builds the app from api and startup, `cli` and `__main__` drive everything) are on top."""

LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def _layer_name(module: str) -> str | None:
    """The app layer `module` (dotted, `app.x.y`) belongs to; None for the bare `app` package
    (its __init__ is empty: `import app` reads only its location) and for non-app modules."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2 or parts[1] == "__init__":
        return None
    return parts[1]


def imported_app_modules(source: str, module: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, dotted name) of every app module `source` imports, wherever the import sits (top
    level or inside a function), `from app import x` read as app.x, relative imports resolved
    against `module` (the importing module's dotted name), import_module('app.x') included."""
    found = []
    package = module.split(".")[:-1]  # app.x for app.x.y and for app.x.__init__
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base == "app":
                found += [(node.lineno, f"app.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name.split(".")[0] == "app"]


def upward_imports(source: str, module: str, filename: str = "<string>") -> list[str]:
    """Each import in `source` (module `module`, e.g. app.domain.verification) of an app
    package in a layer above the module's own, as a line saying which and where."""
    own = _layer_name(module)
    if own is None:
        return []
    if own not in LAYER_OF:
        return [f"{filename}: package app.{own} is in no layer (add it to LAYERS)"]
    bad = []
    for line, name in imported_app_modules(source, module, filename):
        target = _layer_name(name)
        if target is None or target == own:
            continue
        if target not in LAYER_OF:
            bad.append(f"{filename}:{line}: imports {name}, a package in no layer (add it to LAYERS)")
        elif LAYER_OF[target] > LAYER_OF[own]:
            bad.append(f"{filename}:{line}: imports {name} (layer {LAYER_OF[target]} {target}) from "
                       f"layer {LAYER_OF[own]} {own}: layers import downward only")
    return sorted(bad, key=lambda b: int(b.split(":")[1]))


def app_modules() -> list[Path]:
    return sorted((REPO_ROOT / "app").rglob("*.py"))


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)


def test_every_app_package_has_a_layer():
    packages = {_layer_name(_dotted(p)) for p in app_modules()} - {None}
    assert packages <= set(LAYER_OF), f"packages in no layer: {sorted(packages - set(LAYER_OF))}"


@pytest.mark.parametrize("path", app_modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_app_module_imports_only_layers_below_its_own(path: Path):
    bad = upward_imports(path.read_text(), _dotted(path), str(path.relative_to(REPO_ROOT)))
    assert not bad, "\n".join(bad)


def test_the_layer_check_catches_an_upward_import():
    """Planted upward imports, in each form the scan reads, are all reported; downward and
    same-layer imports are not."""
    planted = ("from app.domain import errors\nimport numpy as np\n"  # fine: own layer, not app
               "import app.api.deps\n"  # upward, top level
               "def f():\n    from app.storage.persons import PersonStore\n"  # upward, in a function
               "    from app import runtime\n"  # upward, `from app import x`
               "    importlib.import_module('app.services.faces')\n"  # upward, by name
               "from ..core import config\n")  # upward, relative
    bad = upward_imports(planted, "app.domain.verification")
    assert [b.split(":")[1] for b in bad] == ["3", "5", "6", "7", "8"], bad
    assert "app.api.deps (layer" in bad[0] and "from layer 0 domain" in bad[0]
    assert not upward_imports("import app.domain.errors\nfrom app.core.db import call\n", "app.api.deps")
    assert upward_imports("import app\nimport app.domain\n", "app.core.migrate") == []


def test_domain_is_pure():
    """app.domain imports nothing but numpy, the standard library and itself."""
    import sys

    allowed = set(sys.stdlib_module_names) | {"numpy", "app", "__future__"}
    for path in (REPO_ROOT / "app" / "domain").rglob("*.py"):
        roots = imported_roots(path.read_text(), str(path))
        assert roots <= allowed, f"{path.relative_to(REPO_ROOT)} imports {sorted(roots - allowed)}"
        others = {n for _, n in imported_app_modules(path.read_text(), _dotted(path))
                  if _layer_name(n) != "domain"}
        assert not others, f"{path.relative_to(REPO_ROOT)} imports {sorted(others)}"
