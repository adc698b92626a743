"""Pair geometry shared by pair-potential systems and by the metrics.

Point clouds are ``x: (..., n_atoms, n_dim)``. Unordered pairs ``i < j`` are enumerated in the
row-major order of ``torch.triu_indices(n_atoms, n_atoms, offset=1)``, so a cloud has
``n_pairs = n_atoms * (n_atoms - 1) / 2`` pair distances.
"""

from __future__ import annotations

import torch


def pair_indices(
    n_atoms: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` of the unordered pairs ``i < j``, each of shape ``(n_pairs,)``."""
    if n_atoms < 2:
        raise ValueError(f"pairs need n_atoms >= 2, got n_atoms={n_atoms}")
    idx = torch.triu_indices(n_atoms, n_atoms, offset=1, device=device)
    return idx[0], idx[1]


def pair_vectors(x: torch.Tensor) -> torch.Tensor:
    """Difference vectors ``x_i - x_j`` for the pairs ``i < j``.

    x: ``(..., n_atoms, n_dim)``; returns ``(..., n_pairs, n_dim)``.
    """
    i, j = pair_indices(x.shape[-2], device=x.device)
    return x[..., i, :] - x[..., j, :]


def interatomic_distances(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``|x_i - x_j|`` for the pairs ``i < j``.

    x: ``(..., n_atoms, n_dim)``; returns ``(..., n_pairs)``.
    """
    return torch.linalg.vector_norm(pair_vectors(x), dim=-1)


def scatter_pair_forces(pair_force: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Accumulate pair forces onto atoms: atom ``i`` gets ``+f_ij``, atom ``j`` gets ``-f_ij``.

    pair_force: ``(..., n_pairs, n_dim)``, the force that pair ``(i, j)`` (``i < j``) exerts on
    atom ``i``; returns ``(..., n_atoms, n_dim)``.
    """
    i, j = pair_indices(n_atoms, device=pair_force.device)
    batch = pair_force.shape[:-2]
    n_dim = pair_force.shape[-1]
    flat = pair_force.reshape(-1, pair_force.shape[-2], n_dim)
    out = flat.new_zeros(flat.shape[0], n_atoms, n_dim)
    out.index_add_(1, i, flat)
    out.index_add_(1, j, -flat)
    return out.reshape(*batch, n_atoms, n_dim)
