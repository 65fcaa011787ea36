"""docs/objects.md names every public name of oslo.versionedobjects, and what it names exists.

The list of oslo's names is read from the installed package's source, so a
name oslo adds shows up here as a missing row.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "objects.md"
OSLO_MODULES = ("base", "fields", "fixture", "exception", "test")


def oslo_public_names() -> set[str]:
    spec = importlib.util.find_spec("oslo_versionedobjects")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent
    names = set()
    for module in OSLO_MODULES:
        for node in ast.parse((root / f"{module}.py").read_text()).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                found = [node.name]
            elif isinstance(node, ast.Assign):
                found = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found = [node.target.id]
            else:
                continue
            names.update(f"{module}.{name}" for name in found if not name.startswith("_"))
    return names


def table_rows() -> dict[str, str]:
    section = DOC.read_text().split("## oslo.versionedobjects, name by name", 1)[1]
    rows = re.findall(r"^\| `([a-z_]+\.\w+)` \| (.+) \|$", section, flags=re.MULTILINE)
    assert len(rows) == len({name for name, _ in rows}), "a name is listed twice"
    return dict(rows)


def resolve(dotted: str) -> object:
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def test_the_table_lists_every_public_oslo_name() -> None:
    rows = table_rows()
    assert len(oslo_public_names()) > 100  # the parse found the modules' names
    assert sorted(oslo_public_names() - set(rows)) == []
    assert sorted(set(rows) - oslo_public_names()) == []


def test_every_podium_name_in_the_table_exists() -> None:
    named = 0
    rows = table_rows()
    for oslo_name, cell in rows.items():
        same = re.fullmatch(r"as `([a-z_]+\.\w+)`", cell)
        if same is not None:  # the same answer as another row
            assert same.group(1) in rows, f"{oslo_name}: refers to a row that is not there"
            continue
        match = re.match(r"`(podium\.[\w.]+)`", cell)
        if match is None:
            # No counterpart: the cell says why, in words.
            assert len(cell.split()) >= 3, f"{oslo_name}: no podium name and no reason"
            continue
        resolve(match.group(1))
        named += 1
    assert named > 100
