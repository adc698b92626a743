"""Overhead of the Feynman-Kac correction in ``fkc.sample`` (not part of the test suite).

For one target, step count and particle count, the wall time of ``fkc.sample(..., correct=True)``
(scores + log-weight rate + resampling) is compared with ``correct=False`` (same drift and noise,
no weights, no resampling); both in float32 with ``progress=False``. Experts (39 dimensions):

* ``mlp``: :class:`MLPExpert`, a 3-layer MLP (width 256) with a sinusoidal time embedding and
  random weights under ``torch.inference_mode``: a score that costs what a small network costs;
* ``gmm``: the analytic :class:`fkc.GaussianMixtureExpert` with 8 components;
* ``N(0,I)``: :class:`StandardNormalExpert`, score ``-x`` (nearly free), which isolates the
  sampler's own bookkeeping;

each as annealing ``fkc.anneal(e, 2.0)`` and as a product ``fkc.product(e1, e2)``.

Score evaluations: the corrected run evaluates every expert ``n_steps + 1`` times (the trapezoidal
weight of the last step needs the scores at the final point), the uncorrected one ``n_steps``
times (the scores at the final point are never used); with experts that have a log density
(``gmm``) the corrected run also evaluates ``log_density`` once at ``t = 1`` (initial weight).
A correction that cost nothing else would still cost ``(n_steps + 1) / n_steps`` of the score
time. Every expert is wrapped in :class:`Instrumented`, which counts those calls and adds up the
time spent in ``score``, so each run splits into score time and the rest (the sampler).

Timing: one warm-up run of each configuration, then ``--repeats`` rounds; in each round every
configuration runs corrected and uncorrected back to back, the order alternating between rounds
(ABAB / BABA). Reported: medians and minima over rounds, the ratio of medians, and the median of
the per-round ratios with a 95% bootstrap interval. ``--breakdown`` times the pieces of the
correction in isolation; ``--profile`` runs cProfile on one corrected and one uncorrected run;
``--prototype`` measures a what-if: the sampler's ``score_terms`` replaced (in this process only)
by a version without float64 copies of the scores (see :func:`install_prototype`).

Memory allocator: large float64 temporaries (the mixture expert allocates several
``(n, k, d)`` float64 tensors, ~2.5 MB each, per call) are served by glibc with ``mmap`` and given
back with ``munmap``, so every call page-faults its memory in again; how often that happens drifts
during a run (glibc's dynamic mmap threshold), which made the same run vary between 0.9 and 2.4 s
with 0.2-0.9 million minor page faults. By default the script therefore re-executes itself with
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` set (memory is
reused, no page faults after the warm-up); ``--default-malloc`` keeps glibc's defaults. The
number of minor page faults per run is reported either way.

Usage: ``nice -n 5 python benchmarks/bench_overhead.py [--repeats 15] [--threads 1]
[--breakdown] [--profile] [--prototype] [--default-malloc] [--markdown out.md]``
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import platform
import pstats
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _machine import cpu_model
from torch import nn

import fkc
from fkc.sde import NoiseProcess

DIM = 39
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "MALLOC_TOP_PAD_": str(1 << 28),
}


# -- experts ------------------------------------------------------------------------------------


class MLPExpert(fkc.Expert):
    """A small score network with random weights: ``s(x, t) = -x + MLP([x, emb(t)])``.

    Three linear layers ``(39 + 2 n_freq) -> 256 -> 256 -> 39`` with SiLU activations;
    ``emb(t) = [sin(2 pi f t), cos(2 pi f t)]`` for ``n_freq`` log-spaced frequencies. The ``-x``
    term (the score of ``N(0, I)``, the VP prior) keeps particles and weights in a realistic
    range; the last layer is scaled down so the network is a moderate perturbation of it.
    Evaluated in the dtype of ``x`` under ``torch.inference_mode``.
    x: ``(n, 39)``, t: ``(n,)`` -> ``(n, 39)``.
    """

    def __init__(self, process: NoiseProcess, seed: int, width: int = 256, n_freq: int = 8,
                 dim: int = DIM):
        g = torch.Generator().manual_seed(seed)
        self.process = process
        self.event_shape = (dim,)
        self.freqs = 2 * math.pi * torch.logspace(0, 2, n_freq)
        layers = [nn.Linear(dim + 2 * n_freq, width), nn.SiLU(), nn.Linear(width, width),
                  nn.SiLU(), nn.Linear(width, dim)]
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    for p in (layer.weight, layer.bias):
                        p.copy_(torch.empty_like(p).uniform_(-bound, bound, generator=g))
            layers[-1].weight.mul_(0.3)
        self.net = nn.Sequential(*layers).eval().requires_grad_(False)
        self._dtype = torch.float32

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dtype != self._dtype:
            self.net.to(x.dtype)
            self._dtype = x.dtype
        with torch.inference_mode():
            ft = t.to(x.dtype).unsqueeze(-1) * self.freqs.to(x.dtype)
            h = torch.cat([x, torch.sin(ft), torch.cos(ft)], dim=-1)
            return self.net(h) - x


def gmm_expert(process: NoiseProcess, seed: int, k: int = 8, dim: int = DIM):
    """A ``k``-component isotropic Gaussian mixture in ``dim`` dimensions, random parameters."""
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(k, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.5
    variances = 0.2 + 0.3 * torch.rand(k, generator=g, dtype=torch.float64)
    return fkc.GaussianMixtureExpert(weights, means, variances, process)


class StandardNormalExpert(fkc.Expert):
    """``q_t = N(0, I)`` at every t under the VP process: score ``-x`` (nearly free), so the
    corrected/uncorrected difference is the bookkeeping of the correction alone."""

    def __init__(self, process: NoiseProcess, dim: int = DIM):
        self.process = process
        self.event_shape = (dim,)

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -x


class Instrumented(fkc.Expert):
    """Wraps an expert; counts ``score`` and ``log_density`` calls and adds up the wall time
    spent in ``score`` (``reset()`` clears them)."""

    def __init__(self, inner: fkc.Expert):
        self.inner = inner
        self.process = inner.process
        self.event_shape = inner.event_shape
        self.reset()

    def reset(self) -> None:
        self.n_score = self.n_log_density = 0
        self.score_time = 0.0

    @property
    def has_log_density(self) -> bool:
        return self.inner.has_log_density

    def score(self, x, t):
        t0 = time.perf_counter()
        s = self.inner.score(x, t)
        self.score_time += time.perf_counter() - t0
        self.n_score += 1
        return s

    def log_density(self, x, t):
        self.n_log_density += 1
        return self.inner.log_density(x, t)


class CachedExpert(fkc.Expert):
    """Returns a precomputed score (the same tensor at every call): the sampler's cost only."""

    def __init__(self, inner: fkc.Expert, x: torch.Tensor, t: torch.Tensor):
        self.process = inner.process
        self.event_shape = inner.event_shape
        self.s = inner.score(x, t)

    def score(self, x, t):
        return self.s


# -- configurations and timed runs --------------------------------------------------------------


@dataclass
class Config:
    name: str
    target: fkc.Composition  # of Instrumented experts
    n_steps: int

    @property
    def experts(self) -> list[Instrumented]:
        return [e for e, _ in self.target.terms]


def build_configs(n_steps: int) -> list[Config]:
    vp = fkc.VPSDE()
    m1, m2 = Instrumented(MLPExpert(vp, seed=1)), Instrumented(MLPExpert(vp, seed=2))
    g1, g2 = Instrumented(gmm_expert(vp, seed=1)), Instrumented(gmm_expert(vp, seed=2))
    z1, z2 = Instrumented(StandardNormalExpert(vp)), Instrumented(StandardNormalExpert(vp))
    return [
        Config("mlp anneal(e, 2)", fkc.anneal(m1, 2.0), n_steps),
        Config("mlp product(e1, e2)", fkc.product(m1, m2), n_steps),
        Config("gmm anneal(e, 2)", fkc.anneal(g1, 2.0), n_steps),
        Config("gmm product(e1, e2)", fkc.product(g1, g2), n_steps),
        Config("N(0,I) anneal(e, 2)", fkc.anneal(z1, 2.0), n_steps),
        Config("N(0,I) product(e1, e2)", fkc.product(z1, z2), n_steps),
    ]


def run(target, n_steps: int, n_particles: int, correct: bool, seed: int) -> fkc.SampleResult:
    g = torch.Generator().manual_seed(seed)
    return fkc.sample(target, n_particles, n_steps=n_steps, correct=correct, generator=g,
                      dtype=torch.float32, progress=False)


@dataclass
class Record:
    """One timed run: wall and CPU seconds, seconds inside ``score`` (all experts), minor page
    faults, score / log-density calls of the first expert, resampling events (incl. final)."""

    wall: float
    cpu: float
    score: float
    faults: int
    n_score: int
    n_log_density: int
    n_resampled: int


def timed_run(cfg: Config, n: int, correct: bool, seed: int) -> Record:
    for e in cfg.experts:
        e.reset()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0, t0 = time.process_time(), time.perf_counter()
    res = run(cfg.target, cfg.n_steps, n, correct, seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    first = cfg.experts[0]
    return Record(wall, cpu, sum({id(e): e.score_time for e in cfg.experts}.values()), faults,
                  first.n_score, first.n_log_density, int(res.resampled.sum()))


def bootstrap_median_ci(xs: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median of ``xs``."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n_boot))
    return meds[int(0.025 * n_boot)], meds[int(0.975 * n_boot) - 1]


# -- isolated pieces and profiles ---------------------------------------------------------------


def best_of(fn: Callable[..., object], *args, reps: int = 100) -> float:
    """Minimum wall time of ``fn(*args)`` in seconds over ``reps`` calls (after 3 warm-up
    calls): the cost of the code itself, as free as possible of other jobs on the machine."""
    for _ in range(3):
        fn(*args)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def breakdown(configs: list[Config], n: int, n_resampled: dict[str, float],
              measured: dict[str, float]) -> list[str]:
    """Time the pieces of the correction in isolation (minimum over 100 calls, ms per call):

    * ``score``: one evaluation of every expert (the corrected run does one more per run);
    * ``log q``: ``log_density`` of the composition (once per corrected run, initial weight);
    * ``step extra``: ``DiffusionFKModel.step`` weighted minus unweighted, with experts that
      return cached scores (so no score cost), per step; split into ``norms`` (``score_terms``
      weighted minus unweighted: the float64 casts and squared norms of every ``s_i`` and of
      ``S``) and ``rate`` (``log_weight_rate`` with the grid's precomputed coefficients);
    * ``resample`` + ``take``: systematic resampling of ``(n,)`` float64 log-weights and the
      gather of the particle state ``(x, S, h)`` (per resampling event).

    ``predicted`` = steps * step extra + resamplings * (resample + take) + score + log q (ms per
    run), next to the measured difference of the median non-score times (``measured``).
    """
    import fkc.sampler.diffusion as diffusion
    from fkc.compose import coefficients, log_weight_rate, noise_level
    from fkc.sampler import DiffusionFKModel, time_grid
    from fkc.smc import systematic
    from fkc.smc.state import take

    lines = [
        "| target | score (all experts) | log q | step extra | norms | rate | "
        "resample | take | resamplings | predicted extra / run | measured extra / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    g = torch.Generator().manual_seed(0)
    ms = 1e3
    for cfg in configs:
        comp = cfg.target
        x = torch.randn(n, *comp.event_shape, generator=g)
        t = torch.full((n,), 0.5)
        t_score = best_of(comp.scores, x, t, reps=20)
        t_logq = best_of(comp.log_density, x, t, reps=20) if comp.has_log_density else 0.0
        cached = fkc.compose([(CachedExpert(e, x, t), b) for e, b in comp.terms])
        score_terms = diffusion.score_terms  # the sampler's (replaced by --prototype)
        t_norms = best_of(score_terms, cached, x, t, True) - best_of(score_terms, cached, x, t,
                                                                     False)
        terms = score_terms(cached, x, t, weighted=True)
        grid = time_grid(cfg.n_steps)
        coef = coefficients(cached, grid)[cfg.n_steps // 2]
        t_rate = best_of(log_weight_rate, cached, coef, terms)
        a = noise_level("target", cached)
        step, states = {}, {}
        for weighted in (True, False):
            model = DiffusionFKModel(cached, grid, a, weighted, torch.float32, torch.device("cpu"))
            states[weighted], _ = model.initial(n, g)
            step[weighted] = best_of(model.step, cfg.n_steps // 2, states[weighted], g)
        log_w = torch.randn(n, generator=g, dtype=torch.float64)
        t_res = best_of(systematic, log_w, g)
        t_take = best_of(take, states[True], systematic(log_w, g))
        n_res = n_resampled[cfg.name]
        extra_step = step[True] - step[False]
        pred = cfg.n_steps * extra_step + n_res * (t_res + t_take) + t_score + t_logq
        lines.append(
            f"| {cfg.name} | {t_score * ms:.3f} | {t_logq * ms:.3f} | {extra_step * ms:.3f} | "
            f"{t_norms * ms:.3f} | {t_rate * ms:.3f} | "
            f"{t_res * ms:.3f} | {t_take * ms:.3f} | {n_res:g} | {pred * ms:.0f} | "
            f"{measured[cfg.name] * ms:.0f} |"
        )
    return lines


def profile_diff(cfg: Config, n_particles: int, top: int = 12) -> list[str]:
    """cProfile one corrected and one uncorrected run; list the functions whose own time
    (tottime) grew the most, and the cumulative time of the weight-related entry points."""
    stats = {}
    for correct in (True, False):
        prof = cProfile.Profile()
        prof.enable()
        run(cfg.target, cfg.n_steps, n_particles, correct, seed=0)
        prof.disable()
        stats[correct] = pstats.Stats(prof).stats  # {(file, line, fn): (cc, nc, tt, ct, callers)}

    def key_name(k):
        file, line, fn = k
        short = file.split("site-packages/")[-1].split("/work/main/")[-1]
        return f"{short}:{line}({fn})" if line else fn

    total = {c: sum(v[2] for v in s.values()) for c, s in stats.items()}
    rows = []
    for k in set(stats[True]) | set(stats[False]):
        a = stats[True].get(k, (0, 0, 0.0, 0.0, None))
        b = stats[False].get(k, (0, 0, 0.0, 0.0, None))
        rows.append((a[2] - b[2], a[1], b[1], a[2], b[2], key_name(k)))
    rows.sort(reverse=True)
    lines = [
        f"cProfile, {cfg.name}: total own time corrected {total[True]:.3f} s, uncorrected "
        f"{total[False]:.3f} s, difference {total[True] - total[False]:+.3f} s "
        "(the profiler inflates per-call costs)",
        "",
        "| function | calls corr. | calls uncorr. | tottime corr. (s) | tottime uncorr. (s) "
        "| diff (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for d, na, nb, ta, tb, name in rows[:top]:
        lines.append(f"| `{name}` | {na} | {nb} | {ta:.4f} | {tb:.4f} | {d:+.4f} |")
    cum = []
    for label, fn in (("score_terms", "score_terms"), ("log_weight_rate", "log_weight_rate"),
                      ("Weights._stats (ESS, logsumexp)", "_stats"),
                      ("SMC._resample", "_resample"), ("take (gather after resampling)", "take"),
                      ("SMC._check_potentials", "_check_potentials"),
                      ("DiffusionFKModel.step", "step"), ("DiffusionFKModel.initial", "initial")):
        vals = [sum(v[3] for k, v in stats[c].items() if k[2] == fn and "fkc" in k[0])
                for c in (True, False)]
        cum.append(f"| {label} | {vals[0]:.4f} | {vals[1]:.4f} | {vals[0] - vals[1]:+.4f} |")
    lines += ["", "Cumulative time of entry points (s):", "",
              "| entry point | corrected | uncorrected | diff |", "|---|---:|---:|---:|", *cum]
    return lines


# -- what-if: a cheaper weight computation (monkeypatched here only, fkc is not changed) --------


def install_prototype() -> str:
    """Replace ``score_terms`` *as used by the sampler* with a cheaper version computing the
    same quantities, to estimate what a fix in fkc would buy:

    ``|S|^2 - sum_i b_i |s_i|^2 = B (B - 1) |m|^2 - sum_i b_i |s_i - m|^2`` with ``m = S / B``
    (expand ``|s_i|^2 = |m + (s_i - m)|^2``; ``sum_i b_i (s_i - m) = 0``). This form has no
    cancellation (for CFG it is ``w (w - 1) |s_c - s_u|^2``), so it is reduced in the scores'
    dtype and only the ``(n,)`` result is cast to float64 -- no ``(n, d)`` float64 copies -- and
    a single expert (annealing) needs one norm instead of two.

    Checks the prototype against fkc's own ``score_terms`` + ``log_weight_rate`` on random scores
    before installing it.
    """
    import fkc.sampler.diffusion as diffusion
    from fkc.compose import coefficients, log_weight_rate, score_terms
    from fkc.compose.corrector import ScoreTerms

    def fast_score_terms(comp, x, t, weighted=True):
        scores = comp.scores(x, t)
        S = None
        for (_, b), s in zip(comp.terms, scores, strict=True):
            S = b * s if S is None else S + b * s
        if not weighted:
            return ScoreTerms(S=S, sq=None)
        B = comp.total
        m = S / B
        acc = (B * (B - 1.0)) * m.flatten(1).square().sum(-1)
        if len(scores) > 1:
            for (_, b), s in zip(comp.terms, scores, strict=True):
                acc = acc - b * (s - m).flatten(1).square().sum(-1)
        return ScoreTerms(S=S, sq=acc.to(torch.float64))

    g = torch.Generator().manual_seed(0)
    vp = fkc.VPSDE()
    a, b = StandardNormalExpert(vp, 5), StandardNormalExpert(vp, 5)
    x = torch.randn(64, 5, generator=g)
    t = torch.full((64,), 0.3)
    worst = 0.0
    for comp in (fkc.anneal(a, 2.0), fkc.product(a, b), fkc.cfg(a, b, 4.0),
                 fkc.compose([(a, 1.5), (b, -0.5)])):
        cached = fkc.compose([(CachedExpert(e, x * (i + 1.3), t), bb)
                              for i, (e, bb) in enumerate(comp.terms)])
        coef = coefficients(cached, torch.tensor([0.3]))[0]
        ref = log_weight_rate(cached, coef, score_terms(cached, x, t))
        new = log_weight_rate(cached, coef, fast_score_terms(cached, x, t))
        err = float(((new - ref).abs() / (ref.abs() + 1.0)).max())
        if err > 1e-5:
            raise AssertionError(f"prototype differs from fkc for {comp}: {err:.2e}")
        worst = max(worst, err)
    diffusion.score_terms = fast_score_terms
    return ("prototype `score_terms` installed (max relative difference of the rate vs fkc on "
            f"test inputs: {worst:.1e})")


# -- report -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (>= 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--only", default=None, help="run configurations whose name contains this")
    parser.add_argument("--breakdown", action="store_true",
                        help="time the pieces of the correction in isolation")
    parser.add_argument("--profile", action="store_true", help="cProfile the difference")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's malloc defaults (see the module docstring)")
    parser.add_argument("--prototype", action="store_true",
                        help="what-if: monkeypatch a cheaper weight computation (see "
                             "install_prototype)")
    parser.add_argument("--markdown", default=None, help="also write the report to this file")
    args = parser.parse_args()
    if not args.default_malloc and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    torch.set_num_threads(args.threads)
    n = args.particles
    proto = install_prototype() if args.prototype else None

    configs = build_configs(args.steps)
    if args.only:
        configs = [c for c in configs if args.only in c.name]
    malloc = ("glibc defaults" if args.default_malloc
              else " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()))
    info = [
        f"- CPU: {cpu_model()}, nproc = {os.cpu_count()} (shared with other jobs)",
        f"- torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, "
        f"Python {platform.python_version()}, niceness {os.nice(0)}; malloc: {malloc}",
        f"- 1-minute load average at start: {os.getloadavg()[0]:.2f}",
        f"- {n} particles, {args.steps} steps, float32, `progress=False`, `noise='target'`, "
        "systematic resampling at ESS < 0.5 n plus the final resampling; "
        f"{args.repeats} interleaved rounds after one warm-up",
    ]
    if proto:
        info.append(f"- **what-if run**: {proto}")
    print("\n".join(info), flush=True)

    recs: dict[tuple[str, bool], list[Record]] = {(c.name, k): [] for c in configs
                                                  for k in (True, False)}
    for cfg in configs:  # warm-up (numba compilation, allocator)
        timed_run(cfg, n, True, seed=0)
        timed_run(cfg, n, False, seed=0)
    for r in range(args.repeats):
        order = (True, False) if r % 2 == 0 else (False, True)
        for cfg in configs:
            for correct in order:
                recs[cfg.name, correct].append(timed_run(cfg, n, correct, seed=r))
        print(f"round {r + 1}/{args.repeats} done", flush=True)
    info.append(f"- 1-minute load average at end: {os.getloadavg()[0]:.2f}")

    med = statistics.median
    main_table = [
        "| target | score evals / expert (corr. / uncorr.) | resamplings / run | "
        "corrected: median (min) | uncorrected: median (min) | **ratio of medians** | "
        "median per-round ratio [95% CI] | ratio of minima |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    split_table = [
        "| target | score time / run, corr. / uncorr. | non-score time / step, corr. / uncorr. | "
        "extra non-score time / step | CPU-time ratio | minor page faults / run, corr. / uncorr. |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    per_round_lines = []
    n_resampled, measured_extra = {}, {}
    for cfg in configs:
        rc, ru = recs[cfg.name, True], recs[cfg.name, False]
        wc, wu = [x.wall for x in rc], [x.wall for x in ru]
        ratios = [a / b for a, b in zip(wc, wu, strict=True)]
        lo, hi = bootstrap_median_ci(ratios)
        ld = f" + {rc[0].n_log_density} log q" if rc[0].n_log_density else ""
        n_resampled[cfg.name] = med([x.n_resampled for x in rc])
        main_table.append(
            f"| {cfg.name} | {rc[0].n_score}{ld} / {ru[0].n_score} | {n_resampled[cfg.name]:g} | "
            f"{med(wc):.3f} s ({min(wc):.3f}) | {med(wu):.3f} s ({min(wu):.3f}) | "
            f"**{med(wc) / med(wu):.3f}** | {med(ratios):.3f} [{lo:.3f}, {hi:.3f}] | "
            f"{min(wc) / min(wu):.3f} |"
        )
        rest_c = med([x.wall - x.score for x in rc])
        rest_u = med([x.wall - x.score for x in ru])
        measured_extra[cfg.name] = rest_c - rest_u + med([x.score for x in rc]) - med(
            [x.score for x in ru])
        ms = 1e3
        split_table.append(
            f"| {cfg.name} | {med([x.score for x in rc]) * ms:.0f} / "
            f"{med([x.score for x in ru]) * ms:.0f} ms | {rest_c / cfg.n_steps * ms:.3f} / "
            f"{rest_u / cfg.n_steps * ms:.3f} ms | {(rest_c - rest_u) / cfg.n_steps * ms:+.3f} ms | "
            f"{med([x.cpu for x in rc]) / med([x.cpu for x in ru]):.3f} | "
            f"{med([x.faults for x in rc]):.0f} / {med([x.faults for x in ru]):.0f} |"
        )
        per_round_lines.append(f"- {cfg.name}: " + ", ".join(f"{x:.3f}" for x in ratios))

    report = "\n".join(info) + "\n\n" + "\n".join(main_table) + "\n\n"
    report += ("Split of each run into time inside the experts' `score` and the rest (medians "
               "over rounds):\n\n" + "\n".join(split_table) + "\n\n")
    report += "Per-round wall ratios corrected / uncorrected:\n\n" + "\n".join(per_round_lines)
    report += "\n"
    if args.breakdown:
        report += ("\nBreakdown of the extra cost of the corrected run (ms; minima over 100 calls; "
                   "`measured` = difference of the median run times):\n\n"
                   + "\n".join(breakdown(configs, n, n_resampled, measured_extra)) + "\n")
    if args.profile:
        for cfg in configs:
            report += "\n" + "\n".join(profile_diff(cfg, n)) + "\n"
    print()
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
