r"""Generic SMC for discrete-time Feynman-Kac models: reweight -> resample -> move.

A Feynman-Kac model (:class:`FeynmanKacModel`) says *what* to simulate and how to weight it: an
initial law ``M_0`` with log-potential ``log G_0``, Markov moves ``M_{k+1}`` and log-potentials
``log G_{k+1}``. :class:`SMC` says *how*: ``n`` particles, when and how to resample. The loop is
written once in :meth:`SMC.run`.

Normalising constants (Del Moral 2004; Chopin & Papaspiliopoulos 2020, ch. 10). With normalised
weights ``W^i_k`` after the resampling decision at record ``k`` (uniform if resampled),

    log Z_0     = log (1/n sum_i G_0(x^i_0)),
    log Z_{k+1} = log Z_k + log sum_i W^i_k G_{k+1}(x^i_k, x^i_{k+1}),

and ``Z_{n_steps}`` (not its log) is an unbiased estimate of the normaliser of
``prod_j G_j`` times the path law. Those per-record terms are ``SMCResult.log_z_increments``; the
engine also accumulates ``log_mean(log_w)`` at each resampling and adds the log mean of the final
weights, which is the same number.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ._backend import check_backend
from .resampling import Resampler, get_resampler
from .state import State, take, tensor_leaves
from .weights import Weights

__all__ = ["AllParticlesDiedError", "FeynmanKacModel", "SMC", "SMCResult"]


class AllParticlesDiedError(RuntimeError):
    """Every particle has zero weight (its log-potential was -inf, NaN or +inf)."""


class FeynmanKacModel(abc.ABC):
    """A discrete-time Feynman-Kac model: x_0 ~ M_0 with log G_0(x_0); then for k = 0..n_steps-1:
    x_{k+1} ~ M_{k+1}(x_k, .) and log-potential log G_{k+1}(x_k, x_{k+1}).
    The target after step k is  prod_{j<=k} G_j  times the path law; Z_k is its normaliser.

    States are tensors ``(n_particles, ...)`` or nested containers of them (see
    :mod:`fkc.smc.state`); log-potentials are ``(n_particles,)`` float tensors (float64 advised) on
    any device. Draw all randomness from the ``generator`` passed in. NaN and +inf log-potentials
    are treated as -inf (the particle dies) and counted in the diagnostics.
    """

    n_steps: int

    @abc.abstractmethod
    def initial(self, n_particles: int, generator: torch.Generator) -> tuple[State, torch.Tensor]:
        """Draw ``x_0 ~ M_0``; return ``(state, log G_0: (n_particles,))``."""

    @abc.abstractmethod
    def step(self, k: int, state: State, generator: torch.Generator) -> tuple[State, torch.Tensor]:
        """Move ``x_k -> x_{k+1} ~ M_{k+1}(x_k, .)``; return ``(state, log G_{k+1}: (n,))``."""

    def describe_step(self, k: int) -> str:
        """Human-readable label of record ``k`` for messages, e.g. ``"t=0.52"``."""
        return f"step {k}"


@dataclass
class SMCResult:
    """Output of :meth:`SMC.run`. Per-record arrays have length ``n_steps + 1``; entry ``k`` is
    recorded after the potentials ``log G_k`` and before the resampling decision at ``k``; the last
    entry is the end of the run (its ``resampled`` flag is the optional final resampling).

    state: final particles (leading dim n).
    log_weights: ``(n,)`` float64 final unnormalised log-weights (zeros after a final resampling).
    log_z: estimate of ``log Z_{n_steps}`` (computed before any final resampling).
    ess: ``(n_steps + 1,)`` float64 effective sample sizes.
    resampled: ``(n_steps + 1,)`` bool.
    n_unique: ``(n_steps + 1,)`` int64 distinct ancestors if resampled, else n.
    n_dead: ``(n_steps + 1,)`` int64 particles with zero weight.
    log_z_increments: ``(n_steps + 1,)`` float64, ``log sum_i W^i_{k-1} G_k^i``; they sum to log_z.
    ancestors: list of ``n_steps + 1`` entries, ``(n,)`` int64 ancestors or None.
    seed: seed of the internally created generator (None if the caller passed one).
    """

    state: State
    log_weights: torch.Tensor
    log_z: float
    ess: torch.Tensor
    resampled: torch.Tensor
    n_unique: torch.Tensor
    n_dead: torch.Tensor
    log_z_increments: torch.Tensor
    ancestors: list[torch.Tensor | None] = field(repr=False)
    seed: int | None = None

    @property
    def weights(self) -> Weights:
        """The final weights, with normalised weights and ESS."""
        return Weights(self.log_weights)


class SMC:
    """Sequential Monte Carlo for a :class:`FeynmanKacModel`.

    model: the Feynman-Kac model. n_particles: ``n >= 1``.
    resample: a scheme name from :data:`fkc.smc.RESAMPLERS` or a callable
        ``(log_weights: (n,), generator) -> ancestors: (n,) int64``.
    ess_threshold: in [0, 1]; resample at record k when ``ESS < ess_threshold * n``;
        ``0`` never resamples, ``1`` resamples at every step.
    resample_when: ``k -> bool``; resampling at record k is only allowed when it returns True
        (default: always allowed). Not consulted for the final record.
    final_resample: resample once more after the last step, whatever the ESS.
    generator: source of all randomness; if None a fresh ``torch.Generator`` is seeded from the
        OS at each :meth:`run` (on ``model.device`` if the model has that attribute, else CPU)
        and its seed is stored in ``SMCResult.seed``.
    backend: ``"auto"``, ``"numba"`` or ``"torch"``, for resampling and weight summaries.
    progress, progress_desc: tqdm progress bar.
    """

    def __init__(
        self,
        model: FeynmanKacModel,
        n_particles: int,
        resample: str | Callable = "systematic",
        ess_threshold: float = 0.5,
        resample_when: Callable[[int], bool] | None = None,
        final_resample: bool = False,
        generator: torch.Generator | None = None,
        backend: str = "auto",
        progress: bool = False,
        progress_desc: str = "SMC",
    ):
        if isinstance(n_particles, bool) or not isinstance(n_particles, int) or n_particles < 1:
            raise ValueError(f"n_particles must be an int >= 1, got {n_particles!r}")
        if not (isinstance(ess_threshold, (int, float)) and 0.0 <= ess_threshold <= 1.0):
            raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if resample_when is not None and not callable(resample_when):
            raise TypeError(f"resample_when must be callable, got {resample_when!r}")
        check_backend(backend)
        if isinstance(resample, str):
            scheme = get_resampler(resample)
            self._resampler: Resampler = lambda lw, gen: scheme(lw, gen, backend=backend)
            self._check_ancestors = False
        elif callable(resample):
            self._resampler = resample
            self._check_ancestors = True
        else:
            raise TypeError(f"resample must be a scheme name or a callable, got {resample!r}")
        self.model = model
        self.n_particles = n_particles
        self.resample = resample
        self.ess_threshold = float(ess_threshold)
        self.resample_when = resample_when
        self.final_resample = bool(final_resample)
        self.generator = generator
        self.backend = backend
        self.progress = progress
        self.progress_desc = progress_desc

    # -- contract checks ------------------------------------------------------------------------

    def _check_potentials(self, log_g, k: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Validate ``log G_k: (n,)``; return it as float64 with NaN/+inf mapped to -inf, and the
        counts (NaN, +inf, -inf) of the raw potentials."""
        n = self.n_particles
        source = "initial()" if k == 0 else f"step({k - 1})"
        if not isinstance(log_g, torch.Tensor) or tuple(log_g.shape) != (n,):
            got = tuple(log_g.shape) if isinstance(log_g, torch.Tensor) else type(log_g).__name__
            raise ValueError(
                f"{type(self.model).__name__}.{source} must return log-potentials of shape "
                f"(n_particles,) = ({n},), got {got} at {self.model.describe_step(k)}"
            )
        log_g = log_g.detach().to(torch.float64)
        isnan, isposinf = torch.isnan(log_g), torch.isposinf(log_g)
        counts = (int(isnan.sum()), int(isposinf.sum()), int(torch.isneginf(log_g).sum()))
        if counts[0] or counts[1]:
            log_g = log_g.masked_fill(isnan | isposinf, -math.inf)
        return log_g, counts

    def _check_state(self, state: State, k: int) -> None:
        for path, x in tensor_leaves(state):
            if x.shape[0] != self.n_particles:
                raise ValueError(
                    f"state leaf {path} has shape {tuple(x.shape)} at "
                    f"{self.model.describe_step(k)}; its leading dim must be "
                    f"n_particles={self.n_particles}"
                )

    def _resample(self, log_w: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        ancestors = self._resampler(log_w, gen)
        if self._check_ancestors:
            n = self.n_particles
            if (
                not isinstance(ancestors, torch.Tensor)
                or tuple(ancestors.shape) != (n,)
                or ancestors.dtype != torch.int64
            ):
                got = (
                    f"shape {tuple(ancestors.shape)}, dtype {ancestors.dtype}"
                    if isinstance(ancestors, torch.Tensor)
                    else type(ancestors).__name__
                )
                raise ValueError(f"resample must return ({n},) int64 ancestors, got {got}")
            if int(ancestors.min()) < 0 or int(ancestors.max()) >= n:
                raise ValueError(f"resample returned ancestors outside [0, {n})")
        return ancestors

    # -- the algorithm --------------------------------------------------------------------------

    def run(self) -> SMCResult:
        """Run the particle system over ``model.n_steps`` steps; see the module docstring."""
        model, n = self.model, self.n_particles
        n_steps = model.n_steps
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ValueError(f"model.n_steps must be an int >= 0, got {n_steps!r}")
        gen, seed = self.generator, None
        if gen is None:
            gen = torch.Generator(device=getattr(model, "device", None) or "cpu")
            seed = gen.seed()
        log_n = math.log(n)

        ess = torch.empty(n_steps + 1, dtype=torch.float64)
        resampled = torch.zeros(n_steps + 1, dtype=torch.bool)
        n_unique = torch.full((n_steps + 1,), n, dtype=torch.int64)
        n_dead = torch.empty(n_steps + 1, dtype=torch.int64)
        increments = torch.empty(n_steps + 1, dtype=torch.float64)
        ancestors_log: list[torch.Tensor | None] = [None] * (n_steps + 1)

        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc=self.progress_desc, disable=not self.progress)
        log_z = 0.0  # sum of log_mean(log_w) over the resampling events
        log_w, log_sum_prev = None, log_n  # before x_0: n particles of weight 1
        state = None
        try:
            for k in range(n_steps + 1):
                # Move (k > 0) and reweight: x_k ~ M_k(x_{k-1}, .), log_w += log G_k.
                if k == 0:
                    state, log_g = model.initial(n, gen)
                else:
                    state, log_g = model.step(k - 1, state, gen)
                    bar.update(1)
                self._check_state(state, k)
                log_g, counts = self._check_potentials(log_g, k)
                log_w = log_g if log_w is None else log_w + log_g
                w = Weights(log_w, self.backend)
                if w.n_dead == n:
                    raise AllParticlesDiedError(self._died_message(k, counts))
                ess[k], n_dead[k] = w.ess, w.n_dead
                increments[k] = w.log_sum - log_sum_prev
                log_sum_prev = w.log_sum
                if self.progress:
                    bar.set_postfix(ess=f"{w.ess:.1f}", refresh=False)

                # Resample: when allowed and the ESS is low (or at every step, threshold 1).
                if k < n_steps:
                    allowed = self.resample_when is None or bool(self.resample_when(k))
                    low_ess = self.ess_threshold >= 1.0 or w.ess < self.ess_threshold * n
                    do_resample = allowed and low_ess
                else:
                    do_resample = self.final_resample
                    final_log_z = log_z + w.log_mean
                if do_resample:
                    ancestors = self._resample(log_w, gen)
                    log_z += w.log_mean
                    state = take(state, ancestors)
                    log_w = torch.zeros_like(log_w)
                    log_sum_prev = log_n
                    resampled[k] = True
                    ancestors_log[k] = ancestors
                    n_unique[k] = int((torch.bincount(ancestors, minlength=n) > 0).sum())
        finally:
            bar.close()

        return SMCResult(
            state=state,
            log_weights=log_w,
            log_z=final_log_z,
            ess=ess,
            resampled=resampled,
            n_unique=n_unique,
            n_dead=n_dead,
            log_z_increments=increments,
            ancestors=ancestors_log,
            seed=seed,
        )

    def _died_message(self, k: int, counts: tuple[int, int, int]) -> str:
        n_nan, n_posinf, n_neginf = counts
        source = "initial()" if k == 0 else f"step({k - 1})"
        n_before = self.n_particles - sum(counts)
        before = f"; the other {n_before} already had zero weight" if n_before else ""
        return (
            f"all {self.n_particles} particles died at step {k} ({self.model.describe_step(k)}): "
            f"the log-potentials from {type(self.model).__name__}.{source} were NaN for "
            f"{n_nan}, +inf for {n_posinf} and -inf for {n_neginf} particles (NaN and +inf are "
            f"treated as -inf){before}"
        )
