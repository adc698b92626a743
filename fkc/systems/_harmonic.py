"""Harmonic cluster: the exactly solvable test case for samplers on the CoM-free subspace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fkc.sde.space import remove_com
from fkc.systems import _kernels
from fkc.systems._base import System, _check_positive


@dataclass(frozen=True, kw_only=True)
class HarmonicCluster(System):
    r"""``E(x) = (k / 2) sum_i |x_i - xbar|^2`` for ``x: (..., n_atoms, n_dim)``.

    On the CoM-free subspace (``n_free = (n_atoms - 1) n_dim`` dimensions, orthonormal coordinates
    ``y``) the energy is ``(k / 2) |y|^2``, so under ``exp(-E / T)`` the coordinates are
    ``N(0, T / k)`` and the energy is exactly ``Gamma(shape = n_free / 2, scale = T)``: mean
    ``n_free T / 2``, variance ``n_free T^2 / 2``, independent of ``k``.

    Attributes:
        n_atoms, n_dim: cloud shape (defaults 4, 3).
        k: spring constant ``> 0`` (default 1).
        temperature: ``T > 0`` (default 1).
    """

    n_atoms: int = 4
    n_dim: int = 3
    k: float = 1.0

    def _validate(self) -> None:
        _check_positive("k", self.k)

    @property
    def name(self) -> str:
        return f"harmonic{self.n_atoms}x{self.n_dim}"

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        self.check_shape(x)
        return 0.5 * self.k * remove_com(x).square().sum((-2, -1))

    def force(self, x: torch.Tensor) -> torch.Tensor:
        self.check_shape(x)
        return -self.k * remove_com(x)

    def energy_distribution(self) -> tuple[float, float]:
        """Exact ``(shape, scale)`` of the Gamma law of ``E`` at this temperature."""
        return 0.5 * self.n_free, self.temperature

    def numba_kernels(self) -> tuple[Callable, Callable, np.ndarray]:
        return _kernels.harmonic_energy, _kernels.harmonic_delta, np.array([self.k], np.float64)
