"""The package layers, checked on the source: every import, at module level or inside a
function (lazy), is read from the AST, so an import hidden in a function body counts too.

    contracts  <-  backends  <-  runtime            (torch-free; torch only in backends/torch.py)
        ^             ^
        |-- data, metrics (torch-free)
        |-- models  <-  train                       (torch)
        |-- models, backends  <-  export            (torch)
    bench, demo, cli: may use any of them

train, export and runtime never import one another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "usfm_edge"
HEAVY = {"torch", "timm", "torchvision", "nncf", "safetensors", "tensorboardX"}
STAGES = ("train", "export", "runtime")
TORCH_BACKEND = "usfm_edge.backends.torch"

# package -> usfm_edge packages it must never import (directly or lazily)
FORBIDDEN = {
    "contracts": {"backends", "data", "metrics", "models", "train", "export", "runtime", "bench", "demo", "cli"},
    "backends": {"train", "export", "runtime", "bench", "demo", "cli", "data", "metrics"},
    "data": {"backends", "models", "train", "export", "runtime", "bench", "demo", "cli"},
    "metrics": {"backends", "models", "train", "export", "runtime", "bench", "demo", "cli"},
    "runtime": {"models", "train", "export", "bench", "demo", "cli"},
    "export": {"runtime", "train", "bench", "demo", "cli"},
    "train": {"runtime", "export", "bench", "demo", "cli", "backends"},
    "models": {"runtime", "export", "train", "bench", "demo", "cli", "backends"},
}
# packages whose own code (not only what they reach) imports no heavy library
TORCH_FREE = ("contracts", "backends", "data", "metrics", "runtime")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports anywhere (absolute names; relative ones resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # "from pkg import module"
    return found


def graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        modules[name] = imports_of(path.read_text(), name, is_package=path.name == "__init__.py")
    known = set(modules)
    # Importing a.b.c runs a/__init__ and a/b/__init__ first: parents count as imported.
    with_parents = {name: imported | {".".join(i.split(".")[:k]) for i in imported if i.startswith("usfm_edge.")
                                      for k in range(2, i.count(".") + 1)}
                    for name, imported in modules.items()}
    return {name: {i for i in imported if i in known or not i.startswith("usfm_edge")}
            for name, imported in with_parents.items()}


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    return graph()


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_checker_sees_lazy_and_relative_imports():
    code = "import numpy\ndef f():\n    import torch\n    from .sibling import x\nclass C:\n    def g(self):\n" \
           "        from usfm_edge.export import gate\n"
    found = imports_of(code, "usfm_edge.runtime.model")
    assert {"numpy", "torch", "usfm_edge.runtime.sibling", "usfm_edge.export"} <= found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_layer_it_must_not(imports, package):
    bad = sorted(f"{module} imports {target}" for module, targets in imports.items() if package_of(module) == package
                 for target in targets if target.startswith("usfm_edge.") and package_of(target) in FORBIDDEN[package])
    assert bad == []


def test_train_export_and_runtime_never_import_one_another(imports):
    crossings = sorted(f"{m} -> {t}" for m, targets in imports.items() for t in targets
                       if package_of(m) in STAGES and t.startswith("usfm_edge.")
                       and package_of(t) in STAGES and package_of(t) != package_of(m))
    assert crossings == []


@pytest.mark.parametrize("package", TORCH_FREE)
def test_torch_free_packages_import_no_heavy_library(imports, package):
    bad = sorted(f"{m} imports {t}" for m, targets in imports.items() if package_of(m) == package and m != TORCH_BACKEND
                 for t in targets if t.split(".")[0] in HEAVY)
    assert bad == []


def test_nothing_the_runtime_reaches_imports_torch_except_the_torch_backend(imports):
    """Follow every usfm_edge import (lazy ones too) from every runtime module."""
    start = [m for m in imports if package_of(m) == "runtime"] + ["usfm_edge.cli.run"]
    seen, stack, paths = set(start), list(start), {m: m for m in start}
    heavy = []
    while stack:
        module = stack.pop()
        for target in imports[module]:
            if target.split(".")[0] in HEAVY:
                heavy.append(f"{paths[module]} -> {target}")
            elif target.startswith("usfm_edge.") and target not in seen and target != TORCH_BACKEND:
                seen.add(target)
                paths[target] = f"{paths[module]} -> {target}"
                stack.append(target)
    assert heavy == []
