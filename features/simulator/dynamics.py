"""The hidden Markov chain of a lead: one definition used to simulate and to compute the truth.

A lead's hidden state is (stage, mode). Each day the mode moves first (browsing, buying, dormant),
then the stage moves with probabilities that depend on the intent of the new mode. The chain is
time-homogeneous per lead, so the probability of any future label is exact by backward recursion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadradar.features.simulator.config import SimulationConfig

BROWSING, BUYING, DORMANT = 0, 1, 2
N_MODES = 3


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def mode_matrix(z: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """Per-lead daily mode transition matrix, shape (leads, 3, 3), rows sum to one."""
    n = z.shape[0]
    to_buy = sigmoid(cfg.to_buying[0] + cfg.to_buying[1] * z)
    to_dormant = sigmoid(cfg.to_dormant[0] - cfg.to_dormant[1] * z)
    m = np.zeros((n, N_MODES, N_MODES))
    m[:, BROWSING, BUYING] = to_buy
    m[:, BROWSING, DORMANT] = to_dormant * (1.0 - to_buy)
    m[:, BROWSING, BROWSING] = 1.0 - m[:, BROWSING, BUYING] - m[:, BROWSING, DORMANT]
    m[:, BUYING, BROWSING] = cfg.buying_ends
    m[:, BUYING, BUYING] = 1.0 - cfg.buying_ends
    m[:, DORMANT, BROWSING] = cfg.dormant_wakes
    m[:, DORMANT, DORMANT] = 1.0 - cfg.dormant_wakes
    return m


def intent(z: np.ndarray, mode: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    return z + cfg.buying_lift * (mode == BUYING) - cfg.dormant_drop * (mode == DORMANT)


@dataclass(frozen=True)
class StageStep:
    """Probabilities of one day's stage move from each open stage: arrays (..., n_open)."""

    lost: np.ndarray
    advance_one: np.ndarray
    advance_two: np.ndarray

    @property
    def stay(self) -> np.ndarray:
        return 1.0 - self.lost - self.advance_one - self.advance_two


def stage_step(intent_value: np.ndarray, mode: np.ndarray, offset: np.ndarray, cfg: SimulationConfig) -> StageStep:
    """Daily stage-move probabilities for every open stage, given intent, mode and skill offset.

    Inputs broadcast together; the result has one more trailing axis over the open stages.
    """
    base = np.asarray(cfg.stage_base)
    n_open = base.shape[0]
    i = np.asarray(intent_value)[..., None]
    adv = sigmoid(base + cfg.intent_coef * i + np.asarray(offset)[..., None])
    lost = sigmoid(
        cfg.lost_base + cfg.lost_intent_coef * i + cfg.lost_dormant * (np.asarray(mode)[..., None] == DORMANT)
    )
    lost = np.broadcast_to(lost, adv.shape)
    moves = adv * (1.0 - lost)
    # A skip jumps one stage but never straight into the win.
    can_skip = np.arange(n_open) + 2 <= n_open - 1
    two = moves * cfg.skip_prob * can_skip
    one = moves - two
    return StageStep(lost=np.array(lost), advance_one=one, advance_two=two)
