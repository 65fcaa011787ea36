"""The application example of docs/db.md runs, in a child process.

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


def test_the_application_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"<!-- doc-test -->\n```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1
    script = tmp_path / "shop_example.py"
    script.write_text(blocks[0])
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
