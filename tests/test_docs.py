"""The Python examples of the README and of the layer docs run as written.

(docs/objects.md and docs/db.md have tests of their own, in their layers.)

Each document's blocks run in order, in one namespace, in a child process
with warnings as errors: a document is read top to bottom, and an example may
use what an earlier one defined (and registers classes this process's other
tests do not expect).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCUMENTS = ["README.md", "docs/cloud.md", "docs/conductor.md", "docs/rpc.md"]


def python_blocks(document: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", document.read_text(), re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_examples_run(name: str, tmp_path: Path) -> None:
    blocks = python_blocks(ROOT / name)
    assert blocks, f"{name} has no python example"
    script = tmp_path / "examples.py"
    script.write_text("\n\n".join(blocks))
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    if name == "README.md":
        assert done.stdout.splitlines() == ["['id', 'name', 'size_gb']", "False", "ACTIVE"]
