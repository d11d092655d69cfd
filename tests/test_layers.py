"""The layers import only downwards (docs/architecture.md, "Layers"): a test walks every import with `ast`.

    renderers <- envs <- datagen -> store <- worldsim.model <- worldsim.train / .dream <- worldsim.eval
    worldsim.cli and worldsim.web, the edges, may import all of them; the table is in docs/architecture.md section 2.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = {"worldsim", "worldsim.runtime", "worldsim.errors"}  # the package facade and shared helpers
# first-party packages each layer may import (the layer itself is always allowed)
ALLOWED: dict[str, set[str]] = {
    "renderers": set(),
    "envs": {"renderers"},
    "store": set(),
    "datagen": {"store", "envs", "renderers"},
    "worldsim.base": {"store"},
    "worldsim.model": {"store", "worldsim.base"},
    "worldsim.train": {"store", "worldsim.base", "worldsim.model"},
    "worldsim.dream": {"store", "worldsim.base", "worldsim.model"},
    "worldsim.eval": {"store", "worldsim.base", "worldsim.model", "worldsim.train", "worldsim.dream"},
    "worldsim.cli": {"store", "datagen", "envs", "renderers", "configs", "worldsim.base", "worldsim.model",
                     "worldsim.train", "worldsim.dream", "worldsim.eval", "worldsim.web"},
    # the web app is an edge too (play needs an engine and a model at once); it never imports the CLI
    "worldsim.web": {"store", "datagen", "envs", "renderers", "worldsim.base", "worldsim.model", "worldsim.train",
                     "worldsim.dream", "worldsim.eval"},
    "configs": set(),
}
# the store is the contract between data and model: it needs nothing heavier than these
STORE_THIRD_PARTY = {"numpy", "zarr", "gymnasium"}
FIRST_PARTY = {"renderers", "envs", "store", "datagen", "worldsim", "configs"}


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None for third-party and standard-library modules."""
    top = module.split(".")[0]
    if top not in FIRST_PARTY:
        return None
    if top != "worldsim":
        return top
    parts = module.split(".")
    if module in BASE or len(parts) < 2 or parts[1] not in ("model", "train", "dream", "eval", "cli", "web"):
        return "worldsim.base"
    return f"worldsim.{parts[1]}"


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, including those inside functions."""
    found = []
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            if mod in FIRST_PARTY | BASE:  # `from worldsim import checkpoint`: the names may be submodules
                found += [(node.lineno, f"{mod}.{alias.name}") for alias in node.names]
    return found


def violations(root: Path = ROOT) -> list[str]:
    bad = []
    for top in sorted(FIRST_PARTY):
        for path in sorted((root / top).rglob("*.py")):
            here = layer_of(module_name(path, root))
            for line, mod in imports(path, root):
                there = layer_of(mod)
                where = f"{path.relative_to(root)}:{line}"
                if there is None:
                    third = mod.split(".")[0]
                    if here == "store" and third and third not in sys.stdlib_module_names and third not in \
                            STORE_THIRD_PARTY:
                        bad.append(f"{where}: the store imports {mod!r} (it may need only numpy, zarr, gymnasium)")
                    continue
                if there != here and there not in ALLOWED[here]:
                    if module_name(path, root) == "worldsim" and there in ("worldsim.dream",):
                        continue  # the package facade hands out worldsim.DreamEnv lazily
                    bad.append(f"{where}: layer {here} imports {mod!r} from layer {there}")
    return bad


def test_no_layer_imports_one_above_it():
    bad = violations()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_a_planted_upward_import_is_named(tmp_path):
    for top in FIRST_PARTY:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "store" / "leak.py").write_text("import torch\n\n\ndef f():\n    from worldsim.model import dit\n")
    bad = violations(tmp_path)
    assert any("store/leak.py:5" in b and "worldsim.model" in b for b in bad), bad
    assert any("store/leak.py:1" in b and "'torch'" in b for b in bad), bad


@pytest.mark.parametrize(("module", "layer"), [("store.windows", "store"), ("worldsim.model.dit", "worldsim.model"),
                                               ("worldsim.runtime", "worldsim.base"), ("numpy", None),
                                               ("worldsim.cli.demo", "worldsim.cli")])
def test_layer_of(module, layer):
    assert layer_of(module) == layer
