r"""Parallel-tempering random-walk Metropolis in Numba: the ground-truth sampler.

Target. Replica ``k`` targets ``p_k(x) ∝ exp(-E(x) / T_k)`` restricted to the zero-centre-of-mass
subspace ``V = {x : sum_i x_i = 0}`` (Lebesgue measure on ``V``, ``n_free = (n_atoms - 1) n_dim``
dimensions). All supported energies are translation invariant (the harmonic confinement acts on
``x_i - xbar``), so ``E(x) = E(P x)`` with ``P`` the projection onto ``V``.

Local move (one sweep = every atom once, in order, for every replica). Atom ``i`` is moved by
``dx ~ N(0, s_k^2 I)`` and the configuration is recentred; in ``V`` this is the move
``y -> y + P (e_i ⊗ dx)``, a translation by a symmetrically distributed increment, so the
Metropolis rule ``accept with prob min(1, exp(-(E' - E) / T_k))`` leaves ``p_k`` on ``V``
invariant. Energy differences use the O(n_atoms) kernel ``delta_fn``; the running energy is
recomputed exactly every 10 sweeps and at every stored sample.

Step sizes. During burn-in only, every ``adapt_every`` sweeps, ``log s_k += g_j (a_k - a*)`` with
block acceptance ``a_k``, target ``a*`` and gain ``g_j = 1 / sqrt(j + 1)`` (block ``j``), clipped to
``[1e-6, 1e3]``. They are frozen for production, so production is an exact (time-homogeneous)
Markov chain.

Swaps. After every sweep, neighbouring temperatures ``(k, k+1)`` with ``k`` of alternating parity
(even pairs on even sweeps, odd pairs on odd sweeps; "deterministic even-odd") exchange their
configurations with probability ``min(1, exp((1/T_k - 1/T_{k+1}) (E_k - E_{k+1})))``, which leaves
the product of the ``p_k`` invariant.

Randomness: a seed drives ``numpy.random.SeedSequence``, which yields the seeds of the initial
configuration and of Numba's generator for burn-in and production; same seed, same chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from fkc.systems._base import System
from fkc.systems.diagnostics import (
    effective_sample_size,
    gelman_rubin,
    integrated_autocorr_time,
    mean_difference_z,
)

_RECOMPUTE_EVERY = 10
_LOG_STEP_MIN = math.log(1e-6)
_LOG_STEP_MAX = math.log(1e3)


# Not cache=True: the cache key includes the identity of the kernel arguments, so every session
# would recompile and grow the cache. Compiling costs a few seconds per system and session.
@nb.njit
def _pt_sweeps(
    energy_fn,
    delta_fn,
    params,
    x,  # (K, N, d) configurations, updated in place (CoM-free)
    energies,  # (K,) updated in place
    log_step,  # (K,) updated in place when adapt
    labels,  # (K,) replica label at each temperature, updated in place
    direction,  # (K,) per label: 0 unknown, +1 last extreme was bottom, -1 top
    betas,  # (K,)
    n_sweeps,
    sweep_offset,
    adapt,
    adapt_every,
    target_accept,
    store_every,  # (K,) int, 0 = do not store
    store_offsets,  # (K,) start index into out_x / out_e
    out_x,  # (n_store_total, N, d)
    out_e,  # (n_store_total,)
    trace_e,  # (K, n_sweeps)
    seed,
):
    np.random.seed(seed)
    n_temps, n_atoms, n_dim = x.shape
    accepted = np.zeros(n_temps)
    attempted = np.zeros(n_temps)
    swap_acc = np.zeros(max(n_temps - 1, 1))
    swap_att = np.zeros(max(n_temps - 1, 1))
    block_acc = np.zeros(n_temps)
    block_att = np.zeros(n_temps)
    stored = np.zeros(n_temps, dtype=np.int64)
    round_trips = 0
    n_blocks = 0
    dx = np.empty(n_dim)
    tmp = np.empty((n_atoms, n_dim))
    for s in range(n_sweeps):
        # ---- local random-walk Metropolis sweep, every replica
        for k in range(n_temps):
            step = math.exp(log_step[k])
            beta = betas[k]
            xk = x[k]
            for i in range(n_atoms):
                for a in range(n_dim):
                    dx[a] = step * np.random.normal()
                de = delta_fn(xk, i, dx, params)
                attempted[k] += 1.0
                block_att[k] += 1.0
                if de == de and (de <= 0.0 or np.random.random() < math.exp(-beta * de)):
                    for a in range(n_dim):
                        xk[i, a] += dx[a]
                    energies[k] += de
                    accepted[k] += 1.0
                    block_acc[k] += 1.0
            for a in range(n_dim):  # recentre: stay on the CoM-free subspace
                m = 0.0
                for i in range(n_atoms):
                    m += xk[i, a]
                m /= n_atoms
                for i in range(n_atoms):
                    xk[i, a] -= m
            if (sweep_offset + s) % _RECOMPUTE_EVERY == 0:
                energies[k] = energy_fn(xk, params)
        # ---- replica exchange between neighbours (deterministic even-odd)
        for k in range((sweep_offset + s) % 2, n_temps - 1, 2):
            log_r = (betas[k] - betas[k + 1]) * (energies[k] - energies[k + 1])
            swap_att[k] += 1.0
            if log_r >= 0.0 or np.random.random() < math.exp(log_r):
                tmp[:, :] = x[k]
                x[k, :, :] = x[k + 1]
                x[k + 1, :, :] = tmp
                e = energies[k]
                energies[k] = energies[k + 1]
                energies[k + 1] = e
                lab = labels[k]
                labels[k] = labels[k + 1]
                labels[k + 1] = lab
                swap_acc[k] += 1.0
        # ---- round trips bottom -> top -> bottom
        if n_temps > 1:
            lab = labels[n_temps - 1]
            if direction[lab] == 1:
                direction[lab] = -1
            lab = labels[0]
            if direction[lab] == -1:
                round_trips += 1
            direction[lab] = 1
        # ---- step-size adaptation (burn-in only)
        if adapt and (s + 1) % adapt_every == 0:
            gain = 1.0 / math.sqrt(n_blocks + 1.0)
            for k in range(n_temps):
                rate = block_acc[k] / max(block_att[k], 1.0)
                ls = log_step[k] + gain * (rate - target_accept)
                log_step[k] = min(max(ls, _LOG_STEP_MIN), _LOG_STEP_MAX)
                block_acc[k] = 0.0
                block_att[k] = 0.0
            n_blocks += 1
        # ---- record
        for k in range(n_temps):
            if store_every[k] > 0 and (s + 1) % store_every[k] == 0:
                energies[k] = energy_fn(x[k], params)
                idx = store_offsets[k] + stored[k]
                out_x[idx] = x[k]
                out_e[idx] = energies[k]
                stored[k] += 1
            trace_e[k, s] = energies[k]
    return accepted, attempted, swap_acc, swap_att, round_trips


@dataclass(frozen=True)
class PTConfig:
    """Settings of one parallel-tempering run.

    Attributes:
        temperatures: ladder ``T_0 < T_1 < ... < T_{K-1}`` (strictly increasing, > 0).
        n_burn_in: sweeps with step-size adaptation, discarded (``>= 0``).
        n_sweeps: production sweeps with frozen step sizes (``>= 1``).
        store_every: per temperature, store the configuration every this many production sweeps
            (0 = never). An int applies to every temperature.
        adapt_every: sweeps per adaptation block (``>= 1``).
        target_accept: target single-atom acceptance rate in ``(0, 1)``.
        initial_step: initial step size ``s_k`` (std of the per-coordinate Gaussian move).
    """

    temperatures: tuple[float, ...]
    n_burn_in: int
    n_sweeps: int
    store_every: int | tuple[int, ...] = 0
    adapt_every: int = 50
    target_accept: float = 0.4
    initial_step: float = 0.1

    def __post_init__(self) -> None:
        temps = tuple(float(t) for t in self.temperatures)
        object.__setattr__(self, "temperatures", temps)
        if len(temps) < 1 or not all(math.isfinite(t) and t > 0 for t in temps):
            raise ValueError(f"temperatures must be a non-empty list of T > 0, got {temps}")
        if any(b <= a for a, b in zip(temps, temps[1:], strict=False)):
            raise ValueError(f"temperatures must be strictly increasing, got {temps}")
        if self.n_burn_in < 0 or self.n_sweeps < 1:
            raise ValueError(
                f"need n_burn_in >= 0 and n_sweeps >= 1, got {self.n_burn_in}, {self.n_sweeps}"
            )
        store = self.store_every
        store = (store,) * len(temps) if isinstance(store, int) else tuple(int(s) for s in store)
        if len(store) != len(temps) or any(s < 0 for s in store):
            raise ValueError(
                f"store_every must be an int >= 0 or one per temperature ({len(temps)}), got "
                f"{self.store_every}"
            )
        object.__setattr__(self, "store_every", store)
        if self.adapt_every < 1:
            raise ValueError(f"adapt_every must be >= 1, got {self.adapt_every}")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept}")
        if not (math.isfinite(self.initial_step) and self.initial_step > 0):
            raise ValueError(f"initial_step must be > 0, got {self.initial_step}")


@dataclass(frozen=True)
class PTResult:
    """Output of :func:`parallel_tempering`.

    Attributes:
        system_name, seed, config: what was run.
        temperatures: ``(K,)``.
        samples: per temperature, stored production configurations ``(n_k, n_atoms, n_dim)``
            float64, zero centre of mass.
        sample_energies: per temperature, their energies ``(n_k,)`` (recomputed exactly).
        energy_trace: ``(K, n_sweeps)`` energy at each temperature after every production sweep.
        burn_in_trace: ``(K, n_burn_in)``, the same during burn-in.
        step_sizes: ``(K,)`` frozen production step sizes.
        acceptance: ``(K,)`` production single-atom acceptance rates.
        burn_in_acceptance: ``(K,)`` the same during burn-in.
        swap_rates: ``(K - 1,)`` production swap acceptance rates between ``k`` and ``k + 1``.
        round_trips: number of completed bottom -> top -> bottom replica round trips (production).
    """

    system_name: str
    seed: int
    config: PTConfig
    temperatures: np.ndarray
    samples: list[np.ndarray] = field(repr=False)
    sample_energies: list[np.ndarray] = field(repr=False)
    energy_trace: np.ndarray = field(repr=False)
    burn_in_trace: np.ndarray = field(repr=False)
    step_sizes: np.ndarray
    acceptance: np.ndarray
    burn_in_acceptance: np.ndarray
    swap_rates: np.ndarray
    round_trips: int

    def index_of(self, temperature: float) -> int:
        """Index of ``temperature`` in the ladder (relative tolerance 1e-9)."""
        hits = np.flatnonzero(np.isclose(self.temperatures, temperature, rtol=1e-9, atol=0))
        if len(hits) != 1:
            raise KeyError(f"temperature {temperature} not in ladder {self.temperatures.tolist()}")
        return int(hits[0])

    def autocorr_times(self) -> np.ndarray:
        """``(K,)`` integrated autocorrelation time of the production energy trace, in sweeps."""
        return np.array([integrated_autocorr_time(t) for t in self.energy_trace])

    def summary(self) -> dict:
        """Per-temperature diagnostics as plain Python types (JSON-serialisable)."""
        taus = self.autocorr_times()
        n = self.energy_trace.shape[1]
        return {
            "system": self.system_name,
            "seed": self.seed,
            "temperatures": self.temperatures.tolist(),
            "step_sizes": self.step_sizes.tolist(),
            "acceptance": self.acceptance.tolist(),
            "swap_rates": self.swap_rates.tolist(),
            "round_trips": int(self.round_trips),
            "tau_energy_sweeps": taus.tolist(),
            "ess_energy": (n / taus).tolist(),
            "energy_mean": self.energy_trace.mean(axis=1).tolist(),
            "energy_sd": self.energy_trace.std(axis=1, ddof=1).tolist(),
        }


def parallel_tempering(
    system: System,
    config: PTConfig,
    seed: int,
    x0: np.ndarray | None = None,
) -> PTResult:
    """Run parallel tempering on ``system`` over ``config.temperatures`` (see module docstring).

    The system's own ``temperature`` is ignored; the ladder sets the temperatures.

    Args:
        system: any :class:`~fkc.systems.System`.
        config: ladder, burn-in and production lengths, storage and adaptation settings.
        seed: integer seed; the run is a deterministic function of ``(system, config, seed, x0)``.
        x0: optional start ``(n_atoms, n_dim)`` (copied to every replica) or
            ``(K, n_atoms, n_dim)``; default ``system.initial_positions`` per replica.

    Returns:
        :class:`PTResult`.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    temps = np.asarray(config.temperatures, dtype=np.float64)
    n_temps = len(temps)
    shape = (n_temps, system.n_atoms, system.n_dim)
    ss = np.random.SeedSequence(int(seed))
    init_seed, burn_seed, prod_seed = (int(s) for s in ss.generate_state(3, dtype=np.uint32))
    if x0 is None:
        rng = np.random.default_rng(init_seed)
        x = np.stack([system.initial_positions(rng) for _ in range(n_temps)])
    else:
        x0 = np.asarray(x0, dtype=np.float64)
        if x0.shape == shape[1:]:
            x0 = np.broadcast_to(x0, shape)
        if x0.shape != shape:
            raise ValueError(
                f"x0 must have shape {shape[1:]} or {shape} for {system.name} with {n_temps} "
                f"temperatures, got {x0.shape}"
            )
        x = x0 - x0.mean(axis=1, keepdims=True)
    x = np.ascontiguousarray(x, dtype=np.float64)
    energy_fn, delta_fn, params = system.numba_kernels()
    energies = np.array([energy_fn(xk, params) for xk in x])
    if not np.all(np.isfinite(energies)):
        raise ValueError(f"initial energies must be finite, got {energies}")
    log_step = np.full(n_temps, math.log(config.initial_step))
    labels = np.arange(n_temps, dtype=np.int64)
    direction = np.zeros(n_temps, dtype=np.int64)
    betas = 1.0 / temps
    no_store = np.zeros(n_temps, dtype=np.int64)
    empty_x = np.zeros((0,) + shape[1:])

    burn_trace = np.zeros((n_temps, config.n_burn_in))
    burn_acc = np.full(n_temps, np.nan)
    if config.n_burn_in > 0:
        acc, att, _, _, _ = _pt_sweeps(
            energy_fn, delta_fn, params, x, energies, log_step, labels, direction, betas,
            config.n_burn_in, 0, True, config.adapt_every, config.target_accept,
            no_store, no_store, empty_x, np.zeros(0), burn_trace, burn_seed,
        )  # fmt: skip
        burn_acc = acc / att

    store_every = np.asarray(config.store_every, dtype=np.int64)
    counts = np.where(store_every > 0, config.n_sweeps // np.maximum(store_every, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    out_x = np.zeros((int(counts.sum()),) + shape[1:])
    out_e = np.zeros(int(counts.sum()))
    trace = np.zeros((n_temps, config.n_sweeps))
    direction[:] = 0
    acc, att, sw_acc, sw_att, trips = _pt_sweeps(
        energy_fn, delta_fn, params, x, energies, log_step, labels, direction, betas,
        config.n_sweeps, config.n_burn_in, False, config.adapt_every, config.target_accept,
        store_every, offsets, out_x, out_e, trace, prod_seed,
    )  # fmt: skip
    swap_rates = (sw_acc / np.maximum(sw_att, 1.0))[: n_temps - 1]
    return PTResult(
        system_name=system.name,
        seed=int(seed),
        config=config,
        temperatures=temps,
        samples=[out_x[o : o + c] for o, c in zip(offsets, counts, strict=True)],
        sample_energies=[out_e[o : o + c] for o, c in zip(offsets, counts, strict=True)],
        energy_trace=trace,
        burn_in_trace=burn_trace,
        step_sizes=np.exp(log_step),
        acceptance=acc / att,
        burn_in_acceptance=burn_acc,
        swap_rates=swap_rates,
        round_trips=int(trips),
    )


def compare_runs(results: Sequence[PTResult]) -> dict:
    """Agreement of independent runs (same system and ladder), per temperature.

    Returns a dict of lists over temperatures: ``rhat`` (split R-hat of the production energy
    traces, needs >= 2 runs), ``max_abs_z`` (largest |z| of one run's mean energy against the
    pooled other runs, z in units of the autocorrelation-aware standard error), ``tau`` (pooled
    integrated autocorrelation time in sweeps), ``ess`` (total effective sample size),
    ``energy_mean`` and ``energy_se`` of the pooled traces.
    """
    if len(results) < 2:
        raise ValueError(f"compare_runs needs >= 2 runs, got {len(results)}")
    temps = results[0].temperatures
    for r in results[1:]:
        if r.temperatures.shape != temps.shape or not np.allclose(r.temperatures, temps):
            raise ValueError(
                f"runs have different ladders: {temps.tolist()} vs {r.temperatures.tolist()}"
            )
    n = min(r.energy_trace.shape[1] for r in results)
    out: dict[str, list] = {k: [] for k in ("rhat", "max_abs_z", "tau", "ess", "energy_mean",
                                           "energy_sd", "energy_se")}  # fmt: skip
    for k in range(len(temps)):
        chains = np.stack([r.energy_trace[k, :n] for r in results])
        zs = [
            abs(mean_difference_z(chains[i], np.delete(chains, i, axis=0)))
            for i in range(len(chains))
        ]
        tau = integrated_autocorr_time(chains)
        ess = effective_sample_size(chains)
        out["rhat"].append(gelman_rubin(chains))
        out["max_abs_z"].append(float(max(zs)))
        out["tau"].append(tau)
        out["ess"].append(ess)
        out["energy_mean"].append(float(chains.mean()))
        out["energy_sd"].append(float(chains.std(ddof=1)))
        out["energy_se"].append(float(chains.std(ddof=1) / math.sqrt(ess)))
    return out
