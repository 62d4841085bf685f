"""Imports point down the layers; checked on the source (every import, also inside functions).

errors/schema/contract/atomic/version (and the other small leaf modules) <
metric_info/params/progress (leaves that use those) <
formats < readers and writers < store and manifest < reconstruct < policies <
replay < pipeline < report, synth, record, lab, regress, live and batch < cli and the
pytest plugin. A module may import its own layer and those below; a new
top-level module or package must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tracereplay"

LAYERS: list[set[str]] = [
    {"errors", "schema", "contract", "atomic", "version", "tracemeta", "units", "numa_tunables"},
    {"metric_info", "params", "progress"},
    {"formats"},
    {"readers", "writers"},
    {"store", "manifest"},
    {"reconstruct"},
    {"policies"},
    {"replay"},
    {"pipeline"},
    {"report", "synth", "record", "lab", "regress", "live", "batch"},
    {"cli", "__main__", "pytest_plugin"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
# the package itself (``import tracereplay``) re-exports the public API: the pipeline's layer
LAYER_OF[""] = LAYER_OF["pipeline"]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("tracereplay", *parts))] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module ``name`` refers to: itself, or (``from pkg import attr``) its package."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported tracereplay module) of every import in ``path``."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                head = f"{base}.{node.module}" if node.module else base
            else:
                head = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one
            names = [f"{head}.{a.name}" if f"{head}.{a.name}" in MODULES else head for a in node.names]
        else:
            continue
        out += [(node.lineno, _resolve(n)) for n in names if n.split(".")[0] == "tracereplay"]
    return out


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYER_OF:
        raise AssertionError(f"{module}: give tracereplay.{top} a layer in tests/test_layers.py")
    return LAYER_OF[top]


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    own = _layer(module)
    up = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for line, target in _imports(module, MODULES[module])
        if _layer(target) > own
    ]
    assert not up, "\n".join(up)


def test_no_cli_module_imports_cli_main():
    offenders = [
        f"{module} (line {line})"
        for module, path in MODULES.items()
        if module.startswith("tracereplay.cli.") and module != "tracereplay.cli.main"
        for line, target in _imports(module, path)
        if target == "tracereplay.cli.main"
    ]
    assert not offenders


def test_the_checker_sees_upward_imports(tmp_path):
    """The test itself: an upward import, a relative one and one inside a function are found."""
    src = tmp_path / "x.py"
    src.write_text(
        "from tracereplay.pipeline import analyze\n"
        "def f():\n    from ..replay import engine\n"
        "from .. import cli\n"
    )
    found = {t for _line, t in _imports("tracereplay.formats.x", src)}
    assert found == {"tracereplay.pipeline", "tracereplay.replay.engine", "tracereplay.cli"}
    assert all(_layer(t) > _layer("tracereplay.formats.x") for t in found)
