"""Lennard-Jones clusters LJ-n, harmonically confined on centre-of-mass-relative coordinates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fkc.sde.space import remove_com
from fkc.systems import _kernels
from fkc.systems._base import System, _check_finite, _check_positive, pair_factor
from fkc.systems._geometry import pair_vectors, scatter_pair_forces


@dataclass(frozen=True, kw_only=True)
class LennardJones(System):
    r"""Lennard-Jones cluster of ``n_atoms`` particles in ``n_dim`` dimensions.

    Energy of ``x: (..., n_atoms, n_dim)``:

        E(x) = f * sum_{i<j} eps [ (r_m / r_ij)^12 - 2 (r_m / r_ij)^6 ]
               + (k / 2) * sum_i |x_i - xbar|^2,       xbar = mean_i x_i,

    with ``f = 2`` for ``pair_convention="ordered"`` (the sum runs over ordered pairs ``i != j``, as
    in the FKC/DEM code; the default) and ``f = 1`` for ``"unordered"`` (bgflow's convention). The
    pair minimum is ``-eps`` at ``r = r_m`` per unordered pair (so ``-2 eps`` with ``"ordered"``).
    The density is ``exp(-E / T)``; ``E`` is invariant under translations, rotations, reflections
    and permutations. The harmonic term is a confinement on CoM-relative coordinates (``k = 0``
    disables it; then the cluster can evaporate and has no normalisable density).

    Attributes:
        n_atoms: number of particles (default 13, LJ-13).
        n_dim: spatial dimension (default 3).
        epsilon: well depth ``eps > 0`` per unordered pair (default 1).
        r_m: pair distance of the minimum ``r_m > 0`` (default 1; ``sigma = r_m / 2^(1/6)``).
        k: harmonic confinement strength ``>= 0`` (default 1).
        pair_convention: ``"ordered"`` (default) or ``"unordered"``.
        temperature: ``T > 0`` (default 1).
    """

    n_atoms: int = 13
    n_dim: int = 3
    epsilon: float = 1.0
    r_m: float = 1.0
    k: float = 1.0
    pair_convention: str = "ordered"

    def _validate(self) -> None:
        _check_positive("epsilon", self.epsilon)
        _check_positive("r_m", self.r_m)
        _check_finite("k", self.k)
        if self.k < 0:
            raise ValueError(f"k (harmonic confinement) must be >= 0, got {self.k}")
        pair_factor(self.pair_convention)

    @property
    def name(self) -> str:
        return f"lj{self.n_atoms}"

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x). x: ``(..., n_atoms, n_dim)``; returns ``(...)`` in the dtype of ``x``."""
        self.check_shape(x)
        r2 = pair_vectors(x).square().sum(-1)
        s3 = (self.r_m**2 / r2) ** 3
        e = (pair_factor(self.pair_convention) * self.epsilon) * (s3 * s3 - 2.0 * s3).sum(-1)
        if self.k != 0:
            e = e + 0.5 * self.k * remove_com(x).square().sum((-2, -1))
        return e

    def force(self, x: torch.Tensor) -> torch.Tensor:
        r"""Analytic force ``-grad E``. x: ``(..., n_atoms, n_dim)``; returns the same shape.

        With ``s = r_m^2 / r_ij^2``, the pair ``(i, j)`` pushes atom ``i`` by
        ``f * 12 eps (s^6 - s^3) / r_ij^2 * (x_i - x_j)`` (and ``j`` by the opposite); the
        confinement adds ``-k (x_i - xbar)`` (the ``xbar`` dependence cancels as
        ``sum_i (x_i - xbar) = 0``).
        """
        self.check_shape(x)
        diff = pair_vectors(x)
        r2 = diff.square().sum(-1, keepdim=True)
        s3 = (self.r_m**2 / r2) ** 3
        g = (pair_factor(self.pair_convention) * 12.0 * self.epsilon) * (s3 * s3 - s3) / r2
        f = scatter_pair_forces(g * diff, self.n_atoms)
        if self.k != 0:
            f = f - self.k * remove_com(x)
        return f

    def numba_kernels(self) -> tuple[Callable, Callable, np.ndarray]:
        params = np.array(
            [self.epsilon, self.r_m, self.k, pair_factor(self.pair_convention)], dtype=np.float64
        )
        return _kernels.lj_energy, _kernels.lj_delta, params

    def initial_positions(self, rng: np.random.Generator) -> np.ndarray:
        """Random distinct sites of a cubic grid with spacing ``r_m``, jittered by ``0.05 r_m``,
        recentred; no two atoms start closer than ``0.8 r_m``. Returns ``(n_atoms, n_dim)``."""
        side = int(np.ceil(self.n_atoms ** (1.0 / self.n_dim)))
        grid = np.stack(
            np.meshgrid(*[np.arange(side)] * self.n_dim, indexing="ij"), axis=-1
        ).reshape(-1, self.n_dim)
        sites = grid[rng.choice(len(grid), size=self.n_atoms, replace=False)].astype(np.float64)
        x = self.r_m * (sites + 0.05 * rng.uniform(-1.0, 1.0, size=sites.shape))
        return x - x.mean(axis=0, keepdims=True)
