"""Torch kernels of :mod:`fkc.smc` (private): any device, float64.

The resampling kernels mirror :mod:`fkc.smc._numba_kernels` operation by operation (see there for
why): cumulative sums with ``torch.cumsum`` (sequential on CPU), scalars computed in Python, and
only ``+``, ``*``, ``floor`` on tensors, so that both backends return identical ancestors on CPU.
"""

from __future__ import annotations

import math

import torch


def ancestors_from_points(w: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF lookup of sorted points.

    w: ``(n,)`` float64 >= 0 with a positive sum; points: ``(n_out,)`` float64 in [0, 1], sorted.
    Returns ``(n_out,)`` int64 ``i`` with ``C_{i-1} <= p * C_{n-1} < C_i`` where ``C = cumsum(w)``;
    points that rounding puts at or beyond the total go to the last particle with a non-empty
    interval (never to a zero-weight particle).
    """
    c = torch.cumsum(w, 0)
    total = c[-1:]
    last = torch.searchsorted(c, total, right=False)  # first index where C reaches its total
    idx = torch.searchsorted(c, points * total, right=True)
    return torch.minimum(idx, last)


def systematic_points(u0: torch.Tensor, n_out: int) -> torch.Tensor:
    """``p_j = (j + u0) * (1 / n_out)``; u0: ``(1,)`` float64. Returns ``(n_out,)``."""
    j = torch.arange(n_out, dtype=torch.float64, device=u0.device)
    return (j + u0) * (1.0 / n_out)


def stratified_points(u: torch.Tensor) -> torch.Tensor:
    """``p_j = (j + u_j) * (1 / n_out)``; u: ``(n_out,)`` float64. Returns ``(n_out,)``."""
    n_out = u.shape[0]
    j = torch.arange(n_out, dtype=torch.float64, device=u.device)
    return (j + u) * (1.0 / n_out)


def spacings_points(e: torch.Tensor) -> torch.Tensor:
    """Sorted uniforms from ``n_out + 1`` exponentials ``e``: ``p_j = S_j / S_{n_out}`` with
    ``S = cumsum(e)``, ``j < n_out``. Returns ``(n_out,)``."""
    s = torch.cumsum(e, 0)
    inv_total = 1.0 / float(s[-1])
    return s[:-1] * inv_total


def residual_split(w: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_i = w_i * (n_out / sum(w))``; returns ``(counts, r)`` with ``counts = floor(x)``
    (int64, ``(n,)``) and ``r = x - counts`` (float64, ``(n,)``)."""
    total = float(torch.cumsum(w, 0)[-1])  # sequential sum, as in the numba kernel
    x = w * (n_out / total)
    f = torch.floor(x)
    return f.to(torch.int64), x - f


def log_weight_stats(lw: torch.Tensor) -> tuple[float, float, int, int, int]:
    """Reductions of unnormalised log-weights ``lw: (n,)`` float64.

    Returns ``(logsumexp, ess, n_nan, n_neginf, n_posinf)`` over the entries that are neither NaN
    nor +inf (NaN counts as -inf). ``logsumexp = -inf`` and ``ess = 0`` if no entry is finite.
    """
    isnan = torch.isnan(lw)
    isposinf = torch.isposinf(lw)
    n_nan = int(isnan.sum())
    n_neginf = int(torch.isneginf(lw).sum())
    n_posinf = int(isposinf.sum())
    if n_nan or n_posinf:
        lw = lw.masked_fill(isnan | isposinf, -math.inf)
    lse = torch.logsumexp(lw, 0)
    if not torch.isfinite(lse):
        return -math.inf, 0.0, n_nan, n_neginf, n_posinf
    # ESS = (sum w)^2 / sum w^2 = exp(2 logsumexp(lw) - logsumexp(2 lw)).
    ess = torch.exp(2.0 * lse - torch.logsumexp(2.0 * lw, 0))
    return float(lse), float(ess), n_nan, n_neginf, n_posinf
