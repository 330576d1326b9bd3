"""`leadradar bento build`: a Bento of the package as it installs, with the champion model and its settings.

The whole build spec is written here, not kept in a bentofile.yaml: the Bento is built from a staged
copy of the package laid out as the wheel installs it (leadradar/features, leadradar/serving, ...),
a tree that does not exist in the checkout, so a bentofile there would describe the wrong tree, and a
plain `bentoml build` of the checkout made a Bento that ran only beside the editable install. The
Python packages are pyproject's `[project].dependencies`, read at build time, so there is no second
list to forget one in; the environment is the config's QUIET_ENVIRONMENT. In a container whose MLflow
registry is out of reach, the service loads the bundled model (leadradar.registry).

The Bento is named `leadradar-service`, not `leadradar`: `bentoml serve NAME:VERSION` first tries NAME as
a Python module, and `leadradar` would import the installed package (in a checkout, the editable one)
before the Bento's own source, so the Bento would serve whatever code that environment holds.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from leadradar.config import QUIET_ENVIRONMENT, Settings
from leadradar.registry import BENTO_MODEL_TAG, CHAMPION, fetch, resolve

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "leadradar.serving.service:LeadRadar"
BENTO_NAME = "leadradar-service"
DESCRIPTION = "leadradar scoring service: close probabilities, funnel transitions, grades and reasons per tenant"


def bundle_champion(settings: Settings, alias: str = CHAMPION) -> str:
    """Copy the alias's bundle and the settings into BentoML's model store; returns the model tag."""
    import bentoml

    ref = resolve(settings, alias)
    if ref is None:
        raise LookupError(f"no model has the alias '{alias}'; train and promote one first")
    bundle = fetch(settings, ref)
    labels = {"registered_model": ref.name, "version": ref.version, "alias": alias}
    with bentoml.models.create(BENTO_MODEL_TAG, labels=labels, metadata={"run_id": ref.run_id}) as model:
        shutil.copytree(bundle, Path(model.path) / "bundle")
        (Path(model.path) / "settings.json").write_text(settings.model_dump_json(indent=1))
    return str(model.tag)


def read_pyproject(root: Path = ROOT) -> dict[str, Any]:
    """The checkout's pyproject.toml: the one list of dependencies and the one package layout."""
    path = root / "pyproject.toml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: `leadradar bento build` runs in a source checkout of leadradar")
    return tomllib.loads(path.read_text())


def source_dir(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools finds `package`: the longest mapped prefix of its name, the rest as folders."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        mapped = package_dir.get(".".join(parts[:n]))
        if mapped is not None:
            return Path(mapped, *parts[n:])
    return Path(package_dir.get("", ""), *parts)


def stage_package(dest: Path, root: Path = ROOT) -> list[Path]:
    """Copy the package into `dest` as the wheel lays it out (pyproject's packages, package-dir, package-data)."""
    layout = read_pyproject(root)["tool"]["setuptools"]
    package_dir, package_data = layout.get("package-dir", {}), layout.get("package-data", {})
    staged = []
    for package in layout["packages"]:
        source = root / source_dir(package, package_dir)
        target = dest.joinpath(*package.split("."))
        for pattern in ("*.py", *package_data.get(package, [])):
            for file in sorted(p for p in source.glob(pattern) if p.is_file()):
                copy = target / file.relative_to(source)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, copy)
                staged.append(copy)
    return staged


def bento_packages(root: Path = ROOT) -> list[str]:
    """pyproject's dependencies and its `postgres` extra: a container must reach the PostgreSQL stores too."""
    project = read_pyproject(root)["project"]
    return [*project["dependencies"], *project.get("optional-dependencies", {}).get("postgres", [])]


def bento_spec(models: list[str], root: Path = ROOT) -> dict[str, Any]:
    """The Bento's build spec over a staged package: pyproject's dependencies, the quiet environment, `models`."""
    return {
        "service": SERVICE,
        "name": BENTO_NAME,
        "description": DESCRIPTION,
        "labels": {"project": "leadradar"},
        "include": ["leadradar/**"],
        # No lock step: `bentoml build` would otherwise install uv and lock against the package index (offline here).
        "python": {"packages": bento_packages(root), "lock_packages": False},
        "docker": {"distro": "debian", "python_version": "3.11"},
        "envs": [{"name": name, "value": value} for name, value in QUIET_ENVIRONMENT.items()],
        "models": models,
    }


def build_bento(settings: Settings, alias: str = CHAMPION) -> str:
    """Bundle the champion and build the Bento from the staged package; returns the Bento's tag."""
    import bentoml
    import yaml

    model_tag = bundle_champion(settings, alias)
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context"
        stage_package(context)
        bentofile = Path(tmp) / "bentofile.yaml"
        bentofile.write_text(yaml.safe_dump(bento_spec([model_tag]), sort_keys=False))
        bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(context))
    return str(bento.tag)
