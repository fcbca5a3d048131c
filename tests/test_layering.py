"""The package's layering, read from the source with ``ast`` (nothing is imported): the store knows bytes only, and
no module takes another module's private names. ``import ssl_zoo`` / ``ssl-zoo list`` staying torch-free and fast
is checked by running them (``test_cli.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ssl_zoo"
FRAMEWORKS = ("torch", "torchvision", "timm", "safetensors", "segmentation_models_pytorch", "monai", "tensorflow",
              "jax", "numpy")
# What each low layer may import from ssl_zoo: itself and what lies below it.
ALLOWED_BELOW = {
    "ssl_zoo.errors": ("ssl_zoo.errors",),
    "ssl_zoo.registry": ("ssl_zoo", "ssl_zoo.errors", "ssl_zoo.registry"),
    "ssl_zoo.store": ("ssl_zoo", "ssl_zoo.errors", "ssl_zoo.progress", "ssl_zoo.registry", "ssl_zoo.store"),
    "ssl_zoo.progress": ("ssl_zoo.store.cache",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """Every import of the file, at any depth: (absolute module, names taken from it)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found.append((target, tuple(alias.name for alias in node.names)))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def layer_of(name: str) -> str | None:
    return next((layer for layer in ALLOWED_BELOW if name == layer or name.startswith(layer + ".")), None)


def within(target: str, allowed: tuple[str, ...]) -> bool:
    return any(target == a or (a != "ssl_zoo" and target.startswith(a + ".")) for a in allowed)


@pytest.mark.parametrize("path", [p for p in SOURCES if layer_of(module_name(p))], ids=lambda p: module_name(p))
def test_low_layers_import_nothing_above_them_and_no_framework(path: Path) -> None:
    allowed = ALLOWED_BELOW[layer_of(module_name(path))]
    for target, _ in imports(path):
        assert target.split(".")[0] not in FRAMEWORKS, f"{module_name(path)} imports {target}"
        if target.split(".")[0] == "ssl_zoo":
            assert within(target, allowed), f"{module_name(path)} imports {target}, above its layer"


def test_no_module_imports_another_modules_private_names() -> None:
    offences = []
    for path in SOURCES:
        for target, names in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if target.startswith("ssl_zoo") and private and target != module_name(path):
                offences.append(f"{module_name(path)} takes {private} from {target}")
    assert not offences, "\n".join(offences)


def test_every_exception_type_lives_in_errors() -> None:
    outside = []
    for path in SOURCES:
        if module_name(path) == "ssl_zoo.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            bases = [ast.unparse(b) for b in getattr(node, "bases", [])]
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                    b.endswith(("Error", "Exception", "Warning")) for b in bases):
                outside.append(f"{module_name(path)}.{node.name}")
    assert not outside, outside


MAX_LINES = 300  # "modules under ~300 lines" (ARCHITECTURE.md); the store, split by job, holds to it


@pytest.mark.parametrize("path", sorted((PACKAGE / "store").glob("*.py")), ids=lambda p: p.name)
def test_store_modules_stay_under_the_size_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines < MAX_LINES, f"{module_name(path)} has {lines} lines: split it by job"


def test_the_checker_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    found = dict(imports(PACKAGE / "store" / "sources.py"))
    assert "ssl_zoo.store.download" in found  # a function-level relative import
    assert found["ssl_zoo.errors"] and "ssl_zoo.registry" in found
