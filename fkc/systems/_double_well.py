"""Pairwise double-well system DW-n (DW-4: four particles in 2-D)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fkc.systems import _kernels
from fkc.systems._base import System, _check_finite, _check_positive, pair_factor
from fkc.systems._geometry import pair_vectors, scatter_pair_forces


@dataclass(frozen=True, kw_only=True)
class DoubleWell(System):
    r"""Particles interacting through a double-well potential of their pair distance.

    Energy of ``x: (..., n_atoms, n_dim)``:

        E(x) = f * sum_{i<j} [ a (d_ij - d0)^4 + b (d_ij - d0)^2 + c ],   d_ij = |x_i - x_j|,

    with ``f = 1`` for ``pair_convention="unordered"`` (default; bgflow's MultiDoubleWellPotential
    and the DEM/FKC DW-4 task) or ``f = 2`` for ``"ordered"``. Defaults ``a = 0.9``, ``b = -4``,
    ``c = 0``, ``d0 = 4`` give each pair two wells at ``d = d0 ± sqrt(-b / (2a)) ≈ 4 ± 1.49`` of
    depth ``c - b^2 / (4a) ≈ -4.44`` separated by a barrier ``c`` at ``d = d0``. There is no
    confinement; the density ``exp(-E / T)`` is normalisable on the CoM-free subspace because the
    quartic grows with every pair distance.

    Attributes:
        n_atoms: number of particles (default 4).
        n_dim: spatial dimension (default 2).
        a: quartic coefficient ``> 0`` (default 0.9).
        b: quadratic coefficient (default -4).
        c: constant per pair (default 0).
        d0: centre of the double well (default 4).
        pair_convention: ``"unordered"`` (default) or ``"ordered"``.
        temperature: ``T > 0`` (default 1).
    """

    n_atoms: int = 4
    n_dim: int = 2
    a: float = 0.9
    b: float = -4.0
    c: float = 0.0
    d0: float = 4.0
    pair_convention: str = "unordered"

    def _validate(self) -> None:
        _check_positive("a", self.a)
        _check_finite("b", self.b)
        _check_finite("c", self.c)
        _check_finite("d0", self.d0)
        pair_factor(self.pair_convention)

    @property
    def name(self) -> str:
        return f"dw{self.n_atoms}"

    def pair_energy(self, d: torch.Tensor) -> torch.Tensor:
        """Double-well pair term ``a (d - d0)^4 + b (d - d0)^2 + c`` of distances ``d``."""
        u2 = (d - self.d0).square()
        return self.a * u2 * u2 + self.b * u2 + self.c

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x). x: ``(..., n_atoms, n_dim)``; returns ``(...)`` in the dtype of ``x``."""
        self.check_shape(x)
        d = torch.linalg.vector_norm(pair_vectors(x), dim=-1)
        return pair_factor(self.pair_convention) * self.pair_energy(d).sum(-1)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        r"""Analytic force. x: ``(..., n_atoms, n_dim)``; returns the same shape.

        Pair ``(i, j)`` pushes atom ``i`` by ``-f (4a u^3 + 2b u) (x_i - x_j) / d_ij`` with
        ``u = d_ij - d0``. At coinciding atoms (``d_ij = 0``) the direction is undefined and that
        pair contributes zero.
        """
        self.check_shape(x)
        diff = pair_vectors(x)
        d = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
        u = d - self.d0
        dphi = 4.0 * self.a * u**3 + 2.0 * self.b * u
        safe_d = torch.where(d > 0, d, torch.ones_like(d))
        g = torch.where(d > 0, -pair_factor(self.pair_convention) * dphi / safe_d, 0.0)
        return scatter_pair_forces(g * diff, self.n_atoms)

    def numba_kernels(self) -> tuple[Callable, Callable, np.ndarray]:
        params = np.array(
            [self.a, self.b, self.c, self.d0, pair_factor(self.pair_convention)], dtype=np.float64
        )
        return _kernels.dw_energy, _kernels.dw_delta, params

    def initial_positions(self, rng: np.random.Generator) -> np.ndarray:
        """Standard normal coordinates scaled by ``d0 / 2``, recentred; ``(n_atoms, n_dim)``."""
        x = 0.5 * self.d0 * rng.standard_normal(self.event_shape)
        return x - x.mean(axis=0, keepdims=True)
