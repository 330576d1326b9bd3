"""Why a lead scores as it does: exact TreeSHAP contributions turned into reasons people read.

For each lead, the top reasons for and against come from LightGBM's `pred_contrib` (exact TreeSHAP
in the raw log-odds space of the uncalibrated booster) and read as the feature registry's sentences
filled with the lead's values, in English or Simplified Chinese.

One reason per topic. Many features say nearly the same thing (`n_card_view_7d` and
`n_fam_view_7d`; the 7-, 30- and 90-day counts of one event; the count and the dwell time of
product views), and SHAP spreads credit among such features, so each reason stands for a topic,
which each feature declares (`Feature.topic`, features/feature.py; the names are never parsed):

* by default a feature's topic is its family and stem, the name without its window
  (`content:pricing_views` for `pricing_views_7d`, `pricing_views_30d` and `pricing_views_all`);
* activity counts and dwell times of an event type or family speak to the event family
  (`events:view`): every statistic and window of card views, and a type with its family, are one topic;
* every "hours since last ..." is one topic ("last touched"), and a few near-synonyms with
  different stems share one (lead age, visits, referrals, content breadth, track record).

A topic's weight is the sum of the contributions of its features that have a value (SHAP values
add up); topics are ranked by that sum, and each is told by its strongest valued feature pushing
the same way. Features with no value (NaN in the model's matrix, including categories unseen in
training) neither speak nor lend their weight to a sibling: a lead that never shared should not
read "last shared 3 days ago" because of the missing feature's push. A topic that moves the
log-odds by less than `MIN_CONTRIBUTION` is left out, so a lead may get fewer reasons than asked.

A manager already knows from the CRM where a lead stands in the funnel, so the reasons a list or a page
shows may leave out whole feature families (`hide`, by default the funnel: stage, time in stage, stage
moves) and speak of behaviour instead; the model keeps those features, and the full explanation keeps
their reasons. `explain_both` gives the full and the shown reasons from one `pred_contrib` call.

Cost: one `pred_contrib` call for all rows (it dominates, and grows with trees × leaves × depth²),
then numpy over rows; only the chosen reasons are formatted. Build one `Explainer` per loaded model
(`explainer_for` caches it) and call `explain_matrix` on the encoder's matrix for the fast path.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from leadradar.config import LANGS, FunnelConfig
from leadradar.features.describe import check_lang, fill, format_value, template_parts
from leadradar.features.registry import FeatureRegistry
from leadradar.models.funnel import FunnelModel, predict_threads
from leadradar.models.profile import closed_median, compared

# A topic moving the log-odds by less than this (odds by ~5%) is not worth a line; fewer reasons beat noise.
MIN_CONTRIBUTION = 0.05
HEADINGS = {"en": ("For", "Against"), "zh-CN": ("有利", "不利")}
SEPARATORS = {"en": ("; ", "."), "zh-CN": ("；", "。")}


def contributions(model: FunnelModel, target: str, X: np.ndarray) -> np.ndarray:
    """Exact TreeSHAP per feature plus the bias (last column), in the raw log-odds of `target`'s booster."""
    return _pred_contrib(_booster(model, target), np.asarray(X, dtype=np.float64), len(model.features))


def _pred_contrib(booster: Any, X: np.ndarray, n_features: int) -> np.ndarray:
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"X has shape {X.shape}; expected (rows, {n_features}) in the model's feature order")
    return booster.predict(X, pred_contrib=True, num_threads=predict_threads(len(X)))


def _booster(model: FunnelModel, target: str) -> Any:
    try:
        return model.targets_[target].booster
    except KeyError:
        raise KeyError(f"the model has no target {target!r}; targets: {sorted(model.targets_)}") from None


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature's part in a score: its value, its TreeSHAP contribution (log-odds) and its sentence."""

    feature: str
    value: float | str
    contribution: float
    direction: Literal["for", "against"]
    text: str
    # The median of this feature over the training rows that closed (models/profile.py), for behaviour only.
    closed: float | None = None


@dataclass(frozen=True)
class Explanation:
    """A lead's reasons for and against, strongest first, with the words in `lang`."""

    for_: list[Reason]
    against: list[Reason]
    lang: str
    _explainer: Explainer = field(repr=False, compare=False)

    @property
    def reasons(self) -> list[Reason]:
        return [*self.for_, *self.against]

    def text(self, lang: str | None = None) -> str:
        """One line for a ranked list: 'For: …; …. Against: ….' or '有利：…；…。不利：…。'."""
        lang = check_lang(lang or self.lang)
        join, end = SEPARATORS[lang]
        colon, gap = (": ", " ") if lang == "en" else ("：", "")
        parts = [
            heading + colon + join.join(self._words(r, lang) for r in rs) + end
            for heading, rs in zip(HEADINGS[lang], (self.for_, self.against))
            if rs
        ]
        return gap.join(parts)

    def _words(self, reason: Reason, lang: str) -> str:
        return reason.text if lang == self.lang else self._explainer.render(reason.feature, reason.value, lang)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for an API answer."""
        row = lambda r: {
            "feature": r.feature,
            "value": r.value,
            "contribution": r.contribution,
            "text": r.text,
            "closed": r.closed,
        }
        return {"lang": self.lang, "for": [row(r) for r in self.for_], "against": [row(r) for r in self.against]}


class Explainer:
    """Reasons for one target of one model; build it once per loaded model and reuse it per request.

    The topics are the registry's own (`Feature.topic`), declared with each feature.
    """

    def __init__(
        self,
        model: FunnelModel,
        target: str,
        registry: FeatureRegistry,
        funnel: FunnelConfig,
        min_contribution: float = MIN_CONTRIBUTION,
    ):
        if min_contribution < 0:
            raise ValueError(f"min_contribution is a log-odds magnitude and must be >= 0, got {min_contribution}")
        self.min_contribution = min_contribution
        self.booster = _booster(model, target)
        self.encoder = model.encoder_
        self.n_features = len(model.features)
        unknown = [n for n in model.features if n not in registry]
        if unknown:
            raise ValueError(f"model features {unknown[:10]} are not in the feature registry, so they cannot be worded")
        self.features = [registry[n] for n in model.features]
        self.index = {f.name: j for j, f in enumerate(self.features)}
        self.funnel = funnel
        self.levels = [self.encoder.levels_.get(f.name) for f in self.features]
        profile = model.closed_profile_
        self.closed = [closed_median(profile, f) for f in self.features]
        self._parts: dict[tuple[str, str], tuple[str, str, str, str | None]] = {
            (f.name, lang): template_parts(f, lang) for f in self.features for lang in LANGS
        }
        topics = [f.topic for f in self.features]
        self.topics = list(dict.fromkeys(topics))
        self.topic_of = np.array([self.topics.index(t) for t in topics])
        self.one_hot = np.zeros((self.n_features, len(self.topics)))
        self.one_hot[np.arange(self.n_features), self.topic_of] = 1.0
        self.by_topic = np.argsort(self.topic_of, kind="stable")
        self.topic_starts = np.searchsorted(self.topic_of[self.by_topic], np.arange(len(self.topics)))
        # A padded (topics × largest topic) table of feature indices; the pad points at an extra zero column.
        members = [np.flatnonzero(self.topic_of == t) for t in range(len(self.topics))]
        self.members = np.full((len(members), max(map(len, members))), self.n_features)
        for t, idx in enumerate(members):
            self.members[t, : len(idx)] = idx

    def render(self, name: str, value: float | str, lang: str) -> str:
        """The feature's sentence with the value formatted for `lang` (re-wording a reason in the other language)."""
        j = self.index[name]
        f = self.features[j]
        text = fill(self._parts[name, lang], format_value(f.kind, value, lang, f, self.funnel))
        return text + compared(f, self.closed[j], lang, self.funnel)

    def explain_frame(
        self, frame: pd.DataFrame, lang: str = "en", n_for: int = 3, n_against: int = 2
    ) -> list[Explanation]:
        """Reasons for each row of a feature frame (encoded as the model was trained)."""
        return self.explain_matrix(self.encoder.transform(frame), lang, n_for, n_against)

    def explain_matrix(
        self, X: np.ndarray, lang: str = "en", n_for: int = 3, n_against: int = 2, hide: tuple[str, ...] = ()
    ) -> list[Explanation]:
        """Reasons for each row of the model's matrix: one `pred_contrib` call, selection in numpy.

        Topics of features in the families `hide` never speak (nor does any topic they share a feature with).
        """
        X, phi = self._phi(X, lang, n_for, n_against)
        return self._explanations(X, phi, lang, n_for, n_against, hide)

    def explain_both(
        self, X: np.ndarray, hide: tuple[str, ...], lang: str = "en", n_for: int = 3, n_against: int = 2
    ) -> tuple[list[Explanation], list[Explanation]]:
        """The full reasons and those shown to people (families in `hide` left out), from one `pred_contrib`."""
        X, phi = self._phi(X, lang, n_for, n_against)
        full = self._explanations(X, phi, lang, n_for, n_against, ())
        return full, self._explanations(X, phi, lang, n_for, n_against, hide)

    def _phi(self, X: np.ndarray, lang: str, n_for: int, n_against: int) -> tuple[np.ndarray, np.ndarray]:
        check_lang(lang)
        if n_for < 0 or n_against < 0:
            raise ValueError(f"n_for and n_against must be >= 0, got {n_for} and {n_against}")
        X = np.asarray(X, dtype=np.float64)
        return X, _pred_contrib(self.booster, X, self.n_features)[:, : self.n_features]

    def _explanations(
        self, X: np.ndarray, phi: np.ndarray, lang: str, n_for: int, n_against: int, hide: tuple[str, ...]
    ) -> list[Explanation]:
        present = np.isfinite(X)
        topic_sum = np.where(present, phi, 0.0) @ self.one_hot  # each topic's weight: its valued features' sum
        allowed = self._allowed(hide)
        chosen_for = self._choose(phi, present, topic_sum, +1, n_for, allowed)
        chosen_against = self._choose(phi, present, topic_sum, -1, n_against, allowed)
        return [
            Explanation(
                [self._reason(i, j, X, phi, "for", lang) for j in chosen_for[i]],
                [self._reason(i, j, X, phi, "against", lang) for j in chosen_against[i]],
                lang,
                self,
            )
            for i in range(len(X))
        ]

    def _allowed(self, hide: tuple[str, ...]) -> np.ndarray:
        """Per topic, whether it may speak: none of its features belongs to a hidden family."""
        hidden = np.array([f.family in hide for f in self.features], dtype=bool)
        return ~(hidden @ self.one_hot > 0)

    def _choose(
        self, phi: np.ndarray, present: np.ndarray, topic_sum: np.ndarray, sign: int, k: int, allowed: np.ndarray
    ) -> list[list[int]]:
        """Per row, the features that speak for the k strongest topics pushing the score `sign`-wards."""
        n = len(phi)
        if k == 0 or n == 0:
            return [[] for _ in range(n)]
        signed = sign * topic_sum
        # A feature may speak when it has a value and pushes the same way as its topic and as asked.
        speaks = present & (sign * phi > 0) & (signed[:, self.topic_of] > 0)
        strength = np.where(speaks, np.abs(phi), 0.0)
        best = np.maximum.reduceat(strength[:, self.by_topic], self.topic_starts, axis=1)
        score = np.where((best > 0) & (signed >= self.min_contribution) & allowed, signed, 0.0)
        top = np.argsort(-score, axis=1, kind="stable")[:, : min(k, len(self.topics))]
        keep = np.take_along_axis(score, top, axis=1) > 0
        speakers = self.members[top]  # (rows, k, largest topic), padded with an always-zero column
        padded = np.hstack([strength, np.zeros((n, 1))])
        pick = np.take_along_axis(padded, speakers.reshape(n, -1), axis=1).reshape(speakers.shape).argmax(axis=2)
        feats = np.take_along_axis(speakers, pick[..., None], axis=2)[..., 0]
        return [row[ok].tolist() for row, ok in zip(feats, keep)]

    def _reason(self, i: int, j: int, X: np.ndarray, phi: np.ndarray, direction: str, lang: str) -> Reason:
        f, x = self.features[j], float(X[i, j])
        levels = self.levels[j]
        value: float | str = levels[int(x)] if levels is not None else x
        text = fill(self._parts[f.name, lang], format_value(f.kind, value, lang, f, self.funnel))
        closed = self.closed[j]
        text += compared(f, closed, lang, self.funnel)
        return Reason(f.name, value, float(phi[i, j]), direction, text, closed)  # type: ignore[arg-type]


_CACHE: weakref.WeakKeyDictionary[FunnelModel, dict[tuple, tuple[Explainer, tuple]]] = weakref.WeakKeyDictionary()


def explainer_for(
    model: FunnelModel,
    target: str,
    registry: FeatureRegistry,
    funnel: FunnelConfig,
    min_contribution: float = MIN_CONTRIBUTION,
) -> Explainer:
    """The model's explainer for these words, built on first use and kept while the model lives."""
    parts = (_booster(model, target), model.encoder_, registry, funnel)
    # Each entry holds these objects, so their ids cannot be reused while it exists; a refit model
    # has new boosters and gets a new entry.
    key = (target, min_contribution, *map(id, parts))
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        if len(per_model) >= 8:
            per_model.clear()
        per_model[key] = (Explainer(model, target, registry, funnel, min_contribution), parts)
    return per_model[key][0]


def explain_rows(
    model: FunnelModel,
    target: str,
    frame: pd.DataFrame,
    registry: FeatureRegistry,
    funnel: FunnelConfig,
    lang: str = "en",
    n_for: int = 3,
    n_against: int = 2,
    min_contribution: float = MIN_CONTRIBUTION,
) -> list[Explanation]:
    """The top reasons for and against each row's score, one per topic, in English or Chinese.

    Topics come from the registry's features, built from the company's settings. Topics moving
    the log-odds by less than `min_contribution` are left out, so a lead
    may have fewer reasons than asked.
    """
    check_lang(lang)
    explainer = explainer_for(model, target, registry, funnel, min_contribution)
    return explainer.explain_frame(frame, lang, n_for, n_against)


__all__ = [
    "MIN_CONTRIBUTION",
    "Explainer",
    "Explanation",
    "Reason",
    "contributions",
    "explain_rows",
    "explainer_for",
]
