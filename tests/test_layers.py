"""The package's architecture: the import contracts of ``[tool.importlinter]`` in
pyproject.toml (checked by import-linter) and a size limit on modules."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "webrun_async"
MAX_MODULE_LINES = 500

_CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS: list[dict[str, object]] = _CONFIG["tool"]["importlinter"]["contracts"]

# import-linter's own command, run by this interpreter, so from this environment.
_LINT_IMPORTS = (
    "import sys\n"
    "from importlinter.cli import lint_imports_command\n"
    "sys.exit(lint_imports_command())\n"
)


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda contract: str(contract["id"]))
def test_import_contract_is_kept(contract: dict[str, object]) -> None:
    pytest.importorskip("importlinter", reason="needs import-linter: pip install -e '.[dev]'")
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _LINT_IMPORTS,
            "--no-cache",
            "--no-logo",
            "--contract",
            str(contract["id"]),
            str(ROOT / "pyproject.toml"),
        ],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        report = completed.stdout + completed.stderr
        pytest.fail(f"import contract {contract['name']!r} is broken:\n{report}", pytrace=False)
    assert "1 kept, 0 broken" in completed.stdout  # the contract really was checked


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    "module", _modules(), ids=lambda module: module.relative_to(ROOT).as_posix()
)
def test_module_is_at_most_500_lines(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, (
        f"{module.relative_to(ROOT)} has {lines} lines (at most {MAX_MODULE_LINES}): split it"
    )
