"""`python -m memkit info` and the command line around it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import memkit
from memkit import _info
from memkit.__main__ import main

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m memkit ...`` outside the source tree (conftest.py makes it import the memkit under test)."""
    return subprocess.run(
        [sys.executable, "-m", "memkit", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd or Path(memkit.__file__).resolve().parent.parent.parent,
    )


def test_info_prints_the_table() -> None:
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in (
        "memkit",
        "compiler",
        "build flags",
        "python build",
        "cache line size",
        "CACHE_PAD",
        "page size",
        "transparent huge pages",
    ):
        assert row in out
    assert memkit.__version__ in out
    assert "-O2" in out


def test_child_processes_import_the_memkit_under_test(tmp_path: Path) -> None:
    import memkit._core

    code = "import memkit, memkit._core; print(memkit.__file__); print(memkit._core.__file__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    package, core = result.stdout.splitlines()
    assert Path(package).resolve() == Path(memkit.__file__).resolve()
    assert Path(core).resolve() == Path(memkit._core.__file__).resolve()
    facts = json.loads(run_cli("info", "--json", cwd=tmp_path).stdout)
    assert Path(facts["extension"]).resolve() == Path(memkit._core.__file__).resolve()


def test_info_works_from_a_source_checkout() -> None:
    # README command (a) runs `python -m memkit info` in the project root, where the source
    # package (without the compiled core) comes first on sys.path.
    if not (PROJECT_ROOT / "memkit" / "_native.py").exists():
        pytest.skip("tests are not running from a source checkout")
    result = run_cli("info", cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert "page size" in result.stdout


def test_find_installed_core_skips_the_directory_itself(tmp_path: Path) -> None:
    from memkit._native import core, find_installed_core

    here = Path(core.__file__).resolve().parent  # wherever the compiled core really is
    assert find_installed_core(str(here), [str(here.parent)]) is None
    assert find_installed_core(str(tmp_path / "memkit"), [str(tmp_path), str(here.parent)]) == str(here)


def test_info_json_is_one_object_with_the_same_facts() -> None:
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["memkit"] == memkit.__version__
    assert facts["CACHE_PAD"] in (64, 128, 256)
    page = facts["page size"]
    assert page >= 4096 and page & (page - 1) == 0
    assert facts["python build"].startswith(("GIL", "free-threaded"))
    assert facts["allocator hook"] == "not installed"  # a fresh process: nothing installed it


def test_info_reports_the_hook_state() -> None:
    from memkit import alloc

    alloc.install()
    try:
        assert _info.collect()["allocator hook"] == "installed"
    finally:
        alloc.uninstall()
    assert _info.collect()["allocator hook"] == "not installed"


def test_help_and_missing_command() -> None:
    assert "info" in run_cli("--help").stdout
    assert run_cli("info", "--help").returncode == 0
    result = run_cli()
    assert result.returncode == 2
    assert "command" in result.stderr


def test_main_returns_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    assert "page size" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "mode"),
    [("always [madvise] never\n", "madvise"), ("[always] madvise never", "always"), ("garbled", "unavailable")],
)
def test_transparent_huge_page_mode_parsing(tmp_path: Path, text: str, mode: str) -> None:
    path = tmp_path / "enabled"
    path.write_text(text)
    assert _info.transparent_huge_pages(path) == mode
    assert _info.transparent_huge_pages(tmp_path / "missing") == "unavailable"


def test_cache_line_and_pad_are_sane() -> None:
    from memkit._core import info

    line = info.cache_line_size()
    assert line == 0 or line & (line - 1) == 0
    assert info.CACHE_PAD >= 64
