r"""Importance weights in log space (float64).

For unnormalised log-weights ``log_w: (n,)`` (NaN is treated as ``-inf``, i.e. a zero weight):

* normalised log-weights ``log_W = log_w - logsumexp(log_w)`` (so ``logsumexp(log_W) = 0``);
* log mean weight ``log_mean = logsumexp(log_w) - log n``: the SMC estimate of a ratio of
  normalising constants contributed by these weights;
* effective sample size ``ESS = 1 / sum_i W_i^2 = (sum w)^2 / sum w^2`` in [1, n] (0 if all
  weights are zero).

``+inf`` log-weights have no normalised value and raise ``ValueError``. On CPU the reductions are
one fused numba pass (online logsumexp, sum of squares and dead counts); on other devices, or with
``backend="torch"``, torch reductions on the device of the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from . import _torch_kernels as tk
from ._backend import check_backend, numba_kernels

__all__ = ["Weights", "ess", "normalize"]


@dataclass(frozen=True, eq=False)
class Weights:
    """Immutable view of unnormalised log-weights with cached summaries (computed once, lazily).

    log_weights: ``(n,)`` float tensor, any dtype and device (summaries in float64).
    backend: ``"auto"`` (numba on CPU, torch elsewhere), ``"numba"`` or ``"torch"``.
    """

    log_weights: torch.Tensor
    backend: str = "auto"

    def __post_init__(self):
        lw = self.log_weights
        if not isinstance(lw, torch.Tensor):
            raise TypeError(f"log_weights must be a torch.Tensor, got {type(lw).__name__}")
        if lw.ndim != 1:
            raise ValueError(f"log_weights must be 1-D of shape (n,), got shape {tuple(lw.shape)}")
        if lw.shape[0] == 0:
            raise ValueError("log_weights is empty (shape (0,))")
        if not lw.is_floating_point():
            raise ValueError(f"log_weights must have a floating dtype, got {lw.dtype}")
        check_backend(self.backend)

    @property
    def n(self) -> int:
        return self.log_weights.shape[0]

    @cached_property
    def log_w(self) -> torch.Tensor:
        """``(n,)`` float64 log-weights with NaN replaced by ``-inf``."""
        lw = self.log_weights.detach().to(torch.float64)
        return torch.where(torch.isnan(lw), -math.inf, lw)

    @cached_property
    def _stats(self) -> tuple[float, float, int, int, int]:
        """``(logsumexp, ess, n_nan, n_neginf, n_posinf)``."""
        lw = self.log_weights.detach().to(torch.float64)
        kernels = numba_kernels(self.backend, lw.device)
        if kernels is None:
            return tk.log_weight_stats(lw)
        m, s1, s2, n_nan, n_neginf, n_posinf = kernels.log_weight_stats(lw.contiguous().numpy())
        if m == -math.inf:
            return -math.inf, 0.0, int(n_nan), int(n_neginf), int(n_posinf)
        return m + math.log(s1), s1 * s1 / s2, int(n_nan), int(n_neginf), int(n_posinf)

    def _check_no_posinf(self) -> None:
        n_posinf = self._stats[4]
        if n_posinf:
            raise ValueError(f"{n_posinf} of {self.n} log-weights are +inf: weights undefined")

    @cached_property
    def log_sum(self) -> float:
        """``logsumexp(log_w)`` (``-inf`` if all weights are zero)."""
        self._check_no_posinf()
        return self._stats[0]

    @cached_property
    def log_mean(self) -> float:
        """``logsumexp(log_w) - log n`` (``-inf`` if all weights are zero)."""
        return self.log_sum - math.log(self.n)

    @cached_property
    def ess(self) -> float:
        """Effective sample size ``1 / sum W_i^2`` in [1, n]; 0.0 if all weights are zero."""
        self._check_no_posinf()
        return self._stats[1]

    @cached_property
    def n_dead(self) -> int:
        """Number of zero weights (``-inf`` or NaN log-weights)."""
        return self._stats[2] + self._stats[3]

    @cached_property
    def log_W(self) -> torch.Tensor:
        """``(n,)`` float64 normalised log-weights, ``logsumexp(log_W) = 0``.

        Raises ValueError if all weights are zero."""
        if self.log_sum == -math.inf:
            raise ValueError(
                f"cannot normalise: all {self.n} log-weights are -inf or NaN (all weights zero)"
            )
        return self.log_w - self.log_sum

    @cached_property
    def W(self) -> torch.Tensor:
        """``(n,)`` float64 normalised weights, summing to 1."""
        return torch.exp(self.log_W)


def normalize(log_weights: torch.Tensor, backend: str = "auto") -> tuple[torch.Tensor, float]:
    """Normalise log-weights in log space.

    log_weights: ``(n,)``. Returns ``(log_W, log_mean)``: ``log_W: (n,)`` float64 with
    ``logsumexp(log_W) = 0`` (NaN entries become ``-inf``) and the float
    ``log_mean = logsumexp(log_weights) - log n``. Raises ValueError if all weights are zero.
    """
    w = Weights(log_weights, backend)
    return w.log_W, w.log_mean


def ess(log_weights: torch.Tensor, backend: str = "auto") -> float:
    """Effective sample size ``(sum w)^2 / sum w^2`` of ``log_weights: (n,)`` (NaN = zero weight);
    0.0 if all weights are zero."""
    return Weights(log_weights, backend).ess
