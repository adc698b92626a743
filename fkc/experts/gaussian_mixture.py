"""Exact diffused Gaussian-mixture experts: the ground truth for tests and notebooks.

Data density ``p_0(x) = sum_j w_j N(x; mu_j, diag(v_j))``. Under the process
``x_t = alpha(t) x_0 + sigma(t) eps`` every component stays Gaussian:

    q_t(x) = sum_j w_j N(x; alpha mu_j, alpha^2 v_j + sigma^2),
    grad log q_t(x) = sum_j r_j(x) (alpha mu_j - x) / (alpha^2 v_j + sigma^2),

with responsibilities ``r_j(x) = softmax_j(log w_j + log N_j(x))``. On a CoM-free space the
means must be CoM-free, the variances isotropic, and the Gaussians are densities on the
``n_free``-dimensional subspace.
"""

from __future__ import annotations

import math

import torch

from ..sde import NoiseProcess
from .base import Expert


class GaussianMixtureExpert(Expert):
    """Exact score and log density of a diffused Gaussian mixture.

    Args:
        weights: ``(k,)`` positive mixture weights (normalised internally).
        means: ``(k, *event_shape)``, e.g. ``(k, d)``.
        variances: ``(k,)`` (isotropic) or ``(k, *event_shape)`` (diagonal), positive.
        process: the noise process.
    Computations run in float64 on the device of the input and are cast back to its dtype.
    """

    def __init__(self, weights, means, variances, process: NoiseProcess):
        w = torch.as_tensor(weights, dtype=torch.float64)
        mu = torch.as_tensor(means, dtype=torch.float64)
        var = torch.as_tensor(variances, dtype=torch.float64)
        if w.dim() != 1 or w.numel() < 1:
            raise ValueError(f"weights must have shape (k,), got {tuple(w.shape)}")
        k = w.shape[0]
        if mu.dim() < 2 or mu.shape[0] != k:
            raise ValueError(f"means must have shape ({k}, *event_shape), got {tuple(mu.shape)}")
        event_shape = tuple(mu.shape[1:])
        if var.shape == (k,):
            var = var.reshape((k,) + (1,) * len(event_shape)).expand(mu.shape).clone()
        elif tuple(var.shape) != tuple(mu.shape):
            raise ValueError(
                f"variances must have shape ({k},) or {tuple(mu.shape)}, got {tuple(var.shape)}"
            )
        if not torch.isfinite(w).all() or (w <= 0).any():
            raise ValueError(f"weights must be finite and positive, got {w.tolist()}")
        if not torch.isfinite(mu).all():
            raise ValueError("means must be finite")
        if not torch.isfinite(var).all() or (var <= 0).any():
            raise ValueError(f"variances must be finite and positive, got {var.flatten().tolist()[:8]}...")
        process.space.check_event_shape(event_shape)
        if process.com_free:
            com = mu.mean(dim=-2)
            if com.abs().max() > 1e-8 * (1 + mu.abs().max()):
                raise ValueError(
                    f"means must be CoM-free on a CoM-free process; max |CoM| = {com.abs().max():.3g}"
                )
            flat = var.flatten(1)
            if (flat != flat[:, :1]).any():
                raise ValueError("variances must be isotropic (shape (k,)) on a CoM-free process")
        self.process = process
        self.event_shape = event_shape
        self.log_weights = torch.log(w / w.sum())
        self.means = mu
        self.variances = var
        self._cache: dict = {}

    @property
    def has_log_density(self) -> bool:
        return True

    def _params(self, x: torch.Tensor):
        key = (x.device, torch.float64)
        if key not in self._cache:
            self._cache[key] = tuple(
                p.to(x.device) for p in (self.log_weights, self.means, self.variances)
            )
        return self._cache[key]

    def _components(self, x: torch.Tensor, t: torch.Tensor):
        """Per-component log densities ``(n, k)`` and (alpha mu - x)/V ``(n, k, *event_shape)``."""
        self.check_input(x)
        logw, mu, var = self._params(x)
        x64 = x.to(torch.float64)
        t64 = torch.as_tensor(t, dtype=torch.float64, device=x.device).expand(x.shape[0])
        ev = (1,) * len(self.event_shape)
        alpha = self.process.alpha(t64).reshape(-1, 1, *ev)
        s2 = self.process.sigma2(t64).reshape(-1, 1, *ev)
        V = alpha**2 * var.unsqueeze(0) + s2  # (n, k, *ev)
        diff = alpha * mu.unsqueeze(0) - x64.unsqueeze(1)  # (n, k, *ev)
        space = self.process.space
        if space.com_free:
            n_free = space.n_free(self.event_shape)
            v = V.flatten(2)[..., 0]  # isotropic
            log_norm = -0.5 * n_free * torch.log(2 * math.pi * v)
            quad = diff.flatten(2).square().sum(-1) / v
        else:
            log_norm = -0.5 * torch.log(2 * math.pi * V).flatten(2).sum(-1)
            quad = (diff.square() / V).flatten(2).sum(-1)
        log_comp = logw.unsqueeze(0) + log_norm - 0.5 * quad  # (n, k)
        return log_comp, diff / V

    def log_density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        log_comp, _ = self._components(x, t)
        return torch.logsumexp(log_comp, dim=1).to(x.dtype)

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        log_comp, grad = self._components(x, t)
        r = torch.softmax(log_comp, dim=1)
        s = (r.reshape(r.shape + (1,) * len(self.event_shape)) * grad).sum(1)
        return self.process.space.project(s).to(x.dtype)

    def sample(self, n: int, t: float = 0.0, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Exact samples ``(n, *event_shape)`` from ``q_t``."""
        logw, mu, var = self.log_weights, self.means, self.variances
        comp = torch.multinomial(logw.exp(), n, replacement=True, generator=generator)
        t64 = torch.full((n,), float(t), dtype=torch.float64)
        ev = (1,) * len(self.event_shape)
        alpha = self.process.alpha(t64).reshape(-1, *ev)
        s2 = self.process.sigma2(t64).reshape(-1, *ev)
        std = torch.sqrt(alpha**2 * var[comp] + s2)
        eps = torch.randn((n, *self.event_shape), generator=generator, dtype=torch.float64)
        eps = self.process.space.project(eps)
        return (alpha * mu[comp] + std * eps).to(dtype)

    def __repr__(self) -> str:
        return (f"GaussianMixtureExpert(k={self.means.shape[0]}, event_shape={self.event_shape}, "
                f"process={self.process})")
