"""Overhead of the Feynman-Kac correction in ``fkc.sample`` (not part of the test suite).

For one target, steps and particle count, the wall time of ``fkc.sample(..., correct=True)``
(scores + log-weight rate + ESS + resampling) is compared with ``correct=False`` (same drift and
noise, no weights, no resampling); both in float32 with ``progress=False``. Targets:

* ``mlp``: :class:`MLPExpert`, a 3-layer MLP (width 256) on 39 dimensions with a sinusoidal time
  embedding and random weights, run under ``torch.inference_mode`` -- a score that costs about
  what a small network costs;
* ``gmm``: the analytic :class:`fkc.GaussianMixtureExpert` (8 components in 39 dimensions);

each as annealing ``fkc.anneal(e, 2.0)`` and as a product ``fkc.product(e1, e2)`` of two
experts of the same kind (different random weights / means).

Score evaluations: the corrected run needs ``n_steps + 1`` score evaluations per expert (the
trapezoidal weight of the last step needs the scores at the final point), the uncorrected one
``n_steps`` (the scores at the final point are never used). Annealing with an expert that has a
log density (``gmm``) also evaluates ``log_density`` once at ``t = 1`` for the initial weight.
So even a free correction costs ``(n_steps + 1) / n_steps`` of the score time.

Timing: one warm-up run of each configuration (numba compilation, allocator), then ``--repeats``
rounds; in each round every configuration runs corrected and uncorrected back to back, the order
alternating between rounds (ABAB / BABA) so that load from other processes hits both alike.
The table reports medians (and minima) over the rounds, and the ratio of medians
corrected / uncorrected. ``--profile`` additionally runs cProfile on one corrected and one
uncorrected run of every configuration and breaks the difference down by function.

Usage: ``nice -n 5 python benchmarks/bench_overhead.py [--repeats 9] [--threads 1]
[--profile] [--markdown out.md]``
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import fkc
from fkc.sde import NoiseProcess

DIM = 39


class MLPExpert(fkc.Expert):
    """A small score network with random weights: ``s(x, t) = -x + MLP([x, emb(t)])``.

    The MLP has three linear layers ``(39 + 2 n_freq) -> 256 -> 256 -> 39`` with SiLU
    activations; ``emb(t) = [sin(2 pi f t), cos(2 pi f t)]`` for ``n_freq`` log-spaced
    frequencies. The ``-x`` term (the score of ``N(0, I)``, the VP prior) keeps the particles and
    the weights in a realistic range; the last layer is scaled down so the network is a moderate
    perturbation. Evaluated in the dtype of ``x`` under ``torch.inference_mode``.
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
                    layer.weight.copy_(torch.empty_like(layer.weight).uniform_(-bound, bound,
                                                                               generator=g))
                    layer.bias.copy_(torch.empty_like(layer.bias).uniform_(-bound, bound,
                                                                           generator=g))
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
    """An 8-component isotropic Gaussian mixture in ``dim`` dimensions with random means."""
    g = torch.Generator().manual_seed(seed)
    means = 1.5 * torch.randn(k, dim, generator=g, dtype=torch.float64) / math.sqrt(dim) * 2
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.5
    variances = 0.2 + 0.3 * torch.rand(k, generator=g, dtype=torch.float64)
    return fkc.GaussianMixtureExpert(weights, means, variances, process)


class StandardNormalExpert(fkc.Expert):
    """``q_t = N(0, I)`` for every t under the VP process: score ``-x`` (nearly free), so the
    corrected/uncorrected difference is the bookkeeping of the correction alone."""

    def __init__(self, process: NoiseProcess, dim: int = DIM):
        self.process = process
        self.event_shape = (dim,)

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -x


@dataclass
class Config:
    name: str
    target: fkc.Composition
    n_steps: int


def build_configs(n_steps_mlp: int, n_steps_gmm: int) -> list[Config]:
    vp = fkc.VPSDE()
    m1, m2 = MLPExpert(vp, seed=1), MLPExpert(vp, seed=2)
    g1, g2 = gmm_expert(vp, seed=1), gmm_expert(vp, seed=2)
    return [
        Config("mlp anneal(e, 2)", fkc.anneal(m1, 2.0), n_steps_mlp),
        Config("mlp product(e1, e2)", fkc.product(m1, m2), n_steps_mlp),
        Config("gmm anneal(e, 2)", fkc.anneal(g1, 2.0), n_steps_gmm),
        Config("gmm product(e1, e2)", fkc.product(g1, g2), n_steps_gmm),
        Config("N(0,I) anneal(e, 2)", fkc.anneal(StandardNormalExpert(vp), 2.0), n_steps_mlp),
        Config("N(0,I) product(e1, e2)",
               fkc.product(StandardNormalExpert(vp), StandardNormalExpert(vp)), n_steps_mlp),
    ]


class CountingExpert(fkc.Expert):
    """Wraps an expert and counts score and log-density evaluations."""

    def __init__(self, inner: fkc.Expert):
        self.inner = inner
        self.process = inner.process
        self.event_shape = inner.event_shape
        self.n_score = 0
        self.n_log_density = 0

    @property
    def has_log_density(self) -> bool:
        return self.inner.has_log_density

    def score(self, x, t):
        self.n_score += 1
        return self.inner.score(x, t)

    def log_density(self, x, t):
        self.n_log_density += 1
        return self.inner.log_density(x, t)


def count_evaluations(cfg: Config, n_particles: int, correct: bool) -> tuple[int, int]:
    """Score and log-density calls of the first expert in one run."""
    terms = [(CountingExpert(e), b) for e, b in cfg.target.terms]
    run(fkc.compose(terms), cfg.n_steps, n_particles, correct, seed=0)
    return terms[0][0].n_score, terms[0][0].n_log_density


def run(target, n_steps: int, n_particles: int, correct: bool, seed: int) -> fkc.SampleResult:
    g = torch.Generator().manual_seed(seed)
    return fkc.sample(target, n_particles, n_steps=n_steps, correct=correct, generator=g,
                      dtype=torch.float32, progress=False)


def timed(fn: Callable[..., object], *args) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn(*args)``; the CPU time of this process is less sensitive to other
    jobs on the machine than the wall time (with 1 torch thread, wall ~ CPU on an idle core)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0


def profile_diff(cfg: Config, n_particles: int, top: int = 14) -> list[str]:
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
        "(profiler overhead inflates per-call costs)",
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
        vals = []
        for c in (True, False):
            ct = sum(v[3] for k, v in stats[c].items() if k[2] == fn and "fkc" in k[0])
            vals.append(ct)
        cum.append(f"| {label} | {vals[0]:.4f} | {vals[1]:.4f} | {vals[0] - vals[1]:+.4f} |")
    lines += ["", "Cumulative time of entry points (s):", "",
              "| entry point | corrected | uncorrected | diff |", "|---|---:|---:|---:|", *cum]
    return lines


class CachedExpert(fkc.Expert):
    """Returns a precomputed score (same shape for every call): the sampler's own cost only."""

    def __init__(self, inner: fkc.Expert, x: torch.Tensor, t: torch.Tensor):
        self.process = inner.process
        self.event_shape = inner.event_shape
        self.s = inner.score(x, t)

    def score(self, x, t):
        return self.s


def best_of(fn: Callable[..., object], *args, reps: int = 100) -> float:
    """Minimum wall time of ``fn(*args)`` in seconds over ``reps`` calls (after 3 warm-up calls): the
    cost of the code itself, as free as possible of other jobs on the machine."""
    for _ in range(3):
        fn(*args)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def breakdown(configs: list[Config], n: int, n_resampled: dict[str, int],
              measured: dict[str, float]) -> list[str]:
    """Time the pieces of the correction in isolation (minimum over 100 calls, ms per call):

    * ``score``: one evaluation of every expert (the corrected run does one more per run);
    * ``log q``: ``log_density`` of the composition (once per corrected run, initial weight);
    * ``step extra``: ``DiffusionFKModel.step`` weighted minus unweighted, with experts that
      return cached scores (so no score cost): the float64 norms in ``score_terms``,
      ``log_weight_rate`` and the trapezoid, per step; split into ``norms`` (``score_terms``
      weighted minus unweighted) and ``rate`` (``log_weight_rate``, of which ``g2`` is the
      schedule ``g(t)^2`` on the ``(n,)`` float64 time tensor);
    * ``resample`` + ``take``: systematic resampling of ``(n,)`` float64 log-weights and the
      gather of the particle state ``(x, S, h)`` (per resampling event).

    ``predicted`` = steps * step extra + resamplings * (resample + take) + score + log q, in ms
    per run, next to the measured difference of the CPU-time medians of the timed runs.
    """
    from fkc.compose import log_weight_rate, noise_level, score_terms
    from fkc.sampler import DiffusionFKModel, time_grid
    from fkc.smc import systematic
    from fkc.smc.state import take

    lines = [
        "| target | score (all experts) | log q | step extra | norms | rate | g2 | "
        "resample | take | resamplings | predicted extra / run | measured extra / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
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
        t_norms = (best_of(score_terms, cached, x, t, True)
                   - best_of(score_terms, cached, x, t, False))
        terms = score_terms(cached, x, t, weighted=True)
        t_rate = best_of(log_weight_rate, cached, t, terms)
        t_g2 = best_of(comp.process.g2, t.to(torch.float64))
        grid = time_grid(cfg.n_steps)
        a = noise_level("target", cached)
        step, states = {}, {}
        for weighted in (True, False):
            model = DiffusionFKModel(cached, grid, a, weighted, torch.float32, torch.device("cpu"))
            states[weighted], _ = model.initial(n, g)
            step[weighted] = best_of(model.step, cfg.n_steps // 2, states[weighted], g)
        log_w = torch.randn(n, generator=g, dtype=torch.float64)
        t_res = best_of(systematic, log_w, g)
        anc = systematic(log_w, g)
        t_take = best_of(take, states[True], anc)
        n_res = n_resampled[cfg.name]
        extra_step = step[True] - step[False]
        pred = cfg.n_steps * extra_step + n_res * (t_res + t_take) + t_score + t_logq
        lines.append(
            f"| {cfg.name} | {t_score * ms:.3f} | {t_logq * ms:.3f} | {extra_step * ms:.3f} | "
            f"{t_norms * ms:.3f} | {t_rate * ms:.3f} | {t_g2 * ms:.3f} | {t_res * ms:.3f} | "
            f"{t_take * ms:.3f} | {n_res} | {pred * ms:.0f} | {measured[cfg.name] * ms:.0f} |"
        )
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1024)
    parser.add_argument("--steps-mlp", type=int, default=200)
    parser.add_argument("--steps-gmm", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=11, help="interleaved rounds (>= 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--only", default=None, help="run configurations whose name contains this")
    parser.add_argument("--profile", action="store_true", help="cProfile the difference")
    parser.add_argument("--breakdown", action="store_true",
                        help="time the pieces of the correction in isolation")
    parser.add_argument("--markdown", default=None, help="also write the report to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.particles

    configs = build_configs(args.steps_mlp, args.steps_gmm)
    if args.only:
        configs = [c for c in configs if args.only in c.name]
    load_start = os.getloadavg()
    info = [
        f"- CPU: {cpu_model()}, nproc = {os.cpu_count()} (shared with other jobs)",
        f"- torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, "
        f"Python {platform.python_version()}, niceness {os.nice(0)}",
        f"- 1-minute load average at start: {load_start[0]:.2f}",
        f"- {n} particles, float32, `progress=False`, default `noise='target'`, systematic "
        f"resampling at ESS < 0.5 n, final resampling; {args.repeats} interleaved rounds after "
        "one warm-up",
    ]
    print("\n".join(info), flush=True)

    evals = {}
    for cfg in configs:
        evals[cfg.name] = (count_evaluations(cfg, n, True), count_evaluations(cfg, n, False))

    times: dict[tuple[str, bool], list[tuple[float, float]]] = {
        (c.name, k): [] for c in configs for k in (True, False)}
    n_resampled: dict[str, int] = {}
    for cfg in configs:  # warm-up
        res = run(cfg.target, cfg.n_steps, n, True, seed=0)
        n_resampled[cfg.name] = int(res.resampled.sum())  # including the final resampling
        run(cfg.target, cfg.n_steps, n, False, seed=0)
    for r in range(args.repeats):
        order = (True, False) if r % 2 == 0 else (False, True)
        for cfg in configs:
            for correct in order:
                times[cfg.name, correct].append(
                    timed(run, cfg.target, cfg.n_steps, n, correct, r))
        print(f"round {r + 1}/{args.repeats} done", flush=True)
    info.append(f"- 1-minute load average at end: {os.getloadavg()[0]:.2f}")

    med = statistics.median
    lines = [
        "| target | steps | score evals per expert, corr. / uncorr. | resamplings (incl. final) | "
        "wall corrected: median (min) | wall uncorrected: median (min) | "
        "**wall ratio** (of medians) | median per-round wall ratio | CPU-time ratio (of medians) "
        "| extra time per step (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cfg in configs:
        tc, tu = times[cfg.name, True], times[cfg.name, False]
        wc, wu = [w for w, _ in tc], [w for w, _ in tu]
        cc, cu = [c for _, c in tc], [c for _, c in tu]
        per_round = med([a / b for a, b in zip(wc, wu, strict=True)])
        (sc, ldc), (su, _) = evals[cfg.name]
        ld = f" + {ldc} log q" if ldc else ""
        lines.append(
            f"| {cfg.name} | {cfg.n_steps} | {sc}{ld} / {su} | {n_resampled[cfg.name]} | "
            f"{med(wc):.3f} s ({min(wc):.3f}) | {med(wu):.3f} s ({min(wu):.3f}) | "
            f"**{med(wc) / med(wu):.3f}** | {per_round:.3f} | {med(cc) / med(cu):.3f} | "
            f"{(med(cc) - med(cu)) / cfg.n_steps * 1e3:+.3f} |"
        )
    lines += ["", "Per-round wall ratios corrected / uncorrected:", ""]
    for cfg in configs:
        rs = [a[0] / b[0] for a, b in zip(times[cfg.name, True], times[cfg.name, False],
                                          strict=True)]
        lines.append(f"- {cfg.name}: " + ", ".join(f"{x:.3f}" for x in rs))
    report = "\n".join(info) + "\n\n" + "\n".join(lines) + "\n"
    if args.breakdown:
        extra = {c.name: statistics.median([x[1] for x in times[c.name, True]])
                 - statistics.median([x[1] for x in times[c.name, False]]) for c in configs}
        report += ("\nBreakdown of the extra cost of the corrected run (ms; minima over 100 calls; "
                   "see `breakdown`):\n\n"
                   + "\n".join(breakdown(configs, n, n_resampled, extra)) + "\n")
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
