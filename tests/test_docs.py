"""The docs cannot rot: every ```python block, every example and every doctest runs here."""

from __future__ import annotations

import doctest
import re
import runpy
from pathlib import Path

import pytest

import memkit
import memkit._layout_core
import memkit._layout_soa
import memkit.buffers
import memkit.layout

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.skipif(not (ROOT / "docs").is_dir(), reason="not a source checkout")


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_markdown_python_blocks_run(path: Path) -> None:
    blocks = BLOCK.findall(path.read_text())
    for i, code in enumerate(blocks):
        namespace: dict[str, object] = {"__name__": f"{path.stem}_block_{i}"}
        exec(compile(code, f"{path.name}[python block {i}]", "exec"), namespace)


def test_docs_have_python_blocks() -> None:
    assert BLOCK.findall((ROOT / "docs" / "buffers.md").read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out


@pytest.mark.parametrize(
    "module",
    [memkit, memkit.buffers, memkit.layout, memkit._layout_core, memkit._layout_soa],
    ids=lambda m: m.__name__,
)
def test_module_doctests(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0


def test_compiled_class_doctests() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(memkit.AlignedBuffer, "AlignedBuffer", globs={})
    assert sum(len(t.examples) for t in tests) > 0
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
