"""The docs cannot rot: every Python block, every example and every doctest runs here.

Markdown pages (README.md and every ``*.md`` under docs/, examples/ and benchmarks/,
subfolders included) are read fence by fence: ```python blocks are executed, ```pycon
blocks run as doctests, and any other fence must name a language that is not Python, so a
block cannot be skipped by a typo in its marker. Docstring examples run for every module
of the package and of the compiled core.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pkgutil
import re
import runpy
import textwrap
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import memkit
import memkit._core
import memkit.alloc

ROOT = Path(__file__).resolve().parent.parent
DOC_DIRS = ("docs", "examples", "benchmarks")
MARKDOWN = [
    ROOT / "README.md",
    *sorted(path for folder in DOC_DIRS if (ROOT / folder).is_dir() for path in (ROOT / folder).rglob("*.md")),
]
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))

EXECUTED = {"python", "py", "python3"}
DOCTESTED = {"pycon", "doctest"}
# Fences that hold no Python to run: program output, shell sessions, other languages.
NOT_PYTHON = {"", "text", "console", "bash", "sh", "shell", "cpp", "c", "rust", "ini", "toml", "json", "diff"}

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)

pytestmark = pytest.mark.skipif(not (ROOT / "docs").is_dir(), reason="not a source checkout")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # the line of the first code line in its file (1-based)


def fenced_blocks(text: str) -> Iterator[Block]:
    """Every fenced code block of a Markdown text, dedented, with its language in lower case."""
    for match in FENCE.finditer(text):
        language = match["info"].split()[0].lower() if match["info"].strip() else ""
        line = text.count("\n", 0, match.start("body")) + 1
        yield Block(language, textwrap.dedent(match["body"]), line)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_markdown_python_blocks_run(path: Path) -> None:
    for i, block in enumerate(b for b in fenced_blocks(path.read_text()) if b.language in EXECUTED):
        namespace: dict[str, object] = {"__name__": f"{path.stem}_block_{i}"}
        # Padding with newlines makes tracebacks point at the Markdown file's own lines.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, _rel(path), "exec"), namespace)


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_markdown_pycon_blocks_pass(path: Path) -> None:
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, block in enumerate(b for b in fenced_blocks(path.read_text()) if b.language in DOCTESTED):
        test = parser.get_doctest(block.code, {}, f"{_rel(path)}[pycon block {i}]", _rel(path), block.line - 1)
        assert test.examples, f"{test.name} holds no >>> example"
        runner.run(test)
    assert runner.failures == 0


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_every_fence_is_run_or_not_python(path: Path) -> None:
    for block in fenced_blocks(path.read_text()):
        where = f"{_rel(path)}:{block.line - 1}"
        known = EXECUTED | DOCTESTED | NOT_PYTHON
        assert block.language in known, f"{where}: fence language {block.language!r} is neither run nor known"
        if block.language in NOT_PYTHON:
            assert not re.search(r"^>>> ", block.code, re.MULTILINE), f"{where}: a doctest session; mark it pycon"


def test_the_collector_finds_every_kind_of_block() -> None:
    text = textwrap.dedent(
        """\
        ```python
        x = 1
        ```
        - a list item with an indented block:

          ~~~Python
          y = 2
          ~~~

        ````pycon
        >>> 1 + 1
        2
        ````
        ```text
        output
        ```
        """
    )
    blocks = list(fenced_blocks(text))
    assert [(b.language, b.code, b.line) for b in blocks] == [
        ("python", "x = 1\n", 2),
        ("python", "y = 2\n", 7),
        ("pycon", ">>> 1 + 1\n2\n", 11),
        ("text", "output\n", 15),
    ]


def test_docs_have_python_blocks() -> None:
    blocks = [b for path in MARKDOWN for b in fenced_blocks(path.read_text()) if b.language in EXECUTED]
    assert len(blocks) > 40


# ---- links ---------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown page (code blocks skipped)."""
    text = FENCE.sub("", path.read_text())
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", text, re.MULTILINE):
        kept = (ch for ch in heading.lower() if ch in " -_" or unicodedata.category(ch)[0] in "LN")
        slug = "".join(kept).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def _local_links(path: Path) -> Iterator[tuple[Path, str]]:
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        yield (path.parent / file).resolve() if file else path, anchor


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_local_links_resolve(path: Path) -> None:
    for target, anchor in _local_links(path):
        assert target.exists(), f"{_rel(path)} links to {target}, which does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{_rel(path)} links to #{anchor} of {_rel(target)}: no such heading"


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached or page.suffix != ".md" or not page.is_file():
            continue
        reached.add(page)
        todo.extend(target for target, _ in _local_links(page))
    orphans = [_rel(p) for p in sorted((ROOT / "docs").rglob("*.md")) if p.resolve() not in reached]
    assert not orphans, f"docs pages no link leads to from README.md: {orphans}"


# ---- examples ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=_rel)
def test_examples_run(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out


@pytest.mark.parametrize("path", EXAMPLES, ids=_rel)
def test_examples_say_what_they_show_and_how_to_run(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{_rel(path)} has no module docstring"
    assert f"python {_rel(path)}" in docstring, f"{_rel(path)}'s docstring does not say how to run it"


# ---- docstrings ----------------------------------------------------------------------------------


def _modules() -> list[ModuleType]:
    """Every module of the package, and every submodule of the compiled core."""
    modules = [memkit]
    modules += [importlib.import_module(info.name) for info in pkgutil.walk_packages(memkit.__path__, "memkit.")]
    modules += [m for _, m in inspect.getmembers(memkit._core, inspect.ismodule) if m.__name__.startswith("memkit.")]
    return modules


def _docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    return [test for module in _modules() for test in finder.find(module) if test.examples]


@pytest.fixture
def alloc_state_restored() -> Iterator[None]:
    # The memkit.alloc examples install the allocator hook; leave the process as it was.
    was_installed = memkit.alloc.installed()
    yield
    if not was_installed:
        memkit.alloc.uninstall()


@pytest.mark.usefixtures("alloc_state_restored")
@pytest.mark.parametrize("test", _docstring_tests(), ids=lambda t: t.name)
def test_docstring_examples(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0


def test_every_public_docstring_example_is_collected() -> None:
    collected = {test.docstring for test in _docstring_tests()}
    missed = []
    for name in memkit.__all__:
        obj = getattr(memkit, name)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        members = [obj]
        if inspect.isclass(obj):  # and the methods memkit defines (not those of int, object...)
            own = [klass for klass in obj.__mro__ if klass.__module__.startswith("memkit")]
            members += [m for klass in own for m in vars(klass).values() if inspect.isroutine(m)]
        for member in members:
            doc = getattr(member, "__doc__", None)
            if isinstance(doc, str) and ">>>" in doc and doc not in collected:
                missed.append(f"{name}.{getattr(member, '__name__', '?')}")
    assert not missed, f"docstring examples no test runs: {missed}"
