"""The package as it should install, worked out from the checkout's folders (not from pyproject's lists)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUBPACKAGE_FOLDERS = ("features", "models", "training", "serving")
TEMPLATES = "serving/dashboard/templates"


def installed_layout(repo: Path = REPO) -> set[str]:
    """Every module and dashboard template of the checkout, at the path it has under site-packages."""
    folders = {"leadradar": "leadradar", **{folder: f"leadradar/{folder}" for folder in SUBPACKAGE_FOLDERS}}
    files = {
        f"{target}/{path.relative_to(repo / folder).as_posix()}"
        for folder, target in folders.items()
        for path in (repo / folder).rglob("*.py")
    }
    return files | {f"leadradar/{TEMPLATES}/{path.name}" for path in (repo / TEMPLATES).glob("*.html")}
