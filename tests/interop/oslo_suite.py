"""Run oslo.versionedobjects' own unit tests against podium, imports renamed.

This is how a porter meets podium: the suite shipped inside the installed
oslo.versionedobjects is copied to a throwaway directory, its imports of oslo's
``base``, ``fields``, ``fixture`` and ``exception`` are pointed at podium's, and
it runs with the standard unittest runner. Nothing else in the tests changes.

What stays oslo's: the suite's own scaffolding (``test.py``, its
``obj_fixtures`` and the private ``_utils.isotime`` helper), which holds
nothing about objects; and oslo's mypy-plugin tests are left out (podium needs
no plugin: fields declared as class attributes are typed).

With ``--oslo-namespace`` the copy also calls
``podium.objects.set_wire_namespace("versioned_object", "versionedobjects")``
once, as a service that still talks to oslo peers does at start-up.

The suite needs ``testtools`` and ``jsonschema``, which podium itself does
not need (its ``test`` extra installs them). Usage::

    python tests/interop/oslo_suite.py [--oslo-namespace]
        [--json results.json] [--classify tests/interop/oslo_suite_differences.json]

``oslo_suite_differences.json`` maps each oslo test that fails because of a
deliberate difference (docs/objects.md) to that difference; the summary gives
the pass rate with and without them, and lists every other failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

PACKAGE = "ported_ovo_tests"
SUITES = ("test_exception", "test_fields", "test_fixture", "test_objects")
SCAFFOLDING = {"test.py": "test.py", "tests/obj_fixtures.py": "obj_fixtures.py"}

# (pattern, replacement): the import renames, and the dotted names the tests
# give mock.patch, which are imports too.
RENAMES: tuple[tuple[str, str], ...] = (
    (
        r"^from oslo_versionedobjects import (base|fields|fixture)\b",
        r"from podium.objects import \1",
    ),
    (
        r"^from oslo_versionedobjects import exception\b",
        "from podium import exceptions as exception",
    ),
    (r"^from oslo_versionedobjects import (test|_utils)\b", rf"from {PACKAGE} import \1"),
    (
        r"^from oslo_versionedobjects\.tests import obj_fixtures\b",
        f"from {PACKAGE} import obj_fixtures",
    ),
    (r"'oslo_versionedobjects\.(base|fields|fixture)\.", r"'podium.objects.\1."),
    (r"'oslo_versionedobjects\.tests'", f"'{PACKAGE}'"),
)


def oslo_package_dir() -> Path:
    spec = importlib.util.find_spec("oslo_versionedobjects")
    if spec is None or spec.origin is None:
        raise SystemExit("oslo.versionedobjects is not installed")
    return Path(spec.origin).parent


def rename_imports(text: str) -> str:
    for pattern, replacement in RENAMES:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def build_copy(dest: Path, oslo_namespace: bool) -> Path:
    source = oslo_package_dir()
    package = dest / PACKAGE
    package.mkdir(parents=True)
    init = ""
    if oslo_namespace:
        init = (
            "from podium.objects import set_wire_namespace\n\n"
            'set_wire_namespace("versioned_object", "versionedobjects")\n'
        )
    (package / "__init__.py").write_text(init)
    for relative, name in SCAFFOLDING.items():
        (package / name).write_text(rename_imports((source / relative).read_text()))
    shutil.copy(source / "_utils.py", package / "_utils.py")
    for suite in SUITES:
        text = (source / "tests" / f"{suite}.py").read_text()
        (package / f"{suite}.py").write_text(rename_imports(text))
    return package


class _Outcomes(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, dict[str, str]] = {}

    def _record(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        self.outcomes[test.id().removeprefix(f"{PACKAGE}.")] = {
            "outcome": outcome,
            "detail": detail,
        }

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "pass")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._record(test, "fail", _last_line(self._exc_info_to_string(err, test)))

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        self._record(test, "error", _last_line(self._exc_info_to_string(err, test)))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._record(test, "skip", reason)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run(dest: Path) -> dict[str, dict[str, str]]:
    sys.path.insert(0, str(dest))
    result = _Outcomes()
    loader = unittest.TestLoader()
    for suite in SUITES:
        try:
            tests = loader.loadTestsFromName(f"{PACKAGE}.{suite}")
        except Exception as exc:  # an import failure fails the whole module
            result.outcomes[f"{suite} (import)"] = {
                "outcome": "error",
                "detail": f"{type(exc).__name__}: {exc}"[:300],
            }
            continue
        tests.run(result)
    return result.outcomes


def summarise(outcomes: dict[str, dict[str, str]], differences: dict[str, str]) -> dict[str, Any]:
    ran = {k: v for k, v in outcomes.items() if v["outcome"] != "skip"}
    passed = [k for k, v in ran.items() if v["outcome"] == "pass"]
    failed = sorted(k for k in ran if k not in passed)
    explained = [k for k in failed if k in differences]
    applicable = len(ran) - len(explained)
    return {
        "ran": len(ran),
        "passed": len(passed),
        "failed": len(failed),
        "failed_by_documented_difference": len(explained),
        "pass_rate": round(len(passed) / len(ran), 4) if ran else 0.0,
        "pass_rate_without_differences": round(len(passed) / applicable, 4) if applicable else 0.0,
        "unexplained_failures": [k for k in failed if k not in differences],
        "passing_but_listed": sorted(k for k in passed if k in differences),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oslo-namespace", action="store_true")
    parser.add_argument("--json", type=Path, help="write every test's outcome here")
    parser.add_argument(
        "--classify", type=Path, help="JSON: test id -> the documented difference it depends on"
    )
    parser.add_argument("--keep", type=Path, help="build the copy here and keep it")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a failure is not classified, or a classified test passes",
    )
    args = parser.parse_args(argv)
    differences: dict[str, str] = {}
    if args.classify:
        differences = json.loads(args.classify.read_text())
    with tempfile.TemporaryDirectory(prefix="ovo-port-") as tmp:
        dest = args.keep or Path(tmp)
        if (dest / PACKAGE).exists():
            shutil.rmtree(dest / PACKAGE)
        build_copy(dest, args.oslo_namespace)
        outcomes = run(dest)
    if args.json:
        args.json.write_text(json.dumps(outcomes, indent=1, sort_keys=True))
    summary = summarise(outcomes, differences)
    unexplained = summary.pop("unexplained_failures")
    listed = summary.pop("passing_but_listed")
    print(json.dumps(summary, indent=1))
    for name in unexplained:
        print(f"UNEXPLAINED {name}: {outcomes[name]['detail']}")
    for name in listed:
        print(f"PASSES BUT LISTED AS A DIFFERENCE {name}")
    return 1 if args.strict and (unexplained or listed) else 0


if __name__ == "__main__":
    sys.exit(main())
