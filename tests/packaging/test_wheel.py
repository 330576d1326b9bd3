"""The wheel holds one import name, `leadradar`, with every module of the card's folders under it.

Installing its dependencies into a fresh venv takes about two minutes here (127 s from the local cache
with constraints.txt), so the installed wheel is checked by finding each module's file the way the import
system does, which needs none of them; `leadradar.features` imports for real (its __init__ files are empty).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support.package_layout import REPO, SUBPACKAGE_FOLDERS, installed_layout

GENERIC_NAMES = list(SUBPACKAGE_FOLDERS)
FIND = """
import importlib.util, json, sys
from importlib.machinery import PathFinder

def origin(name):
    # Resolved package by package through PathFinder, so no __init__ (some import numpy) runs.
    parts = name.split(".")
    spec = importlib.util.find_spec(parts[0])
    for depth in range(2, len(parts) + 1):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = PathFinder.find_spec(".".join(parts[:depth]), list(spec.submodule_search_locations))
    return spec.origin if spec else None

found = {name: origin(name) for name in sys.argv[1:]}
import leadradar.features
found["imported leadradar.features"] = leadradar.features.__file__
print(json.dumps(found))
"""


def copy_sources(dest: Path) -> Path:
    """What building the wheel reads, copied, so no build/ or *.egg-info left in the checkout leaks into it."""
    layout = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"leadradar", *SUBPACKAGE_FOLDERS, *layout.get("package-dir", {}).values()}
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for folder in sorted(folders):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = copy_sources(work / "checkout")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (work / "dist").glob("leadradar-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv that has seen neither the worktree's venv nor its editable install: the wheel alone."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def test_the_wheel_holds_only_leadradar_and_its_metadata(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not (n.startswith("leadradar/") or re.match(r"leadradar-[^/]+\.dist-info/", n))]
    assert outside == []


def test_the_wheel_holds_every_module_of_the_cards_folders_and_the_dashboard_templates(wheel):
    packaged = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("leadradar/")}
    expected = installed_layout()
    assert not expected - packaged, f"missing from the wheel (a package left out of pyproject?): {expected - packaged}"
    assert not packaged - expected, f"in the wheel but not in the checkout's folders: {packaged - expected}"


def test_the_installed_wheel_imports_as_leadradar_and_adds_no_generic_top_level_name(fresh_venv, tmp_path):
    modules = sorted(
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in installed_layout()
        if name.endswith(".py")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    ran = subprocess.run(
        [str(fresh_venv), "-c", FIND, *modules, *GENERIC_NAMES],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    site_packages = str(fresh_venv.parent.parent / "lib")
    assert found["imported leadradar.features"].startswith(site_packages)
    assert {m: found[m] for m in modules if not (found[m] or "").startswith(site_packages)} == {}
    assert {name: found[name] for name in GENERIC_NAMES} == dict.fromkeys(GENERIC_NAMES)
