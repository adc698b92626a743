"""Langevin MCMC moves that leave the current FKC target ``pi_t`` invariant (resample-move).

SMC in many dimensions needs a mutation step: reweighting and resampling alone keep only the
particles that the reverse SDE happened to put in high-weight places, and in a few tens of
dimensions the FKC weights of an annealed target degenerate even with exact scores (a 60-d
two-mode Gaussian mixture at beta = 8/3 ends in a single mode per run; see ``tests/test_moves.py``).
After the resampling decision at ``t_k`` and before the next SDE step, each particle makes
``n`` Langevin moves on ``pi_{t_k} = prod_i q_{i,t_k}^{b_i}`` with the composed score
``S = grad log pi_t``:

    x' = P(x + delta S(x) + sqrt(2 delta) z),    z ~ N(0, I),

where ``P`` projects onto the free subspace (CoM-free coordinates) and the step size follows the
noise level, ``delta = step_size * sigma_t^2 / B`` (``B = sum_i b_i``): near a mode ``pi_t`` has
variance ``>= sigma_t^2 / B`` in every direction, so ``step_size`` is the step relative to the
stiffest direction (the variance of the noise the SDE still has to remove).

* ``kind="mala"`` accepts ``x'`` with probability ``min(1, pi(x') k(x | x') / (pi(x) k(x' | x)))``,
  ``log k(y | x) = -|y - x - delta S(x)|^2 / (4 delta)`` (Metropolis-adjusted Langevin; needs
  every expert's log density). The move is exactly ``pi_t``-invariant, so weights are unchanged
  and the sampler stays exact.
* ``kind="ula"`` always accepts (unadjusted Langevin; needs only scores). Its stationary law is
  ``pi_t`` up to ``O(delta)``, so it adds a bias that shrinks with ``step_size``; use it knowingly.

``adapt=True`` (MALA only) tunes ``step_size`` along the run from the population's acceptance
rate: after the moves at ``t_k``, ``log step_size += ADAPT_GAIN * (acceptance - target)``
(clipped to ``[1e-4, 1e4]``), used from ``t_{k+1}`` on. Each kernel stays exactly
``pi_t``-invariant because its step depends only on particles before the moves (population
adaptation in SMC samplers; Buchholz, Chopin & Jacob 2021, Bayesian Analysis 16). This matters
below the noise level of the data's stiffest directions (bond lengths): there ``pi_t`` is much
wider than ``sigma_t^2 / B``, a fixed relative step accepts almost everything and barely moves,
and the adapted step grows until the acceptance falls to the target.

A moved particle's score, log-weight rate and (MALA) log density are those of the accepted point,
so the moves cost ``n`` evaluations of every expert per step and nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..compose.algebra import Composition
from ..compose.corrector import ScoreTerms, score_terms

KINDS = ("mala", "ula")
ADAPT_GAIN = 1.0  # log step change per unit acceptance error (one population estimate per step)
STEP_RANGE = (1e-4, 1e4)


def resolve_kind(kind: str, target) -> str:
    """``"auto"`` -> ``"mala"`` if ``target`` (an expert or composition) has a log density,
    else ``"ula"``; any other kind is returned unchanged (checked by :class:`MoveConfig`)."""
    if kind == "auto":
        return "mala" if target.has_log_density else "ula"
    return kind


@dataclass(frozen=True)
class MoveConfig:
    """Langevin moves between SDE steps.

    n: moves per step (0: none). kind: ``"mala"`` (exact, needs log densities) or ``"ula"``.
    step_size: ``delta / (sigma_t^2 / B)``, > 0 (with ``adapt``: the initial value). window:
    ``(t_hi, t_lo)``; moves only at times ``t_lo <= t_k <= t_hi``. adapt: tune the step size
    to ``target_acceptance`` in (0, 1) (MALA only; module docstring).
    """

    n: int = 0
    kind: str = "mala"
    step_size: float = 0.5
    window: tuple[float, float] = (1.0, 0.0)
    adapt: bool = False
    target_acceptance: float = 0.57

    def __post_init__(self):
        if not (isinstance(self.n, int) and self.n >= 0):
            raise ValueError(f"number of MCMC moves per step must be an integer >= 0, got {self.n!r}")
        if self.kind not in KINDS:
            raise ValueError(f"MCMC move kind must be one of {KINDS}, got {self.kind!r}")
        s = float(self.step_size)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"MCMC step_size must be finite and > 0, got {self.step_size!r}")
        t_hi, t_lo = (float(v) for v in self.window)
        if not 0.0 <= t_lo <= t_hi <= 1.0:
            raise ValueError(
                f"MCMC window must be (t_hi, t_lo) with 0 <= t_lo <= t_hi <= 1, got {self.window}")
        if not isinstance(self.adapt, bool):
            raise ValueError(f"MCMC adapt must be a bool, got {self.adapt!r}")
        if self.adapt and self.kind != "mala":
            raise ValueError(f"adaptive MCMC step sizes need MALA's acceptance rate, got kind "
                             f"{self.kind!r}")
        a = float(self.target_acceptance)
        if not 0.0 < a < 1.0:
            raise ValueError(f"MCMC target_acceptance must be in (0, 1), got {self.target_acceptance!r}")

    def adapted(self, step_size: float, acceptance: float) -> float:
        """The next step size after a block of moves with this mean acceptance."""
        if not self.adapt:
            return step_size
        new = step_size * math.exp(ADAPT_GAIN * (acceptance - self.target_acceptance))
        return min(max(new, STEP_RANGE[0]), STEP_RANGE[1])

    def active(self, t: float) -> bool:
        t_hi, t_lo = self.window
        return self.n > 0 and t_lo <= t <= t_hi

    def check(self, composition: Composition) -> None:
        """MALA needs every expert's log density; the error names the ones without."""
        if self.n > 0 and self.kind == "mala" and not composition.has_log_density:
            missing = [type(e).__name__ for e, _ in composition.terms if not e.has_log_density]
            raise ValueError(
                f"MALA moves need a log density for every expert, but {missing} have none "
                "(score-only networks): use kind='ula' (approximate) or an energy-parameterised model")


@dataclass
class MoveResult:
    """Moved particles ``x: (n, *event_shape)``, their score terms, the mean acceptance rate
    (1.0 for ULA) and, for MALA, ``log pi_t`` at the moved points ``(n,)`` float64 (None for
    ULA)."""

    x: torch.Tensor
    terms: ScoreTerms
    acceptance: float
    log_p: torch.Tensor | None = None


def _log_density(composition: Composition, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return composition.log_density(x, t).to(torch.float64)


def langevin_moves(composition: Composition, x: torch.Tensor, t: torch.Tensor, terms: ScoreTerms,
                   sigma2: float, config: MoveConfig, weighted: bool,
                   generator: torch.Generator, step_size: float | None = None,
                   log_p: torch.Tensor | None = None) -> MoveResult:
    """``config.n`` Langevin moves of every particle on ``pi_t``.

    Args:
        x: ``(n, *event_shape)`` particles; t: ``(n,)`` their time; terms: score terms at x
            (``terms.sq`` needed iff ``weighted``); sigma2: ``sigma_t^2`` of the process.
        weighted: also return ``|S|^2 - sum b_i |s_i|^2`` at the moved points (the log-weight
            rate needs it).
        step_size: relative step for this block (default ``config.step_size``; the sampler
            passes the adapted one).
        log_p: ``log pi_t(x)`` ``(n,)`` if the caller has it (MALA evaluates it otherwise).
    """
    project = composition.process.space.project
    rel = config.step_size if step_size is None else step_size
    delta = rel * sigma2 / composition.total
    if not delta > 0:
        raise ValueError(f"MCMC step size is {delta} at t={float(t[0])}; it needs sigma_t > 0")
    scale = math.sqrt(2.0 * delta)
    mala = config.kind == "mala"
    if not mala:
        log_p = None
    elif log_p is None:
        log_p = _log_density(composition, x, t)
    S, sq = project(terms.S), terms.sq
    accepted = 0.0
    shape = (-1,) + (1,) * (x.dim() - 1)
    for _ in range(config.n):
        z = project(torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device))
        x_new = project(x + delta * S + scale * z)
        new = score_terms(composition, x_new, t, weighted=weighted)
        S_new = project(new.S)
        if not mala:
            x, S, sq = x_new, S_new, new.sq
            accepted += 1.0
            continue
        log_p_new = _log_density(composition, x_new, t)
        fwd = (x_new - x - delta * S).flatten(1).to(torch.float64).square().sum(-1)
        bwd = (x - x_new - delta * S_new).flatten(1).to(torch.float64).square().sum(-1)
        log_ratio = log_p_new - log_p + (fwd - bwd) / (4.0 * delta)
        u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)
        # NaN ratios (non-finite proposals) are rejected
        acc = torch.log(u) < torch.nan_to_num(log_ratio, nan=-math.inf)
        accepted += float(acc.to(torch.float64).mean())
        x = torch.where(acc.reshape(shape), x_new, x)
        S = torch.where(acc.reshape(shape), S_new, S)
        log_p = torch.where(acc, log_p_new, log_p)
        if weighted:
            sq = torch.where(acc, new.sq, sq)
    return MoveResult(x=x, terms=ScoreTerms(S=S, sq=sq), acceptance=accepted / max(config.n, 1),
                      log_p=log_p)
