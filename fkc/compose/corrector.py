"""Feynman-Kac corrector: drift, noise and log-weight rate for a composition.

Target ``pi_t = prod_i q_{i,t}^{b_i}``, ``S = sum_i b_i s_i``, ``B = sum_i b_i``; forward SDE
``dx = f dt + g dW`` of the shared noise process. We simulate in reverse time ``tau = 1 - t``

    dx = [-f(x, t) + (1 + a)/2 g(t)^2 S(x, t)] dtau + sqrt(a) g(t) dW,

with noise level ``a >= 0``: ``a = 1`` is the target-score SDE, ``a = 1/B`` the tempered-noise SDE
(for annealing ``q^beta``: drift ``(beta+1)/2 g^2 s``, noise ``g/sqrt(beta)``), ``a = 0`` the
probability-flow ODE. Carrying the log-weight

    d log w = [(B - 1) div f + g^2/2 (|S|^2 - sum_i b_i |s_i|^2)] dtau

makes the weighted particles exact for ``pi_t`` (FKC, Skreta et al. 2025, Props. 3.1-3.3, D.5).

Derivation: by Fokker-Planck, ``d_t log q_i = -div f - f.s_i + g^2/2 (div s_i + |s_i|^2)``.
Summing, ``d_tau log pi = B div f + f.S - g^2/2 (div S + sum b_i |s_i|^2)``. The reverse SDE above
moves ``pi`` by ``[-div(v pi) + a g^2/2 Lap(pi)]/pi = -div v - v.S + a g^2/2 (div S + |S|^2)``.
The difference is the rate above: the ``div S`` terms cancel for every ``a`` because the drift
coefficient is ``(1 + a)/2``, so no divergence of a network is ever needed, and the rate does not
depend on ``a``. ``div f = n_free d log alpha/dt`` counts only free (CoM-free) dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .algebra import Composition


def noise_level(noise: str | float, composition: Composition) -> float:
    """The noise level ``a`` (reverse-SDE variance / g^2) named by ``noise``.

    ``"target"`` → 1, ``"tempered"`` → ``1 / B``, a number → itself (must be finite and >= 0).
    """
    if isinstance(noise, str):
        if noise == "target":
            return 1.0
        if noise == "tempered":
            return 1.0 / composition.total
        raise ValueError(f"noise must be 'target', 'tempered' or a number >= 0, got {noise!r}")
    a = float(noise)
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"noise level must be finite and >= 0, got {noise!r}")
    return a


@dataclass(frozen=True)
class Coefficients:
    """Schedule coefficients at one time ``t``, shared by all particles: ``t``, ``g(t)^2`` and
    ``div f(t)`` over the free dimensions (from the noise process; see :mod:`fkc.sde`)."""

    t: float
    g2: float
    div_f: float


def coefficients(composition: Composition, times: torch.Tensor) -> list[Coefficients]:
    """:class:`Coefficients` at every time of a grid ``(m,)``, computed in one vectorised call
    (float64): the sampler needs them at every step for every particle."""
    proc = composition.process
    t64 = times.to(torch.float64)
    g2 = proc.g2(t64).tolist()
    div_f = proc.div_f(t64, composition.event_shape).tolist()
    return [Coefficients(t, g, d) for t, g, d in zip(t64.tolist(), g2, div_f, strict=True)]


@dataclass
class ScoreTerms:
    """Scores at one point: ``S = sum_i b_i s_i`` ``(n, *event_shape)`` and
    ``sq = |S|^2 - sum_i b_i |s_i|^2`` ``(n,)`` (None if not needed)."""

    S: torch.Tensor
    sq: torch.Tensor | None


def score_terms(composition: Composition, x: torch.Tensor, t: torch.Tensor,
                weighted: bool = True) -> ScoreTerms:
    """Evaluate every expert once at ``(x, t)``; x ``(n, *event_shape)``, t ``(n,)``."""
    S = None
    sum_b_sq = None
    for (_, b), s in zip(composition.terms, composition.scores(x, t), strict=True):
        S = b * s if S is None else S + b * s
        if weighted:
            n2 = s.flatten(1).to(torch.float64).square().sum(-1)
            sum_b_sq = b * n2 if sum_b_sq is None else sum_b_sq + b * n2
    sq = None
    if weighted:
        sq = S.flatten(1).to(torch.float64).square().sum(-1) - sum_b_sq
    return ScoreTerms(S=S, sq=sq)


def log_weight_rate(composition: Composition, c: Coefficients, terms: ScoreTerms) -> torch.Tensor:
    """``(B - 1) div f + g^2/2 (|S|^2 - sum_i b_i |s_i|^2)`` per unit reverse time, ``(n,)``
    float64."""
    return (composition.total - 1.0) * c.div_f + 0.5 * c.g2 * terms.sq


def reverse_drift(composition: Composition, x: torch.Tensor, c: Coefficients,
                  terms: ScoreTerms, a: float) -> torch.Tensor:
    """Reverse-time drift ``-f(x, t) + (1 + a)/2 g(t)^2 S``, ``(n, *event_shape)``."""
    t = torch.tensor(c.t, dtype=x.dtype, device=x.device)
    return -composition.process.f(x, t) + (0.5 * (1.0 + a) * c.g2) * terms.S


def tweedie_denoise(composition: Composition, x: torch.Tensor, t: torch.Tensor,
                    S: torch.Tensor) -> torch.Tensor:
    """Posterior-mean denoising ``(x + sigma_t^2 S / B) / alpha_t`` of particles at time t.

    Near a mode every ``q_{i,t}`` is locally Gaussian with variance ``v_i + sigma_t^2``, so
    ``prod_i q_{i,t}^{b_i}`` is the target ``prod_i q_{i,0}^{b_i}`` plus noise of variance
    ``sigma_t^2 / B`` (up to ``O(sigma_t^4)``); Tweedie's formula for that noise, with the
    composed score ``S``, gives the expression above (for an annealed expert it is the usual
    ``(x + sigma^2 s) / alpha``). x, S: ``(n, *event_shape)``, t: ``(n,)``.
    """
    proc = composition.process
    shape = (-1,) + (1,) * (x.dim() - 1)
    s2 = proc.sigma2(t).to(x.dtype).reshape(shape)
    alpha = proc.alpha(t).to(x.dtype).reshape(shape)
    return proc.space.project((x + (s2 / composition.total) * S) / alpha)


def noise_std(c: Coefficients, a: float) -> float:
    """Reverse-time diffusion coefficient ``sqrt(a) g(t)``."""
    return math.sqrt(a * c.g2)
