"""The import-linter contracts catch what they are written against, in code that does not exist yet.

Why: the "shared code names no venue" contract used to list its source modules by name and so
missed every package added after it (jobs.bots, jobs.backtest). These tests plant an import of a
venue's package in a copy of the tree, in modules no contract names, and run the real
`lint-imports` on it: the contract must break. And each venue package must be named where the
contracts cannot use a wildcard (the forbidden side and the independence contract).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("daemon", "jobs", "storage", "mcp_bridge")


def _copy_tree(dest: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _venue_free(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--contract", "venue-free", "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_venue_free_contract_is_kept_on_the_tree_as_it_is(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    run = _venue_free(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("probe", [
    "jobs/bots/venue_probe.py",  # a package added after the contract was written
    "jobs/backtest/venue_probe.py",
    "jobs/newfamily/venue_probe.py",  # a package that does not exist yet
    "jobs/venue_probe.py",  # a module straight under jobs
    "jobs/venues/venue_probe.py",  # shared venue code beside base.py
    "daemon/venue_probe.py",
    "mcp_bridge/tools/venue_probe.py",
])
def test_an_import_of_a_venue_package_anywhere_outside_the_venues_breaks_it(tmp_path: Path,
                                                                             probe: str) -> None:
    _copy_tree(tmp_path)
    module = tmp_path / probe
    module.parent.mkdir(exist_ok=True)
    (module.parent / "__init__.py").touch()
    module.write_text("from jobs.venues.paper.execution import PaperVenue\n")
    run = _venue_free(tmp_path)
    dotted = probe.removesuffix(".py").replace("/", ".")
    assert run.returncode != 0 and "BROKEN" in run.stdout, run.stdout + run.stderr
    assert f"{dotted} -> jobs.venues.paper.execution" in run.stdout, run.stdout


def test_every_venue_package_is_named_in_the_contracts() -> None:
    venues = sorted(f"jobs.venues.{p.name}" for p in (ROOT / "jobs" / "venues").iterdir()
                    if (p / "__init__.py").exists())
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    venue_free = next(c for c in contracts if c.get("id") == "venue-free")
    independent = next(c for c in contracts if c["type"] == "independence")
    assert sorted(venue_free["forbidden_modules"]) == venues
    assert sorted(independent["modules"]) == venues
