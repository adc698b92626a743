"""The FKC diffusion sampler: one Feynman-Kac model run by the generic SMC engine.

Time grid ``1 = t_0 > t_1 > ... > t_K = t_min`` (uniform, or EDM-style: see :func:`time_grid`),
steps ``dtau_k = t_k - t_{k+1}``.
Euler-Maruyama in reverse time (formulas in :mod:`fkc.compose.corrector`):

    x_{k+1} = x_k + [-f(x_k, t_k) + (1 + a)/2 g^2(t_k) S(x_k, t_k)] dtau_k + sqrt(a g^2 dtau_k) z,

and the log-potential of step k is the trapezoidal rule
``log G_{k+1} = (h(x_k, t_k) + h(x_{k+1}, t_{k+1})) dtau_k / 2`` with
``h = (B - 1) div f + g^2/2 (|S|^2 - sum b_i |s_i|^2)``. The scores at ``x_k`` are evaluated once
and used for both the weight and the move (reweight -> resample -> move).

Initial particles come from the composed prior ``N(0, prior_std^2 / B)`` (CoM-free where
applicable) with log-weight ``log pi_1(x) - log prior(x)``: exact when every expert has a log
density, otherwise ``pi_1`` is replaced by ``prod_i prior^{b_i}`` (a constant log-weight). With
normalised experts, ``log_z`` then estimates ``log int prod_i q_{i,t_min}(x)^{b_i} dx``.

With ``weights="density"`` the step ``k -> k+1`` is weighted instead by the exact discrete-time
SMC weight ``pi_{k+1}(x') L_k(x | x') / (pi_k(x) M_k(x' | x))`` from the experts' log densities
(:mod:`fkc.sampler.density_weights`): exact for any grid, no ``|s|^2`` term. With
``weights="ais"`` there is no SDE step at all: annealed importance sampling along the same
sequence, ``x_{k+1} = x_k`` with ``log G_{k+1} = log pi_{k+1}(x_k) - log pi_k(x_k)``, and the
particles move only by the MCMC moves on ``pi_{k+1}`` (Neal 2001; an SMC sampler with the
MCMC kernel's reversal as backward kernel, Del Moral, Doucet & Jasra 2006).

Optionally, after the resampling decision at ``t_k`` each particle makes Langevin (MALA or ULA)
moves on ``pi_{t_k}`` before the SDE step (resample-move; :mod:`fkc.sampler.moves`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..compose.algebra import Composition, as_composition
from ..compose.corrector import (
    ScoreTerms,
    coefficients,
    log_weight_rate,
    noise_level,
    noise_std,
    reverse_drift,
    score_terms,
    tweedie_denoise,
)
from ..experts.base import Expert
from ..smc import SMC, FeynmanKacModel
from .density_weights import backward_kernels, step_log_weight
from .moves import MoveConfig, langevin_moves

WEIGHTS = ("fkc", "density", "ais")


@dataclass
class _State:
    """Particles ``x: (n, *event_shape)``, the composed score ``S`` at them, and
    ``sq = |S|^2 - sum b_i |s_i|^2``, the log-weight rate ``h`` and ``log_p = log pi_t(x)``, all
    ``(n,)`` float64 (None when not needed)."""

    x: torch.Tensor
    S: torch.Tensor | None = None
    sq: torch.Tensor | None = None
    h: torch.Tensor | None = None
    log_p: torch.Tensor | None = None


class DiffusionFKModel(FeynmanKacModel):
    """Feynman-Kac model of the FKC-weighted reverse SDE for a composition.

    Potentials: ``log G_0 = log pi_1(x_0) - log prior(x_0)`` and, for the step ``k -> k+1``, the
    trapezoidal rule ``log G_{k+1} = (h(x_k, t_k) + h(x_{k+1}, t_{k+1})) dtau_k / 2``. The scores
    at ``x_{k+1}`` serve both this weight and the next move, so a run costs ``n_steps + 1``
    score evaluations per expert.

    Args:
        target: the composition (or a single expert).
        times: ``(n_steps + 1,)`` float64 decreasing time grid from 1 to ``t_min``.
        a: noise level (see :func:`fkc.compose.noise_level`).
        weighted: False gives the uncorrected sampler (all log-potentials zero; scores are
            evaluated only for the drift).
        dtype, device: of the particles.
        record_trajectory: keep ``x_k`` (before resampling at step k) for every k.
        weight_window: ``(t_hi, t_lo)``: only steps with ``t_lo <= t_{k+1} < t_k <= t_hi`` get a
            log-potential (others get 0; the initial weight needs ``t_hi = 1``). The default
            ``(1, 0)`` is the exact corrector; a narrower window is an approximation (see
            :func:`sample`).
        moves: Langevin moves on ``pi_{t_k}`` after the resampling decision at ``t_k`` and
            before the SDE step (see :mod:`fkc.sampler.moves`); None: no moves.
        weights: ``"fkc"`` (the continuous-time rate above), ``"density"`` (the discrete-time
            weights of :mod:`fkc.sampler.density_weights`; needs every expert's log density and
            ``a > 0``) or ``"ais"`` (no SDE step; log-density ratios at fixed points and MCMC
            moves; needs log densities and moves at every step).
    """

    def __init__(self, target: Composition, times: torch.Tensor, a: float, weighted: bool,
                 dtype: torch.dtype, device: torch.device, record_trajectory: bool = False,
                 weight_window: tuple[float, float] = (1.0, 0.0), moves: MoveConfig | None = None,
                 weights: str = "fkc", x_start: torch.Tensor | None = None,
                 log_w_start: torch.Tensor | None = None):
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        # density: the potentials need log pi_t (weights "density" and "ais"); ais: no SDE step
        self.density = weighted and weights != "fkc"
        self.ais = weighted and weights == "ais"
        if self.density and not target.has_log_density:
            missing = [type(e).__name__ for e, _ in target.terms if not e.has_log_density]
            raise ValueError(f"weights={weights!r} needs a log density for every expert, but "
                             f"{missing} have none (score-only networks): use weights='fkc'")
        if self.ais and (moves is None or moves.n == 0 or moves.window != (1.0, 0.0)):
            raise ValueError("weights='ais' moves the particles only by MCMC: it needs "
                             "mcmc_steps > 0 at every step (full mcmc_window)")
        if self.density and not self.ais:
            self.kernels = backward_kernels(target, times, a)
            self.n_free = target.process.space.n_free(target.event_shape)
        self.target = target
        self.times = times
        self.n_steps = times.numel() - 1
        self.a = a
        self.weighted = weighted
        self.dtype = dtype
        self.device = device
        self.trajectory: list[torch.Tensor] | None = [] if record_trajectory else None
        # g^2 and div f on the whole grid at once (shared by all particles)
        self.coef = coefficients(target, times)
        t_hi, t_lo = weight_window
        tk = times.tolist()
        # weights_on[k]: the step k -> k+1 carries a log-potential
        self.weights_on = [weighted and t_lo <= tk[k + 1] and tk[k] <= t_hi
                           for k in range(self.n_steps)]
        self.initial_weight = weighted and t_hi >= 1.0 and x_start is None
        self.x_start, self.log_w_start = x_start, log_w_start
        self.moves = moves if moves is not None and moves.n > 0 else None
        if self.moves is not None:
            self.moves.check(target)
        self.sigma2 = target.process.sigma2(times.to(torch.float64)).tolist()
        # acceptance[k], step_sizes[k]: mean MCMC acceptance and the relative step size of the
        # moves at t_k (NaN: no moves there); _step_size: the current (adapted) one
        self.acceptance = [math.nan] * (self.n_steps + 1)
        self.step_sizes = [math.nan] * (self.n_steps + 1)
        self._step_size = moves.step_size if self.moves is not None else math.nan
        self._t_last: tuple[int, int, torch.Tensor] | None = None

    def describe_step(self, k: int) -> str:
        return f"step {k} of {self.n_steps} (t={float(self.times[k]):.4f})"

    def _t(self, k: int, n: int) -> torch.Tensor:
        """``t_k`` for every particle, ``(n,)`` (what experts take). The same tensor is returned
        until ``k`` or ``n`` changes, so an energy model's cache (energy of the last score call,
        keyed by the argument tensors) serves the log densities at ``t_k``."""
        if self._t_last is None or self._t_last[:2] != (k, n):
            t = torch.full((n,), float(self.times[k]), dtype=self.dtype, device=self.device)
            self._t_last = (k, n, t)
        return self._t_last[2]

    def _weighted_at(self, k: int) -> bool:
        """A step's potential uses ``t_k`` (as its start or its end)."""
        return (k < self.n_steps and self.weights_on[k]) or (k > 0 and self.weights_on[k - 1])

    def _needs_rate(self, k: int) -> bool:
        """The FKC log-weight rate at ``t_k`` enters a step's potential."""
        return not self.density and self._weighted_at(k)

    def _log_p(self, k: int, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
        """``log pi_{t_k}(x)`` ``(n,)`` float64 where a density weight needs it, else None (called
        right after the scores at the same ``x`` and ``t`` tensors, so an energy model reuses
        that pass)."""
        if not (self.density and self._weighted_at(k)):
            return None
        return self.target.log_density(x, t).to(torch.float64)

    def _evaluate(self, k: int, x: torch.Tensor) -> _State:
        """Scores (and, where a potential needs them, the log-weight rate or log density) at
        ``x_k``."""
        t = self._t(k, x.shape[0])
        need = self._needs_rate(k)
        terms = score_terms(self.target, x, t, weighted=need)
        h = log_weight_rate(self.target, self.coef[k], terms) if need else None
        return _State(x=x, S=terms.S, sq=terms.sq, h=h, log_p=self._log_p(k, x, t))

    def _move(self, k: int, state: _State, generator: torch.Generator) -> _State:
        """Langevin moves on ``pi_{t_k}``; scores, log-weight rate and log density follow the
        moved points."""
        need = self._needs_rate(k)
        t = self._t(k, state.x.shape[0])
        res = langevin_moves(self.target, state.x, t,
                             ScoreTerms(S=state.S, sq=state.sq), self.sigma2[k], self.moves,
                             weighted=need, generator=generator, step_size=self._step_size,
                             log_p=state.log_p)
        self.acceptance[k], self.step_sizes[k] = res.acceptance, self._step_size
        self._step_size = self.moves.adapted(self._step_size, res.acceptance)
        h = log_weight_rate(self.target, self.coef[k], res.terms) if need else None
        # MALA tracks log pi_t at the moved points; after ULA an energy model's cache has it
        log_p = res.log_p if res.log_p is not None else self._log_p(k, res.x, t)
        if not (self.density and self._weighted_at(k)):
            log_p = None
        return _State(x=res.x, S=res.terms.S, sq=res.terms.sq, h=h, log_p=log_p)

    def _record(self, x: torch.Tensor) -> None:
        if self.trajectory is not None:
            self.trajectory.append(x.detach().clone())

    def initial(self, n_particles: int, generator: torch.Generator):
        proc, B = self.target.process, self.target.total
        if self.x_start is not None:
            x = proc.space.project(self.x_start.to(dtype=self.dtype, device=self.device))
        else:
            x = proc.sample_prior(n_particles, self.target.event_shape, generator,
                                  dtype=self.dtype, device=self.device, precision=B)
        self._record(x)
        state = self._evaluate(0, x)
        log_g = torch.zeros(n_particles, dtype=torch.float64, device=x.device)
        if self.log_w_start is not None:
            log_g = self.log_w_start.to(dtype=torch.float64, device=x.device)
        if self.initial_weight:
            x64 = x.to(torch.float64)
            if self.target.has_log_density:
                log_pi1 = self.target.log_density(x, self._t(0, n_particles)).to(torch.float64)
            else:
                log_pi1 = B * proc.prior_log_prob(x64, 1.0)
            log_g = log_pi1 - proc.prior_log_prob(x64, B)
        return state, log_g

    def step(self, k: int, state: _State, generator: torch.Generator):
        c = self.coef[k]
        dtau = float(self.times[k] - self.times[k + 1])
        if self.moves is not None and self.moves.active(float(self.times[k])):
            state = self._move(k, state, generator)
        x = state.x
        if self.ais:  # annealed importance sampling: reweight at fixed points, no SDE step
            self._record(x)
            new = self._evaluate(k + 1, x)
            if not self.weights_on[k]:
                return new, torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
            return new, new.log_p - state.log_p
        # Euler-Maruyama step of the reverse SDE with the scores cached at x_k.
        drift = reverse_drift(self.target, x, c, ScoreTerms(S=state.S, sq=None), self.a)
        x_new = x + drift * dtau
        z = None
        if self.a > 0:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x_new = x_new + (noise_std(c, self.a) * math.sqrt(dtau)) * z
        project = self.target.process.space.project
        x_new = project(x_new)
        self._record(x_new)
        if not self.weights_on[k]:
            zero = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
            last = k + 1 == self.n_steps
            return (_State(x=x_new) if last else self._evaluate(k + 1, x_new)), zero
        new = self._evaluate(k + 1, x_new)
        if self.density:
            return new, step_log_weight(x, x_new, project(z), state.log_p, new.log_p,
                                        noise_var=self.a * c.g2 * dtau, kernel=self.kernels[k],
                                        n_free=self.n_free)
        # Trapezoidal rule for the integral of the log-weight rate over [t_{k+1}, t_k].
        return new, 0.5 * (state.h + new.h) * dtau


@dataclass
class SampleResult:
    """Output of :func:`sample`.

    samples: ``(n_particles, *event_shape)``; log_weights: ``(n_particles,)`` float64 (zeros after
    a final resampling); log_z: estimate of ``log int pi_{t_min}`` (NaN when ``correct=False``);
    times: ``(n_steps + 1,)``; ess, resampled, n_unique, n_dead: ``(n_steps + 1,)`` per-step
    diagnostics (entry k before the resampling decision at ``t_k``; the last entry is the end
    of the run and its ``resampled`` flag is the final resampling); ancestors: list of index
    tensors or None; trajectory: ``(n_steps + 1, n_particles, *event_shape)`` or None
    (positions before resampling at each time); seed: the generator's initial seed;
    acceptance: ``(n_steps + 1,)`` float64 mean MCMC acceptance of the moves at each ``t_k``
    (NaN where none ran; 1 for ULA), None without moves; moves_per_particle: MCMC moves made by
    each particle (each one score evaluation per expert); mcmc_step_sizes: ``(n_steps + 1,)``
    relative step size used at each ``t_k`` (adapted with ``mcmc_adapt``), None without moves.
    """

    samples: torch.Tensor
    log_weights: torch.Tensor
    log_z: float
    times: torch.Tensor
    ess: torch.Tensor
    resampled: torch.Tensor
    n_unique: torch.Tensor
    n_dead: torch.Tensor
    log_z_increments: torch.Tensor
    ancestors: list
    trajectory: torch.Tensor | None
    seed: int
    noise_level: float
    corrected: bool
    acceptance: torch.Tensor | None = None
    moves_per_particle: int = 0
    mcmc_step_sizes: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor:
        """Normalised weights ``(n_particles,)`` float64."""
        return torch.softmax(self.log_weights, dim=0)


def time_grid(n_steps: int, t_min: float = 1e-3, kind: str = "uniform", process=None,
              rho: float = 7.0, t_max: float = 1.0) -> torch.Tensor:
    """Decreasing time grid ``(n_steps + 1,)`` float64 from ``t_max`` (default 1) to ``t_min``.

    ``kind="uniform"``: equal steps in t. ``kind="edm"``: equal steps in ``lambda^(1/rho)`` where
    ``lambda(t) = sigma(t) / alpha(t)`` is the noise-to-signal ratio of ``process`` (Karras et
    al. 2022, rho = 7), i.e. small steps where the noise is small; t is found by monotone
    interpolation of ``lambda`` on a dense grid.
    """
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"the time grid needs 0 <= t_min < t_max <= 1, got t_min={t_min}, "
                         f"t_max={t_max}")
    if kind == "uniform":
        return torch.linspace(t_max, t_min, n_steps + 1, dtype=torch.float64)
    if kind != "edm":
        raise ValueError(f"time grid kind must be 'uniform' or 'edm', got {kind!r}")
    if process is None:
        raise ValueError("an 'edm' time grid needs the noise process")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    lo = max(t_min, 1e-6)
    dense = torch.logspace(math.log10(lo), math.log10(t_max), 20001, dtype=torch.float64)
    lam = (process.sigma(dense) / process.alpha(dense)).to(torch.float64)
    if not bool((lam[1:] > lam[:-1]).all()):
        raise ValueError("the process's sigma/alpha is not increasing in t; use kind='uniform'")
    r = torch.linspace(float(lam[-1]) ** (1 / rho), float(lam[0]) ** (1 / rho), n_steps + 1,
                       dtype=torch.float64) ** rho
    # invert lambda(t) by linear interpolation in log t
    idx = torch.searchsorted(lam, r).clamp(1, lam.numel() - 1)
    l0, l1 = lam[idx - 1], lam[idx]
    u0, u1 = dense[idx - 1].log(), dense[idx].log()
    t = torch.exp(u0 + (r - l0) / (l1 - l0) * (u1 - u0))
    t[0], t[-1] = t_max, t_min
    return t


def sample(
    target: Expert,
    n_particles: int,
    n_steps: int = 500,
    noise: str | float = "target",
    resample: str = "systematic",
    ess_threshold: float = 0.5,
    resample_window: tuple[float, float] = (1.0, 0.0),
    final_resample: bool = True,
    correct: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    return_trajectory: bool = False,
    t_min: float = 1e-3,
    grid: str = "uniform",
    weight_window: tuple[float, float] = (1.0, 0.0),
    denoise: bool = False,
    mcmc_steps: int = 0,
    mcmc: str = "mala",
    mcmc_step_size: float = 0.5,
    mcmc_window: tuple[float, float] = (1.0, 0.0),
    mcmc_adapt: bool = False,
    weights: str = "fkc",
    x_start: torch.Tensor | None = None,
    t_start: float = 1.0,
    log_weights_start: torch.Tensor | None = None,
) -> SampleResult:
    """Sample ``pi = prod_i q_i^{b_i}`` with the Feynman-Kac corrected SDE and SMC.

    Args:
        target: a :class:`~fkc.compose.Composition` (``fkc.anneal``, ``fkc.product`` ...) or an
            expert.
        n_particles: number of particles ``n``.
        n_steps: Euler-Maruyama steps from ``t = 1`` to ``t_min``.
        noise: ``"target"`` (target-score SDE), ``"tempered"`` (tempered noise) or a noise level
            ``a >= 0`` (0: probability-flow ODE with weights).
        resample: ``"systematic"``, ``"stratified"``, ``"multinomial"`` or ``"residual"``.
        ess_threshold: resample when ESS < threshold * n (1: every step; 0: never).
        resample_window: ``(t_hi, t_lo)``: resample only at times ``t_lo <= t_k <= t_hi``.
        final_resample: resample once more at the end (returns equally weighted samples).
        correct: False runs the uncorrected sampler with the same drift and noise, no weights
            and no resampling (the baseline).
        generator: ``torch.Generator`` on ``device``; None makes a freshly seeded one (its seed is
            in the result).
        device, dtype: of the particles (weights are float64).
        progress: show a progress bar.
        return_trajectory: also return every intermediate ``x_k``.
        t_min: last time of the grid (> 0 keeps networks away from the singular ``t = 0``).
        grid: ``"uniform"`` or ``"edm"`` (steps dense at small noise; see :func:`time_grid`).
        weight_window: ``(t_hi, t_lo)``: accumulate log-weights only over ``[t_lo, t_hi]``; outside
            it the particles follow the composed SDE unweighted. ``(1, 0)`` (default) is the
            exact corrector. A window with ``t_lo > 0`` is an approximation that stops the
            correction where a learned score is least reliable (the rate contains
            ``g^2/2 (|S|^2 - sum b_i |s_i|^2)``, in which squared score errors enter with a
            positive sign); it is biased, so use it knowingly and check against a reference.
        denoise: replace the final particles by their posterior mean
            (:func:`fkc.compose.tweedie_denoise`; one more score evaluation per particle),
            removing the ``sigma(t_min)`` noise left at the end of the grid.
        mcmc_steps: Langevin moves per step on the current target ``pi_{t_k}``, made after the
            resampling decision (resample-move; :mod:`fkc.sampler.moves`). In tens of dimensions
            FKC needs them: without moves the weights of an annealed target degenerate even
            with exact scores. Each move costs one evaluation of every expert.
        mcmc: ``"mala"`` (Metropolis-adjusted, exact; needs every expert's log density) or
            ``"ula"`` (unadjusted; scores only; ``O(step)`` bias).
        mcmc_step_size: Langevin step relative to ``sigma_t^2 / B``.
        mcmc_window: ``(t_hi, t_lo)``: moves only at times ``t_lo <= t_k <= t_hi``.
        mcmc_adapt: tune the MALA step size along the run to an acceptance rate of 0.57
            (``mcmc_step_size`` is the initial value; :mod:`fkc.sampler.moves`).
        weights: ``"fkc"`` (default): the continuous-time FKC weights (trapezoidal rule; exact as
            ``n_steps`` grows; scores suffice). ``"density"``: discrete-time SMC weights from the
            experts' log densities (:mod:`fkc.sampler.density_weights`): exact for any
            ``n_steps``, free of the ``|s|^2`` term; needs every expert's log density (exact
            experts, energy-parameterised networks) and ``noise > 0``. ``"ais"``: annealed
            importance sampling along the same targets ``pi_{t_k}``, no SDE step: weights
            ``pi_{k+1}(x) / pi_k(x)`` at fixed points and ``mcmc_steps`` MCMC moves on
            ``pi_{t_k}`` at every step (required) are all that moves the particles. All options
            are ignored by the uncorrected sampler (``correct=False``).
        x_start: ``(n_particles, *event_shape)`` particles at time ``t_start`` to continue from
            (samples of ``pi_{t_start}``, e.g. from :func:`fkc.temper`), with log-weights
            ``log_weights_start: (n_particles,)`` (None: equal). Default: the prior at ``t = 1``.
        t_start: the first time of the grid (``t_min < t_start <= 1``); below 1 it needs
            ``x_start``.

    Returns:
        :class:`SampleResult`.
    """
    if not isinstance(target, Expert):
        raise ValueError(f"target must be an Expert or a Composition, got {type(target).__name__}")
    comp = as_composition(target)
    if not (isinstance(n_particles, int) and n_particles >= 1):
        raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if not 0.0 <= t_min < 1.0:
        raise ValueError(f"t_min must be in [0, 1), got {t_min}")
    t_hi, t_lo = (float(v) for v in resample_window)
    if not 0.0 <= t_lo <= t_hi <= 1.0:
        raise ValueError(f"resample_window must be (t_hi, t_lo) with 0 <= t_lo <= t_hi <= 1, got {resample_window}")
    w_hi, w_lo = (float(v) for v in weight_window)
    if not 0.0 <= w_lo <= w_hi <= 1.0:
        raise ValueError(f"weight_window must be (t_hi, t_lo) with 0 <= t_lo <= t_hi <= 1, got {weight_window}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    if not t_min < float(t_start) <= 1.0:
        raise ValueError(f"t_start must be in (t_min, 1] = ({t_min}, 1], got {t_start}")
    if x_start is None and (float(t_start) < 1.0 or log_weights_start is not None):
        raise ValueError("t_start < 1 and log_weights_start need x_start (particles at t_start)")
    if x_start is not None:
        want = (n_particles, *comp.event_shape)
        if not isinstance(x_start, torch.Tensor) or tuple(x_start.shape) != want:
            got = tuple(x_start.shape) if isinstance(x_start, torch.Tensor) else type(x_start).__name__
            raise ValueError(f"x_start must have shape (n_particles, *event_shape) = {want}, got {got}")
        if not bool(torch.isfinite(x_start).all()):
            raise ValueError("x_start has non-finite entries")
        if log_weights_start is not None and tuple(log_weights_start.shape) != (n_particles,):
            raise ValueError(f"log_weights_start must have shape ({n_particles},), got "
                             f"{tuple(log_weights_start.shape)}")
    a = noise_level(noise, comp)
    moves = MoveConfig(n=mcmc_steps, kind=mcmc, step_size=mcmc_step_size,
                       window=tuple(float(v) for v in mcmc_window),
                       adapt=mcmc_adapt)  # checked by the FK model
    device = torch.device(device) if device is not None else torch.device("cpu")
    if generator is None:
        generator = torch.Generator(device=device)
        generator.seed()
    elif generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but device is {device}")
    seed = generator.initial_seed()

    times = time_grid(n_steps, t_min, grid, comp.process, t_max=float(t_start))
    model = DiffusionFKModel(comp, times, a, weighted=correct, dtype=dtype, device=device,
                             record_trajectory=return_trajectory, weight_window=(w_hi, w_lo),
                             moves=moves, weights=weights,
                             x_start=None if x_start is None else x_start.detach(),
                             log_w_start=log_weights_start)
    tk = times.tolist()
    smc = SMC(
        model,
        n_particles,
        resample=resample,
        ess_threshold=ess_threshold if correct else 0.0,
        resample_when=lambda k: t_lo <= tk[k] <= t_hi,
        final_resample=final_resample and correct,
        generator=generator,
        progress=progress,
        progress_desc="FKC" if correct else "uncorrected",
    )
    out = smc.run()
    x_final = out.state.x
    if denoise:
        t_end = model._t(model.n_steps, x_final.shape[0])
        S_end = score_terms(comp, x_final, t_end, weighted=False).S.detach()
        x_final = tweedie_denoise(comp, x_final, t_end, S_end)
    traj = torch.stack(model.trajectory) if return_trajectory else None
    return SampleResult(
        samples=x_final,
        log_weights=out.log_weights,
        log_z=float(out.log_z) if correct else float("nan"),
        times=times,
        ess=out.ess,
        resampled=out.resampled,
        n_unique=out.n_unique,
        n_dead=out.n_dead,
        log_z_increments=out.log_z_increments,
        ancestors=out.ancestors,
        trajectory=traj,
        seed=seed,
        noise_level=a,
        corrected=correct,
        acceptance=(torch.tensor(model.acceptance, dtype=torch.float64)
                    if model.moves is not None else None),
        mcmc_step_sizes=(torch.tensor(model.step_sizes, dtype=torch.float64)
                         if model.moves is not None else None),
        moves_per_particle=(0 if model.moves is None else
                            model.moves.n * sum(not math.isnan(a) for a in model.acceptance)),
    )
