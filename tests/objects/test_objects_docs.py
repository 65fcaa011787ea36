"""The examples of docs/objects.md run, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "objects.md"


def test_doc_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "docs_objects"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name}, python block {number}", "exec"), namespace)
