"""Exact references for compositions of analytic experts in 1 and 2 dimensions.

The target ``pi_t(x) = prod_i q_{i,t}(x)^{b_i}`` of experts with ``log_density`` is normalised by
quadrature on a regular grid (trapezoid-free Riemann sum on a fine grid, error far below Monte
Carlo error for smooth densities with negligible mass outside the box). Used by the tests and
notebooks as ground truth; also closed-form normalisers of Gaussian compositions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..experts.base import Expert


@dataclass
class GridDensity:
    """A normalised density on a regular grid.

    axes: list of ``(m_j,)`` grid coordinates per dimension; density: ``(m_1, ..., m_d)``;
    cell: cell volume; log_z: log of the normaliser of the unnormalised input.
    """

    axes: list[torch.Tensor]
    density: torch.Tensor
    cell: float
    log_z: float

    @property
    def points(self) -> torch.Tensor:
        """All grid points ``(prod m_j, d)``."""
        mesh = torch.meshgrid(*self.axes, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=-1)

    def expect(self, fn) -> torch.Tensor:
        """``E[fn(x)]`` for ``fn: (m, d) -> (m, ...)``."""
        vals = fn(self.points)
        w = (self.density.reshape(-1) * self.cell).reshape((-1,) + (1,) * (vals.dim() - 1))
        return (w * vals).sum(0)

    def mean(self) -> torch.Tensor:
        return self.expect(lambda x: x)

    def cov(self) -> torch.Tensor:
        m = self.mean()
        return self.expect(lambda x: (x - m).unsqueeze(-1) * (x - m).unsqueeze(-2))

    def prob(self, region) -> float:
        """Mass of ``region: (m, d) bool-valued function``."""
        return float(self.expect(lambda x: region(x).to(torch.float64)))

    def cdf_1d(self) -> tuple[torch.Tensor, torch.Tensor]:
        """1-D only: grid ``(m,)`` and CDF at the right edge of each cell ``(m,)``."""
        if len(self.axes) != 1:
            raise ValueError("cdf_1d needs a one-dimensional density")
        return self.axes[0], torch.cumsum(self.density * self.cell, 0)


def grid_density(target: Expert, lo, hi, n: int = 2001, t: float = 0.0) -> GridDensity:
    """Normalise ``exp(target.log_density(x, t))`` on the box ``[lo, hi]^d`` with ``n`` points per
    axis (``d = 1`` or ``2``; the target must have a log density). float64."""
    if not target.has_log_density:
        raise ValueError(f"{type(target).__name__} has no log_density; cannot build a reference")
    (d,) = target.event_shape
    lo = torch.as_tensor(lo, dtype=torch.float64).expand(d)
    hi = torch.as_tensor(hi, dtype=torch.float64).expand(d)
    axes = [torch.linspace(float(lo[j]), float(hi[j]), n, dtype=torch.float64) for j in range(d)]
    cell = math.prod(float(a[1] - a[0]) for a in axes)
    mesh = torch.meshgrid(*axes, indexing="ij")
    pts = torch.stack([m.reshape(-1) for m in mesh], dim=-1)
    tt = torch.full((pts.shape[0],), float(t), dtype=torch.float64)
    logp = torch.cat([target.log_density(c, tc) for c, tc in zip(pts.split(200_000), tt.split(200_000), strict=False)])
    log_z = float(torch.logsumexp(logp, 0)) + math.log(cell)
    dens = torch.exp(logp - log_z).reshape([n] * d)
    return GridDensity(axes=axes, density=dens, cell=cell, log_z=log_z)


def wasserstein1_to_grid(samples: torch.Tensor, ref: GridDensity,
                         weights: torch.Tensor | None = None) -> float:
    """1-D Wasserstein-1 distance ``int |F_n(x) - F(x)| dx`` between (weighted) samples ``(n,)``
    or ``(n, 1)`` and a reference grid density."""
    x = samples.reshape(-1).to(torch.float64)
    w = torch.full_like(x, 1.0 / x.numel()) if weights is None else weights.to(torch.float64)
    grid, cdf = ref.cdf_1d()
    order = torch.argsort(x)
    xs, ws = x[order], torch.cumsum(w[order], 0)
    idx = torch.searchsorted(xs, grid, right=True)
    emp = torch.where(idx > 0, ws[(idx - 1).clamp_min(0)], torch.zeros_like(grid))
    return float((emp - cdf).abs().sum() * (grid[1] - grid[0]))


def gaussian_power_log_z(var, beta: float, d: int) -> float:
    """``log int N(x; m, var I_d)^beta dx = -(beta - 1) d/2 log(2 pi var) - d/2 log beta``."""
    return -(beta - 1) * d / 2 * math.log(2 * math.pi * var) - d / 2 * math.log(beta)


def gaussian_product_log_z(m1, v1, m2, v2) -> float:
    """``log int N(x; m1, diag v1) N(x; m2, diag v2) dx = log N(m1; m2, diag(v1 + v2))``."""
    m1, v1, m2, v2 = (torch.as_tensor(a, dtype=torch.float64) for a in (m1, v1, m2, v2))
    v = (v1 + v2).expand(m1.shape)
    return float(-0.5 * ((m1 - m2) ** 2 / v).sum() - 0.5 * torch.log(2 * math.pi * v).sum())
