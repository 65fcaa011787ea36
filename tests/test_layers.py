"""Each layer imports only the layers below it; the commands sit on top of them all.

Bottom up: the shared basics (exceptions, context, configuration files, apps,
URL and version parsing), ``podium.objects``, ``podium.rpc``, ``podium.db``,
``podium.service`` (the process runtime: settings, logging, signals, periodic
tasks), ``podium.conductor``, ``podium.testing``, ``podium.cloud``. Command
modules (``cli.py``, ``podium.cloud.client``, ``podium.config_cli`` ...) are
entry points and may use any layer. Type-only imports count too: a lower layer
does not even name a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import podium

SRC = Path(podium.__file__).resolve().parent.parent
LAYERS = [
    "base",
    "objects",
    "rpc",
    "db",
    "service",
    "conductor",
    "testing",
    "cloud",
    "commands",
]
BASE = {
    "podium",
    "podium._urls",
    "podium._versions",
    "podium._lazy",
    "podium._text",
    "podium.exceptions",
    "podium.context",
    "podium.config",
    "podium.apps",
}
COMMANDS = {
    "podium.__main__",
    "podium.cli",
    "podium.config_cli",
    "podium.keys_cli",
    "podium.broker_cli",
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in BASE:
        return "base"
    if module in COMMANDS or parts[-1] == "cli" or module.startswith("podium.cloud.client"):
        return "commands"
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def podium_imports(path: Path, module: str) -> list[tuple[str, int]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(
                    (".".join([*base, *([node.module] if node.module else [])]), node.lineno)
                )
            elif node.module:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "podium"]


def test_every_layer_imports_only_the_layers_below_it() -> None:
    upward = []
    for path in sorted((SRC / "podium").rglob("*.py")):
        module = module_name(path)
        mine = LAYERS.index(layer_of(module))
        for imported, line in podium_imports(path, module):
            theirs = layer_of(imported)
            if LAYERS.index(theirs) > mine:
                upward.append(f"{path.relative_to(SRC)}:{line} ({layer_of(module)}) -> {imported}")
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    sample = tmp_path / "podium" / "objects" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("from podium.conductor import ConductorAPI\nfrom . import base\n")
    imports = podium_imports(sample, "podium.objects.sample")
    assert imports == [("podium.conductor", 1), ("podium.objects", 2)]
    assert LAYERS.index(layer_of("podium.conductor")) > LAYERS.index(layer_of("podium.objects"))


def test_the_cloud_objects_are_imported_from_the_package_only() -> None:
    # The upgrade tests put the previous release's single objects module in
    # place of the package: a submodule imported directly would escape that.
    package = SRC / "podium" / "cloud" / "objects"
    tests = Path(__file__).resolve().parent
    offenders = [
        f"{path}:{line}"
        for path in [*(SRC / "podium").rglob("*.py"), *tests.rglob("*.py")]
        if package not in path.parents
        for imported, line in podium_imports(path, module_name(path) if SRC in path.parents else "")
        if imported.startswith("podium.cloud.objects.")
    ]
    assert not offenders, offenders
