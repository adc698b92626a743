"""``fkc demo``: anneal and multiply the built-in 2-D Gaussian-mixture experts.

For each target (``q1^2``, ``q1 * q2``) it runs the FKC sampler and the uncorrected sampler with
the same drift and noise, compares both with the exact density (quadrature), prints a table and
writes a PNG with exact, FKC and uncorrected densities side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .compose import anneal, product
from .experts.exact import GridDensity, grid_density
from .experts.toy import diagonal_band, four_modes
from .sampler import sample

LO, HI, BINS = -5.0, 5.0, 25


@dataclass
class DemoRow:
    target: str
    sampler: str
    tv: float
    mean: list[float]
    quadrant_mass: list[float]
    log_z: float


def histogram_tv(x: torch.Tensor, ref: GridDensity, bins: int = BINS) -> float:
    """Total variation between a 2-D histogram of samples ``(n, 2)`` and the reference density
    integrated over the same ``bins x bins`` cells of ``[LO, HI]^2`` (mass outside counts too)."""
    edges = torch.linspace(LO, HI, bins + 1, dtype=torch.float64)
    h = torch.histogramdd(x.to(torch.float64).cpu(), bins=[edges, edges]).hist / x.shape[0]
    pts = ref.points
    w = ref.density.reshape(-1) * ref.cell
    ij = ((pts - LO) / (HI - LO) * bins).floor().long().clamp(0, bins - 1)
    p = torch.zeros(bins, bins, dtype=torch.float64).index_put_((ij[:, 0], ij[:, 1]), w, accumulate=True)
    outside = 1.0 - float(h.sum())
    return 0.5 * (float((h - p).abs().sum()) + outside)


def quadrant_mass(x: torch.Tensor, w: torch.Tensor | None = None) -> list[float]:
    """Mass in the quadrants (+,+), (-,+), (-,-), (+,-) of points ``(n, 2)`` with weights ``w``
    (default: equal weights)."""
    w = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64) if w is None else w
    sx, sy = x[:, 0] >= 0, x[:, 1] >= 0
    masks = [sx & sy, ~sx & sy, ~sx & ~sy, sx & ~sy]
    return [float((w * m.cpu()).sum()) for m in masks]


def run_demo(out: str | Path = "fkc_demo.png", n_particles: int = 10000, n_steps: int = 400,
             seed: int = 0, progress: bool = True) -> list[DemoRow]:
    """Run the demo; returns the table rows and writes ``out`` (PNG)."""
    q1, q2 = four_modes(), diagonal_band()
    targets = {"q1^2 (anneal, beta=2)": anneal(q1, 2.0), "q1*q2 (product)": product(q1, q2)}
    rows: list[DemoRow] = []
    panels = []
    for name, target in targets.items():
        t_min = 1e-3
        ref = grid_density(target, LO - 3, HI + 3, n=401, t=t_min)
        pts, w = ref.points, ref.density.reshape(-1) * ref.cell
        exact_quadrants = quadrant_mass(pts, w)
        rows.append(DemoRow(name, "exact", 0.0, ref.mean().tolist(), exact_quadrants, ref.log_z))
        samples = {}
        for correct in (True, False):
            g = torch.Generator().manual_seed(seed)
            res = sample(target, n_particles, n_steps=n_steps, correct=correct, generator=g,
                         dtype=torch.float64, progress=progress, t_min=t_min)
            x = res.samples
            label = "FKC" if correct else "uncorrected"
            samples[label] = x
            rows.append(DemoRow(name, label, histogram_tv(x, ref), x.mean(0).tolist(),
                                quadrant_mass(x), res.log_z))
        panels.append((name, ref, samples))
    _plot(panels, Path(out))
    return rows



def format_table(rows: list[DemoRow]) -> str:
    head = (f"{'target':<24}{'sampler':<13}{'TV(hist)':>9}  {'mean':>14}  "
            f"{'quadrant mass (++, -+, --, +-)':>32}  {'log Z':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mean = f"({r.mean[0]:+.2f}, {r.mean[1]:+.2f})"
        qm = " ".join(f"{m:.3f}" for m in r.quadrant_mass)
        lz = "" if math.isnan(r.log_z) else f"{r.log_z:8.3f}"
        tv = "" if r.sampler == "exact" else f"{r.tv:.3f}"
        lines.append(f"{r.target:<24}{r.sampler:<13}{tv:>9}  {mean:>14}  {qm:>32}  {lz:>8}")
    return "\n".join(lines)


def _plot(panels, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 3, figsize=(11, 3.6 * len(panels)), squeeze=False)
    edges = torch.linspace(LO, HI, 61, dtype=torch.float64)
    for row, (name, ref, samples) in enumerate(panels):
        a0 = axes[row, 0]
        X, Y = torch.meshgrid(*ref.axes, indexing="ij")
        a0.contourf(X.numpy(), Y.numpy(), ref.density.numpy(), levels=30, cmap="viridis")
        a0.set_title(f"{name}: exact")
        for col, label in enumerate(("FKC", "uncorrected"), start=1):
            x = samples[label].to(torch.float64).cpu()
            h = torch.histogramdd(x, bins=[edges, edges], density=True).hist
            axes[row, col].pcolormesh(edges.numpy(), edges.numpy(), h.T.numpy(), cmap="viridis")
            axes[row, col].set_title(f"{label} ({x.shape[0]} samples)")
        for a in axes[row]:
            a.set_xlim(LO, HI)
            a.set_ylim(LO, HI)
            a.set_aspect("equal")
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
