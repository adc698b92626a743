r"""SMC tempering at a fixed diffusion time: anneal in the exponents, not in ``t``.

The diffusion samplers of :mod:`fkc.sampler.diffusion` decide between basins at large ``t``,
where a handful of particles carry the weight: on a real molecule the weights degenerate early
and every run ends in one basin (alanine dipeptide, README). When the experts have log densities,
the same target can be reached along a path at one small time ``t`` instead (Neal 2001; Chopin
2002; Del Moral, Doucet & Jasra 2006), where the densities are sharp and MCMC moves mix within
basins. The geometric path from a start composition ``pi_S = prod_i q_{i,t}^{s_i}`` to the target
``pi_T = prod_i q_{i,t}^{b_i}`` is

    log pi_lambda(x) = (1 - lambda) log pi_S(x) + lambda log pi_T(x)
                     = sum_i c_i(lambda) log q_{i,t}(x),   c_i(lambda) = (1 - lambda) s_i + lambda b_i,

for ``0 = lambda_0 < lambda_1 < ... < lambda_K = 1`` (for ``fkc.anneal(q, beta)`` from ``q``:
``q^(1 + lambda (beta - 1))``, a temperature ladder). Particles start from (weighted) samples of
``pi_S`` (e.g. the model's own reverse SDE at ``beta = 1``, which needs no correction). Step
``k -> k + 1`` (resample-move):

* ``n`` MALA moves on ``pi_{lambda_k}`` (:mod:`fkc.sampler.moves`; exactly invariant, so the
  weights stay valid), then
* reweight ``log G_{k+1}(x) = log pi_{lambda_{k+1}}(x) - log pi_{lambda_k}(x) = (lambda_{k+1} -
  lambda_k) D(x)``, ``D = log pi_T - log pi_S``,

with resampling when the ESS falls below the threshold (:class:`fkc.smc.SMC`). The weighted
particles target ``pi_{lambda_k}`` after every step and ``log_z`` estimates
``log (int pi_T / int pi_S)`` (plus the log mean of the initial weights). Across basins the
particles do not move; the weights carry each basin's share, as a ratio of basin normalisers that
many particles per basin estimate well. The ladder decides the weight variance per step: for
``D`` with standard deviation ``sd`` under ``pi_lambda``, one step costs a factor about
``exp(-(dlambda sd)^2)`` of ESS; ``schedule="geometric"`` spaces the total exponent
``B(lambda) = sum_i c_i`` geometrically (equal steps in ``log beta``: a constant ESS cost per step
for a harmonic well, whose energy sd scales as ``1 / beta``).

The weights correct only the change from ``pi_S`` to ``pi_T``: the start must already be
``pi_S``, across basins (whose shares carry over) and within them (a basin whose start samples
sit too high in energy loses weight it should keep). Before the first reweighting ``burn_in``
single MALA moves on ``pi_S`` (each followed by step-size
adaptation) relax start samples that are only approximately from ``pi_S``; after the final
resampling ``mcmc_steps`` more moves on ``pi_T`` spread the resampled copies.

For molecules, Metropolis torsion moves (:mod:`fkc.sampler.torsion_moves`: rigid rotations about
rotatable bonds, also invariant for ``pi_lambda``) before every block of MALA moves carry
particles across the torsional barriers between basins, so the basin shares no longer rest on the
start and the weights alone: with them, a start that is only approximately ``pi_S`` across basins
relaxes during burn-in, and the shares keep equilibrating along the path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..compose.algebra import Composition, as_composition
from ..compose.corrector import ScoreTerms
from ..experts.base import Expert
from ..smc import SMC, FeynmanKacModel
from .moves import MoveConfig, langevin_moves
from .torsion_moves import TorsionSet, torsion_moves

SCHEDULES = ("geometric", "linear")


def tempering_schedule(n_steps: int, kind: str = "geometric", b_start: float = 1.0,
                       b_end: float = 1.0) -> torch.Tensor:
    """``(n_steps + 1,)`` float64 increasing ``lambda`` from 0 to 1.

    ``"linear"``: equal steps in lambda. ``"geometric"``: the total exponent
    ``B = (1 - lambda) b_start + lambda b_end`` is geometric from ``b_start`` to ``b_end`` (both
    > 0); equal totals fall back to linear.
    """
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if kind not in SCHEDULES:
        raise ValueError(f"tempering schedule must be one of {SCHEDULES}, got {kind!r}")
    lin = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
    if kind == "linear" or math.isclose(b_start, b_end):
        return lin
    if not (b_start > 0 and b_end > 0):
        raise ValueError(f"a geometric schedule needs positive total exponents, got {b_start} "
                         f"and {b_end}")
    b = b_start * (b_end / b_start) ** lin
    lam = (b - b_start) / (b_end - b_start)
    lam[0], lam[-1] = 0.0, 1.0
    return lam


@dataclass
class _State:
    """Particles ``x: (n, *event_shape)``, every expert's score ``scores: (n, m, *event_shape)``
    and log density ``log_q: (n, m)`` float64 at them (``m`` distinct experts)."""

    x: torch.Tensor
    scores: torch.Tensor
    log_q: torch.Tensor


class TemperingFKModel(FeynmanKacModel):
    """Feynman-Kac model of the tempering path of the module docstring.

    Args:
        start, target: compositions with one noise process and event shape, every expert with a
            log density.
        x0: ``(n, *event_shape)`` start particles (samples of ``pi_S``; projected on the free
            subspace); log_w0: ``(n,)`` their log-weights or None.
        t: the diffusion time of the path (``sigma_t > 0``: the MALA step scales with
            ``sigma_t^2``).
        lambdas: ``(K + 1,)`` float64 increasing from 0 to 1.
        moves: MALA moves per step (``moves.n >= 1``, ``kind="mala"``).
        burn_in: single MALA moves on ``pi_S`` before the first reweighting.
        torsions, torsion_steps, max_angle: ``torsion_steps`` Metropolis torsion moves
            (:mod:`fkc.sampler.torsion_moves`) on ``pi_lambda`` before every block of MALA moves
            (and before every burn-in move); they carry particles across torsional barriers.
    """

    def __init__(self, start: Composition, target: Composition, x0: torch.Tensor,
                 log_w0: torch.Tensor | None, t: float, lambdas: torch.Tensor, moves: MoveConfig,
                 burn_in: int = 0, torsions: TorsionSet | None = None, torsion_steps: int = 0,
                 max_angle: float = math.pi):
        experts: list[Expert] = []
        for e, _ in (*start.terms, *target.terms):
            if not any(e is f for f in experts):
                experts.append(e)
        missing = [type(e).__name__ for e in experts if not e.has_log_density]
        if missing:
            raise ValueError(f"tempering needs a log density for every expert, but {missing} "
                             "have none (score-only networks)")
        if start.process != target.process or start.event_shape != target.event_shape:
            raise ValueError(f"start and target must share the noise process and event shape, got "
                             f"{start.process}, {start.event_shape} and {target.process}, "
                             f"{target.event_shape}")
        if moves.n < 1 or moves.kind != "mala":
            raise ValueError(f"tempering moves the particles only by MALA: it needs mcmc_steps >= 1 "
                             f"and kind 'mala', got {moves.n} and {moves.kind!r}")
        if not (isinstance(burn_in, int) and burn_in >= 0):
            raise ValueError(f"burn_in must be an integer >= 0, got {burn_in!r}")
        if not (isinstance(torsion_steps, int) and torsion_steps >= 0):
            raise ValueError(f"torsion_steps must be an integer >= 0, got {torsion_steps!r}")
        if torsion_steps and torsions is None:
            raise ValueError(f"torsion_steps={torsion_steps} needs torsions (a TorsionSet)")
        if torsions is not None and (len(target.event_shape) != 2 or target.event_shape[-1] != 3
                                     or target.event_shape[0] != torsions.n_atoms):
            raise ValueError(f"torsions of a {torsions.n_atoms}-atom molecule do not fit the "
                             f"event shape {tuple(target.event_shape)}")
        if not (0 < max_angle <= math.pi):
            raise ValueError(f"max_angle must lie in (0, pi], got {max_angle!r}")
        self.experts = experts
        self.process = target.process
        self.event_shape = tuple(target.event_shape)

        def exps(c: Composition) -> torch.Tensor:
            v = torch.zeros(len(experts), dtype=torch.float64)
            for e, b in c.terms:
                v[next(i for i, f in enumerate(experts) if f is e)] += b
            return v

        self.s, self.b = exps(start), exps(target)
        shape = (x0.shape[0], *self.event_shape) if x0.dim() >= 1 else None
        if tuple(x0.shape) != shape:
            raise ValueError(f"x0 must have shape (n_particles, *{self.event_shape}), got "
                             f"{tuple(x0.shape)}")
        if not bool(torch.isfinite(x0).all()):
            raise ValueError("x0 has non-finite entries")
        if log_w0 is not None and tuple(log_w0.shape) != (x0.shape[0],):
            raise ValueError(f"log_w0 must have shape ({x0.shape[0]},), got {tuple(log_w0.shape)}")
        lam = lambdas.to(torch.float64)
        if lam.dim() != 1 or lam.numel() < 2 or float(lam[0]) != 0.0 or float(lam[-1]) != 1.0 \
                or not bool((lam[1:] > lam[:-1]).all()):
            raise ValueError(f"lambdas must increase strictly from 0 to 1, got {lam.tolist()}")
        self.lambdas = lam
        self.n_steps = lam.numel() - 1
        self.x0 = self.process.space.project(x0)
        self.log_w0 = log_w0
        self.dtype, self.device = x0.dtype, x0.device
        self.t = float(t)
        self.sigma2 = float(self.process.sigma2(torch.tensor(self.t, dtype=torch.float64)))
        if not (self.t > 0 and self.sigma2 > 0):
            raise ValueError(f"tempering needs a time t with sigma_t > 0 (the MALA step scales "
                             f"with sigma_t^2), got t={t}")
        self.moves = moves
        self.burn_in = burn_in
        self.torsions = torsions if torsion_steps else None
        self.torsion_steps, self.max_angle = torsion_steps, float(max_angle)
        self.acceptance = [math.nan] * (self.n_steps + 1)
        self.torsion_acceptance = [math.nan] * (self.n_steps + 1)
        self._torsion_acc = math.nan
        self.step_sizes = [math.nan] * (self.n_steps + 1)
        self._step_size = moves.step_size
        self._t_cache: tuple[int, torch.Tensor] | None = None

    def describe_step(self, k: int) -> str:
        return f"step {k} of {self.n_steps} (lambda={float(self.lambdas[k]):.4f})"

    def coefficients(self, lam: float) -> torch.Tensor:
        """``c(lambda) = (1 - lambda) s + lambda b``, ``(m,)`` float64."""
        return (1.0 - lam) * self.s + lam * self.b

    def composition(self, lam: float) -> Composition:
        """``pi_lambda`` as a composition."""
        return Composition([(e, float(c)) for e, c in zip(self.experts, self.coefficients(lam),
                                                          strict=True)])

    def _tt(self, n: int) -> torch.Tensor:
        """The time for ``n`` particles, ``(n,)``; one tensor per ``n`` (energy-model caches)."""
        if self._t_cache is None or self._t_cache[0] != n:
            self._t_cache = (n, torch.full((n,), self.t, dtype=self.dtype, device=self.device))
        return self._t_cache[1]

    def _evaluate(self, x: torch.Tensor) -> _State:
        t = self._tt(x.shape[0])
        scores, log_q = [], []
        for e in self.experts:
            scores.append(e.score(x, t).detach())
            log_q.append(e.log_density(x, t).detach().to(torch.float64))
        return _State(x=x, scores=torch.stack(scores, 1), log_q=torch.stack(log_q, 1))

    def _composed(self, state: _State, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S, log pi_lambda)`` at the particles: ``(n, *event_shape)`` and ``(n,)``."""
        c = self.coefficients(lam)
        shape = (1, -1) + (1,) * len(self.event_shape)
        S = (state.scores * c.to(state.scores.dtype).to(self.device).reshape(shape)).sum(1)
        return S, state.log_q @ c.to(self.device)

    def _move(self, state: _State, lam: float, n: int, generator: torch.Generator) -> tuple[_State, float]:
        """Torsion moves (if any), then ``n`` MALA moves on ``pi_lambda``; returns the moved state
        and the MALA acceptance (the torsion acceptance goes to ``self._torsion_acc``)."""
        if self.torsions is not None:
            comp, t = self.composition(lam), self._tt(state.x.shape[0])

            def log_density(y):
                with torch.no_grad():
                    return comp.log_density(y, t)

            res = torsion_moves(log_density, state.x,
                                self._composed(state, lam)[1], self.torsions, self.torsion_steps,
                                generator, self.max_angle, self.process.space.project)
            self._torsion_acc = res.acceptance
            if bool(res.changed.any()):
                state = self._evaluate(res.x)
        S, log_p = self._composed(state, lam)
        config = MoveConfig(n=n, kind="mala", step_size=self._step_size)
        res = langevin_moves(self.composition(lam), state.x, self._tt(state.x.shape[0]),
                             ScoreTerms(S=S, sq=None), self.sigma2, config, weighted=False,
                             generator=generator, log_p=log_p)
        self._step_size = self.moves.adapted(self._step_size, res.acceptance)
        if len(self.experts) == 1:  # one expert: its score and log density follow from pi_lambda
            c = float(self.coefficients(lam)[0])
            return _State(x=res.x, scores=(res.terms.S / c).unsqueeze(1),
                          log_q=(res.log_p / c).unsqueeze(1)), res.acceptance
        return self._evaluate(res.x), res.acceptance

    def initial(self, n_particles: int, generator: torch.Generator):
        if n_particles != self.x0.shape[0]:
            raise ValueError(f"{self.x0.shape[0]} start particles, but the SMC runs {n_particles}")
        state = self._evaluate(self.x0)
        for _ in range(self.burn_in):
            state, _ = self._move(state, 0.0, 1, generator)
        log_g = (self.log_w0.to(torch.float64) if self.log_w0 is not None
                 else torch.zeros(n_particles, dtype=torch.float64, device=self.device))
        return state, log_g

    def step(self, k: int, state: _State, generator: torch.Generator):
        lam, lam_next = float(self.lambdas[k]), float(self.lambdas[k + 1])
        self.step_sizes[k] = self._step_size
        state, self.acceptance[k] = self._move(state, lam, self.moves.n, generator)
        self.torsion_acceptance[k] = self._torsion_acc
        return state, (lam_next - lam) * (state.log_q @ (self.b - self.s).to(self.device))

    def final_moves(self, state: _State, generator: torch.Generator) -> _State:
        """``moves.n`` MALA moves on ``pi_T`` (after the final resampling)."""
        self.step_sizes[-1] = self._step_size
        state, self.acceptance[-1] = self._move(state, 1.0, self.moves.n, generator)
        self.torsion_acceptance[-1] = self._torsion_acc
        return state


@dataclass
class TemperingResult:
    """Output of :func:`temper`.

    samples: ``(n, *event_shape)``; log_weights: ``(n,)`` float64 (zeros after a final
    resampling); log_z: estimate of ``log (int pi_T / int pi_S)`` plus the log mean of the initial
    weights; lambdas: ``(K + 1,)``; exponents: ``(K + 1, m)`` float64 ``c(lambda_k)`` of the
    distinct experts; ess, resampled, n_unique, n_dead, log_z_increments: ``(K + 1,)`` per-step
    diagnostics (entry k before the resampling decision at ``lambda_k``); acceptance,
    mcmc_step_sizes: ``(K + 1,)`` MALA acceptance and relative step size of the moves at
    ``lambda_k`` (the last entry: the final moves on ``pi_T``); moves_per_particle: MALA moves
    per particle including burn-in (each one evaluation of every expert; with several distinct
    experts each block of moves costs one more evaluation, to split the scores per expert);
    torsion_acceptance: ``(K + 1,)`` acceptance of the torsion moves at ``lambda_k`` (NaN
    without them); torsion_moves_per_particle: torsion moves per particle including burn-in
    (each one log-density evaluation, plus one full evaluation per block that moved); seed.
    """

    samples: torch.Tensor
    log_weights: torch.Tensor
    log_z: float
    lambdas: torch.Tensor
    exponents: torch.Tensor
    ess: torch.Tensor
    resampled: torch.Tensor
    n_unique: torch.Tensor
    n_dead: torch.Tensor
    log_z_increments: torch.Tensor
    acceptance: torch.Tensor
    mcmc_step_sizes: torch.Tensor
    moves_per_particle: int
    seed: int
    torsion_acceptance: torch.Tensor | None = None
    torsion_moves_per_particle: int = 0


def temper(target: Expert, x0: torch.Tensor, *, start: Expert | None = None, t: float = 1e-3,
           n_steps: int = 100, schedule: str = "geometric", log_weights: torch.Tensor | None = None,
           mcmc_steps: int = 5, mcmc_step_size: float = 0.5, mcmc_adapt: bool = True,
           burn_in: int = 0, final_moves: bool = True, torsions: TorsionSet | None = None,
           torsion_steps: int = 0, max_angle: float = math.pi, resample: str = "systematic",
           ess_threshold: float = 0.5, final_resample: bool = True,
           generator: torch.Generator | None = None, progress: bool = True) -> TemperingResult:
    """Move samples of ``start`` to ``target`` along the tempering path at a fixed time ``t``.

    Args:
        target: the composition ``pi_T`` (``fkc.anneal(q, beta)``, ``fkc.product(...)``, ...) or
            an expert; every expert needs a log density (energy-parameterised networks, exact
            experts).
        x0: ``(n, *event_shape)`` samples of ``pi_S`` at time ``t`` (device and dtype of the run).
        start: ``pi_S``; default: the target's experts with exponents ``b_i / B`` (for
            ``fkc.anneal(q, beta)``: ``q`` itself, whose samples the model's reverse SDE gives).
        t: the diffusion time, > 0.
        n_steps: tempering steps ``K``; schedule: ``"geometric"`` or ``"linear"``
            (:func:`tempering_schedule`).
        log_weights: ``(n,)`` initial log-weights of ``x0`` (None: equal).
        mcmc_steps: MALA moves per step (>= 1); mcmc_step_size: initial step relative to
            ``sigma_t^2 / B``; mcmc_adapt: tune it to 0.57 acceptance after every block.
        burn_in: single MALA moves on ``pi_S`` before the first reweighting.
        final_moves: ``mcmc_steps`` MALA moves on ``pi_T`` after the final resampling.
        torsions, torsion_steps, max_angle: ``torsion_steps`` Metropolis torsion moves
            (:mod:`fkc.sampler.torsion_moves`, rotations uniform in ``(-max_angle,
            max_angle)`` about the bonds of ``torsions``, e.g. ``TorsionSet.from_bonds``) before
            every block of MALA moves and every burn-in move: for molecules, whose basins differ
            by torsions that MALA does not cross (``(n, n_atoms, 3)`` particles only).
        resample, ess_threshold, final_resample: as in :func:`fkc.sample`.
        generator: ``torch.Generator`` on x0's device (None: freshly seeded, seed in the result).
        progress: progress bar.
    """
    if not isinstance(target, Expert):
        raise ValueError(f"target must be an Expert or a Composition, got {type(target).__name__}")
    if not isinstance(x0, torch.Tensor) or not x0.dtype.is_floating_point:
        raise ValueError("x0 must be a floating-point tensor (n_particles, *event_shape)")
    comp = as_composition(target)
    if start is None:
        start_comp = Composition([(e, b / comp.total) for e, b in comp.terms])
    elif isinstance(start, Expert):
        start_comp = as_composition(start)
    else:
        raise ValueError(f"start must be an Expert, a Composition or None, got {type(start).__name__}")
    moves = MoveConfig(n=mcmc_steps, kind="mala", step_size=mcmc_step_size, adapt=mcmc_adapt)
    lambdas = tempering_schedule(n_steps, schedule, start_comp.total, comp.total)
    model = TemperingFKModel(start_comp, comp, x0.detach(), log_weights, t, lambdas, moves,
                             burn_in=burn_in, torsions=torsions, torsion_steps=torsion_steps,
                             max_angle=max_angle)
    if generator is None:
        generator = torch.Generator(device=x0.device)
        generator.seed()
    elif generator.device.type != x0.device.type:
        raise ValueError(f"generator is on {generator.device} but x0 is on {x0.device}")
    seed = generator.initial_seed()
    smc = SMC(model, x0.shape[0], resample=resample, ess_threshold=ess_threshold,
              final_resample=final_resample, generator=generator, progress=progress,
              progress_desc="tempering")
    out = smc.run()
    state = out.state
    if final_moves:
        state = model.final_moves(state, generator)
    moved = sum(not math.isnan(a) for a in model.acceptance)
    return TemperingResult(
        samples=state.x, log_weights=out.log_weights, log_z=float(out.log_z), lambdas=lambdas,
        exponents=torch.stack([model.coefficients(float(lam)) for lam in lambdas]),
        ess=out.ess, resampled=out.resampled, n_unique=out.n_unique, n_dead=out.n_dead,
        log_z_increments=out.log_z_increments,
        acceptance=torch.tensor(model.acceptance, dtype=torch.float64),
        mcmc_step_sizes=torch.tensor(model.step_sizes, dtype=torch.float64),
        moves_per_particle=burn_in + mcmc_steps * moved, seed=seed,
        torsion_acceptance=(torch.tensor(model.torsion_acceptance, dtype=torch.float64)
                            if model.torsions is not None else None),
        torsion_moves_per_particle=(burn_in + moved) * model.torsion_steps
        if model.torsions is not None else 0)
