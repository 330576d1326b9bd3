"""The oracle: each label's exact probability given a lead's full hidden state at a cutoff.

Backward recursion over the per-lead Markov chain of dynamics.py, so there is no Monte Carlo
error; the only approximation is floating point.
"""

from __future__ import annotations

import numpy as np

from leadradar.features.simulator.config import SimulationConfig
from leadradar.features.simulator.dynamics import N_MODES, intent, mode_matrix, stage_step


def _per_mode_steps(z: np.ndarray, offset: np.ndarray, cfg: SimulationConfig):
    """Stage-step probabilities for each lead as if it were in each mode: arrays (leads, mode, stage)."""
    modes = np.arange(N_MODES)[None, :]
    it = intent(z[:, None], modes, cfg)
    return stage_step(it, np.broadcast_to(modes, it.shape), offset[:, None], cfg)


def close_probabilities(
    z: np.ndarray, offset: np.ndarray, horizons: tuple[int, ...], cfg: SimulationConfig
) -> dict[int, np.ndarray]:
    """P(won within h days | stage, mode) for every lead: {h: array (leads, open stages, modes)}."""
    m = mode_matrix(z, cfg)  # (L, m, m')
    step = _per_mode_steps(z, offset, cfg)  # (L, m', s)
    n_open = step.lost.shape[-1]
    stay, one, two = step.stay, step.advance_one, step.advance_two
    # u[l, s, m'] for s in open stages plus two absorbing columns: won (1) and lost (0).
    u = np.zeros((z.shape[0], n_open + 2, N_MODES))
    u[:, n_open, :] = 1.0
    out: dict[int, np.ndarray] = {}
    for h in range(1, max(horizons) + 1):
        ext = u
        v = np.empty((z.shape[0], n_open, N_MODES))
        for s in range(n_open):
            v[:, s, :] = (
                stay[:, :, s] * ext[:, s, :]
                + one[:, :, s] * ext[:, s + 1, :]
                + two[:, :, s] * ext[:, min(s + 2, n_open), :]
            )
        # mode moves first: u_new[l, s, m] = sum_m' M[l, m, m'] v[l, s, m']
        new_open = np.einsum("lab,lsb->lsa", m, v)
        u = u.copy()
        u[:, :n_open, :] = new_open
        if h in horizons:
            out[h] = new_open.copy()
    return out


def advance_probabilities(z: np.ndarray, offset: np.ndarray, horizon: int, cfg: SimulationConfig) -> np.ndarray:
    """P(the lead moves beyond its current stage within `horizon` days | stage, mode): (leads, stages, modes).

    Stages never go back, so from stage s the chain only stays, leaves forward, or is lost.
    """
    m = mode_matrix(z, cfg)
    step = _per_mode_steps(z, offset, cfg)
    leave = step.advance_one + step.advance_two  # (L, m', s)
    w = np.zeros_like(leave)
    for _ in range(horizon):
        v = leave + step.stay * w
        w = np.einsum("lab,lbs->las", m, v)
    return np.transpose(w, (0, 2, 1))
