"""Imports point down the data flow: catalog < probing < outages < serving < daemon < demo < cli.

The simulated internet (monitor.lab) is for the tests, the benchmarks and the demo only, and
depends on nothing else of the monitor. Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "monitor"

LAYERS = {
    "catalog": 0,
    "probing": 1,
    "outages": 2,
    "serving": 3,
    "daemon": 4,
    "demo": 5,
    "cli": 6,
    "__main__": 7,
}


def _layer(module: str) -> str:
    """`monitor.probing.dns` -> `probing`; `monitor.daemon` -> `daemon`; `monitor` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "monitor" or name.startswith("monitor.")]


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    layers = {_layer(_module_name(path)) for path in MODULES} - {""}
    assert layers <= {*LAYERS, "lab"}, layers - {*LAYERS, "lab"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = _layer(_module_name(path))
    wrong = []
    for line, imported in _imports(path):
        target = _layer(imported)
        if target == "" or target == own:
            continue  # the package root (__version__) or a sibling
        if own == "lab":
            wrong.append(f"{path.name}:{line}: the lab imports {imported}")
        elif target == "lab":
            if own != "demo":
                wrong.append(f"{path.name}:{line}: only the demo may import the lab ({imported})")
        elif own == "" or LAYERS[target] >= LAYERS[own]:
            wrong.append(f"{path.name}:{line}: {own or 'monitor'} imports {imported} from above or beside it")
    assert wrong == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from monitor.serving.web import build_app\n")
    assert _imports(module) == [(2, "monitor.serving.web")]
    assert LAYERS[_layer("monitor.serving.web")] > LAYERS["probing"]


def test_the_readme_tree_names_every_module() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    tree = readme[readme.index("monitor/   cli.py") :]
    tree = tree[: tree.index("```")]
    folders = {path.parent.name for path in MODULES if path.parent != PACKAGE}
    for folder in folders - {"lab"}:
        lines = tree.splitlines()
        start = next(index for index, line in enumerate(lines) if line.strip().startswith(f"{folder}/"))
        block = [lines[start]]
        for line in lines[start + 1 :]:
            if not line.startswith(" " * 6):  # the next folder, not a continuation line
                break
            block.append(line)
        named = " ".join(block)
        for path in (PACKAGE / folder).glob("*.py"):
            if path.stem != "__init__":
                assert path.stem in named, f"README's tree does not name {folder}/{path.name}"
    for path in PACKAGE.glob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            assert f"{path.name}" in tree, f"README's tree does not name {path.name}"
