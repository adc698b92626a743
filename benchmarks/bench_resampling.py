"""Throughput of the resampling schemes of ``fkc.smc`` (not part of the test suite).

Every method goes from float64 log-weights ``(n,)`` to ``(n,)`` int64 ancestors, including the
max-shift + exp and the uniforms drawn with ``torch.rand(generator=...)``:

* ``fkc.<scheme>`` with ``backend="numba"`` and ``backend="torch"``;
* baseline ``numpy systematic``: ``exp``, ``cumsum``, normalise, ``searchsorted`` of the grid
  ``(j + U) / n`` (the usual NumPy implementation), and ``numpy multinomial`` (searchsorted of
  unsorted uniforms);
* ``torch.multinomial`` on ``softmax(log_weights)`` with replacement;
* the ``particles`` package's systematic resampling, if it can be imported.

Log-weights are i.i.d. N(0, 1) (ESS ~ 0.37 n, a typical moment to resample). Times are medians
(and minima) over repeats, after one warm-up call that also compiles the numba kernels. Ratios are
``time(numpy systematic) / time(method)`` (> 1: faster than the baseline).

On a shared machine the medians include time lost to other processes; the minima are closer to
the cost of the code. On the reference VM a page of memory touched for the first time costs
~2-4 us, which matters for O(n) kernels: the numba backend therefore writes into NumPy-allocated
buffers (recycled by NumPy), see ``fkc.smc.resampling._empty``.

Usage: ``nice -n 10 python benchmarks/bench_resampling.py [--max-exp 7] [--threads 1]
[--markdown out.md]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
import torch
from _machine import cpu_model

from fkc.smc import multinomial, residual, stratified, systematic

try:
    import particles.resampling as particles_resampling
except ImportError:  # not installable next to numpy 2 here
    particles_resampling = None


def numpy_systematic(lw: torch.Tensor, g: torch.Generator) -> np.ndarray:
    x = lw.numpy()
    u = float(torch.rand(1, generator=g, dtype=torch.float64))
    c = np.cumsum(np.exp(x - x.max()))
    c /= c[-1]
    n = x.shape[0]
    idx = np.searchsorted(c, (np.arange(n) + u) / n, side="right")
    return np.minimum(idx, n - 1)


def numpy_multinomial(lw: torch.Tensor, g: torch.Generator) -> np.ndarray:
    x = lw.numpy()
    u = torch.rand(x.shape[0], generator=g, dtype=torch.float64).numpy()
    c = np.cumsum(np.exp(x - x.max()))
    c /= c[-1]
    return np.minimum(np.searchsorted(c, u, side="right"), x.shape[0] - 1)


def torch_multinomial(lw: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.multinomial(torch.softmax(lw, 0), lw.shape[0], replacement=True, generator=g)


def particles_systematic(lw: torch.Tensor, g: torch.Generator) -> np.ndarray:
    x = lw.numpy()
    w = np.exp(x - x.max())
    u = float(torch.rand(1, generator=g, dtype=torch.float64))
    return particles_resampling.systematic(w / w.sum(), M=x.shape[0], u=u)  # pragma: no cover


def fkc(fn, backend: str) -> Callable:
    return lambda lw, g: fn(lw, g, backend=backend)


METHODS: dict[str, Callable] = {
    "numpy systematic (baseline)": numpy_systematic,
    "fkc systematic numba": fkc(systematic, "numba"),
    "fkc systematic torch": fkc(systematic, "torch"),
    "fkc stratified numba": fkc(stratified, "numba"),
    "fkc stratified torch": fkc(stratified, "torch"),
    "fkc multinomial numba": fkc(multinomial, "numba"),
    "fkc multinomial torch": fkc(multinomial, "torch"),
    "fkc residual numba": fkc(residual, "numba"),
    "fkc residual torch": fkc(residual, "torch"),
    "numpy multinomial (unsorted searchsorted)": numpy_multinomial,
    "torch.multinomial": torch_multinomial,
}
if particles_resampling is not None:
    METHODS["particles systematic"] = particles_systematic
BASELINE = "numpy systematic (baseline)"
REPEATS = (51, 21, 5)  # for n <= 1e4, n <= 1e6, larger


def time_method(fn: Callable, lw: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(median, min) wall time of ``fn(lw, generator)`` over ``repeats`` calls."""
    g = torch.Generator().manual_seed(0)
    fn(lw, g)  # warm-up (numba compilation, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(lw, g)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def fmt_time(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-exp", type=int, default=3, help="smallest n = 10**min_exp")
    parser.add_argument("--max-exp", type=int, default=7, help="largest n = 10**max_exp")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--markdown", default=None, help="also write the report to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_start = os.getloadavg()[0]
    sizes = [10**e for e in range(args.min_exp, args.max_exp + 1)]
    results: dict[str, dict[int, float]] = {name: {} for name in METHODS}
    minima: dict[str, dict[int, float]] = {name: {} for name in METHODS}
    for n in sizes:
        lw = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        repeats = REPEATS[0] if n <= 10**4 else REPEATS[1] if n <= 10**6 else REPEATS[2]
        for name, fn in METHODS.items():
            results[name][n], minima[name][n] = time_method(fn, lw, repeats)
        print(f"n = {n:.0e} done", flush=True)

    header = "| method | " + " | ".join(f"n = 1e{int(math.log10(n))}" for n in sizes) + " |"
    lines = ["Median time (speed-up vs the NumPy baseline):", "", header]
    lines.append("|---|" + "---:|" * len(sizes))
    for table, title in (
        (results, None),
        (minima, "Minimum time (speed-up vs the NumPy baseline):"),
    ):
        if title:
            lines += ["", title, "", header, "|---|" + "---:|" * len(sizes)]
        for name, row in table.items():
            cells = []
            for n in sizes:
                ratio = table[BASELINE][n] / row[n]
                cells.append(f"{fmt_time(row[n])} ({ratio:.1f}x)")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Median time per particle (ns), to check linear scaling:")
    lines.append("")
    lines.append("| method | " + " | ".join(f"1e{int(math.log10(n))}" for n in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for name, row in results.items():
        cells = [f"{row[n] / n * 1e9:.1f}" for n in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    big = [n for n in sizes if n >= 10**4]
    if len(big) >= 2:
        for name in ("fkc systematic numba", "fkc multinomial numba", BASELINE):
            t = results[name]
            slope = np.polyfit(np.log10(big), np.log10([t[n] for n in big]), 1)[0]
            top = int(math.log10(big[-1]))
            lines.append(
                f"- log-log slope of median time vs n, n = 1e4..1e{top}, `{name}`: {slope:.2f} "
                "(1.00 = linear)"
            )
    if particles_resampling is None:
        lines.append(
            "- `particles`: not importable here (it cannot be installed next to numpy 2); "
            "column skipped."
        )
    info = (
        f"Machine: {cpu_model()}, nproc = {os.cpu_count()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op thread(s)), numpy {np.__version__}, "
        f"numba {numba.__version__}, Python {platform.python_version()}; 1-minute load average "
        f"{load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end. "
        f"{REPEATS[0]}/{REPEATS[1]}/{REPEATS[2]} repeats for n <= 1e4 / <= 1e6 / larger; "
        f"ratio = time(numpy systematic) / time(method); log-weights ~ N(0, 1)."
    )
    report = info + "\n\n" + "\n".join(lines)
    print()
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
