"""The feature registry: every family's features collected once, in order, from the settings.

Each feature is declared in features/families/ (as a `Feature`, features/feature.py). The training
set, online scoring, the reasons people read and the definition hash that travels with a model all
come from this collection.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from leadradar.config import Settings
from leadradar.features.families import FAMILIES
from leadradar.features.feature import Feature

# The settings sections that feature definitions and their query read (a test holds them to these): equal sections,
# equal definitions, within one version of the code.
DEFINITION_SECTIONS = ("events", "funnel", "features")


def definition_settings(settings: Settings) -> str:
    """The definition sections of the settings as JSON: what a registry declared from them is a function of."""
    return settings.model_dump_json(include=set(DEFINITION_SECTIONS))


def definitions_key(settings: Settings, registry: FeatureRegistry) -> tuple[str, str, tuple[str, ...]] | None:
    """What a query compiled from this registry under these settings follows, within one version of the code:
    the settings it was declared from, the definition sections given now, its columns. None for a registry made by
    hand, whose expressions nothing names."""
    if registry.origin is None:
        return None
    return registry.origin, definition_settings(settings), tuple(registry.names)


@functools.cache
def feature_code_digest() -> str:
    """A digest of the feature code (every source file of leadradar.features), read once a process: what kept
    results follow besides the settings."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class FeatureRegistry:
    """An ordered, name-unique collection of features, built from the settings."""

    def __init__(self, features: Iterable[Feature], origin: str | None = None):
        # `definition_settings` of the settings that declared these features; None for a collection made by hand.
        self.origin = origin
        self._features: dict[str, Feature] = {}
        for f in features:
            if f.name in self._features:
                raise ValueError(f"feature {f.name!r} is declared twice")
            self._features[f.name] = f

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features.values())

    def __len__(self) -> int:
        return len(self._features)

    def __getitem__(self, name: str) -> Feature:
        return self._features[name]

    def __contains__(self, name: object) -> bool:
        return name in self._features

    @property
    def names(self) -> list[str]:
        return list(self._features)

    def of_source(self, source: str) -> list[Feature]:
        return [f for f in self if f.source == source]

    def categorical(self) -> list[str]:
        return [f.name for f in self if f.kind == "category"]

    def select(self, names: Iterable[str]) -> FeatureRegistry:
        """The sub-registry a model was trained on, in its order."""
        return FeatureRegistry((self._features[n] for n in names), self.origin)


def build_registry(settings: Settings) -> FeatureRegistry:
    """All features the settings declare, family by family."""
    feats: list[Feature] = []
    for declare in FAMILIES:
        feats.extend(declare(settings))
    return FeatureRegistry(feats, definition_settings(settings))


def definition_hash(sql: str, names: list[str]) -> str:
    """A short hash of the compiled feature query and the column order: it changes when a definition does."""
    digest = hashlib.sha256()
    digest.update(sql.encode())
    digest.update("\x00".join(names).encode())
    return digest.hexdigest()[:16]
