"""Invariant embeddings shared by all backbones: atoms, time / noise level, global condition."""

from __future__ import annotations

import math

import torch
from torch import nn


class AtomEmbedding(nn.Module):
    """``h = Embedding(atom_types) + Linear(atom_features)``.

    atom_types: ``(N,)`` long; atom_features: ``(N, atom_feature_dim)`` or ``None``.
    Returns ``(N, dim)``.
    """

    def __init__(self, n_atom_types: int, atom_feature_dim: int, dim: int) -> None:
        super().__init__()
        self.types = nn.Embedding(n_atom_types, dim)
        self.features = nn.Linear(atom_feature_dim, dim) if atom_feature_dim > 0 else None

    def forward(self, atom_types: torch.Tensor, atom_features: torch.Tensor | None) -> torch.Tensor:
        h = self.types(atom_types)
        if self.features is not None:
            h = h + self.features(atom_features.to(h.dtype))
        return h


class TimeEmbedding(nn.Module):
    """Embedding of the scalar ``tau`` (``t`` or ``log(sigma)/4``) followed by a 2-layer MLP.

    ``"fourier"``: ``[sin(2 pi w tau), cos(2 pi w tau)]`` with fixed ``w ~ N(0, scale^2)`` (a buffer
    drawn from a private generator seeded with 0, so rebuilding from a config reproduces it).
    ``"sinusoidal"``: ``[sin(1000 tau f_k), cos(1000 tau f_k)]``, ``f_k = 10000^(-k/(d/2))``.

    tau: ``(n,)``. Returns ``(n, dim)``.
    """

    def __init__(self, kind: str, n_features: int, dim: int, fourier_scale: float) -> None:
        super().__init__()
        half = n_features // 2
        if kind == "fourier":
            g = torch.Generator().manual_seed(0)
            freqs = (
                2 * math.pi * fourier_scale * torch.randn(half, generator=g, dtype=torch.float64)
            )
            scale = 1.0
        else:
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
            scale = 1000.0
        self.register_buffer("freqs", (scale * freqs).to(torch.get_default_dtype()))
        self.mlp = nn.Sequential(nn.Linear(n_features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        arg = tau.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1))


class ConditionEmbedding(nn.Module):
    """Global condition vector with classifier-free dropout.

    ``emb(c) = MLP(c)``; ``emb(None) = null`` (a learned vector). In training mode each molecule's
    condition is replaced by ``null`` with probability ``p_uncond`` (Bernoulli draws from the
    caller's ``generator``), so one network learns both the conditional and the unconditional score.
    In eval mode no dropout happens.

    condition: ``(n_graphs, cond_dim)`` or ``None``. Returns ``(emb (n_graphs, dim),
    keep (n_graphs,) bool)`` where ``keep[g]`` is False when molecule ``g`` got the null embedding.
    """

    def __init__(self, cond_dim: int, dim: int, p_uncond: float) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.p_uncond = p_uncond
        self.mlp = nn.Sequential(nn.Linear(cond_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.randn(dim) * 0.1)

    def forward(
        self,
        condition: torch.Tensor | None,
        n_graphs: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        null = self.null[None, :].expand(n_graphs, -1)
        if condition is None:
            return null, torch.zeros(n_graphs, dtype=torch.bool, device=null.device)
        emb = self.mlp(condition.to(null.dtype))
        keep = torch.ones(n_graphs, dtype=torch.bool, device=null.device)
        if self.training and self.p_uncond > 0:
            u = torch.rand(n_graphs, generator=generator, device=null.device, dtype=torch.float64)
            keep = u >= self.p_uncond
        return torch.where(keep[:, None], emb, null), keep
