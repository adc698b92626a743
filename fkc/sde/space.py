"""State spaces of the diffusion: plain Euclidean space or zero-centre-of-mass (CoM-free) space.

A molecule's state is ``x: (..., n_atoms, 3)``. Its energy is translation invariant, so diffusion
models of molecules live on the linear subspace where the centre of mass is zero,
``sum_i x_i = 0`` (``n_free = (n_atoms - 1) * 3`` free dimensions). Noise, drift and prior samples
are projected onto that subspace; divergences and Gaussian normalisers count only the free
dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def remove_com(x: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Project onto the zero-centre-of-mass subspace: ``x - mean(x, dim)``.

    x: ``(..., n_atoms, 3)`` for the default ``dim=-2``; returns a tensor of the same shape.
    """
    return x - x.mean(dim=dim, keepdim=True)


@dataclass(frozen=True)
class EuclideanSpace:
    """All coordinates are free: ``R^d`` with ``d = prod(event_shape)``."""

    com_free: bool = False

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def n_free(self, event_shape: tuple[int, ...]) -> int:
        return math.prod(event_shape)

    def check_event_shape(self, event_shape: tuple[int, ...]) -> None:
        if len(event_shape) < 1:
            raise ValueError(f"event_shape must have at least one axis, got {event_shape}")


@dataclass(frozen=True)
class CoMFreeSpace:
    """Zero-centre-of-mass space of point clouds ``(n_atoms, n_dim)``: ``(n_atoms - 1) * n_dim``
    free dimensions. Projection subtracts the mean over the atom axis (``-2``)."""

    com_free: bool = True

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return remove_com(x, dim=-2)

    def n_free(self, event_shape: tuple[int, ...]) -> int:
        self.check_event_shape(event_shape)
        n_atoms, n_dim = event_shape
        return (n_atoms - 1) * n_dim

    def check_event_shape(self, event_shape: tuple[int, ...]) -> None:
        if len(event_shape) != 2 or event_shape[0] < 2:
            raise ValueError(
                "a CoM-free state space needs event_shape (n_atoms, n_dim) with n_atoms >= 2, "
                f"got {event_shape}"
            )
