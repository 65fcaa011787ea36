"""The examples of docs/db.md marked ``<!-- doc-test NAME -->`` run, each in a child process.

A child, because the example declares a table of its own in the shared
``Base.metadata``: in this process it would be a table the other tests' schema
comparisons do not expect.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "db.md"


def run_marked_example(marker: str, tmp_path: Path) -> None:
    """The one python block of docs/db.md after ``<!-- marker -->`` runs without an error."""
    pattern = rf"<!-- {re.escape(marker)} -->\n```python\n(.*?)```"
    blocks = re.findall(pattern, DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


def test_the_application_example_runs(tmp_path: Path) -> None:
    run_marked_example("doc-test", tmp_path)


def test_the_tls_example_runs(tmp_path: Path) -> None:
    run_marked_example("doc-test tls", tmp_path)
