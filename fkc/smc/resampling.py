r"""Resampling schemes: pure functions ``(log_weights, generator) -> ancestors``.

Every scheme draws ``n_out`` ancestor indices ``A_j`` from unnormalised log-weights
``log_weights: (n,)`` such that the offspring counts ``N_i = #{j : A_j = i}`` are unbiased,
``E[N_i] = n_out W_i`` with ``W_i = w_i / sum_k w_k``. They differ in the variance of ``N_i``
(multinomial > residual, stratified, systematic in practice; see Douc, Cappé & Moulines 2005,
"Comparison of resampling schemes for particle filtering").

All schemes are inverse-CDF lookups of points ``p_j`` in [0, 1): ancestor ``i`` is chosen when
``C_{i-1} <= p_j C_{n-1} < C_i``, with ``C`` the cumulative sum of the linear weights
``w = exp(log_weights - max)``.

==============  =======================================  ==========================
scheme          points ``p_j``, ``j = 0..n_out-1``       uniforms drawn
==============  =======================================  ==========================
multinomial     order statistics of n_out i.i.d. U(0,1)  ``n_out + 1``
stratified      ``(j + U_j) / n_out``                    ``n_out``
systematic      ``(j + U) / n_out``                      ``1``
residual        ``floor(n_out W_i)`` copies of ``i``,    ``R + 1`` (none if R = 0)
                then multinomial on the remainders
==============  =======================================  ==========================

Conventions shared by every scheme:

* ``log_weights`` may have any float dtype; everything is computed in float64. ``-inf`` is a zero
  weight, NaN is treated as ``-inf``; ``+inf``, an all-zero weight vector, an empty or a non-1-D
  tensor raise ``ValueError``. Zero-weight particles are never selected.
* Uniforms are always drawn with ``torch.rand(..., generator=generator, dtype=float64)`` on the
  device of ``log_weights`` (``generator=None``: torch's default generator), so the generator is
  advanced in the same way whatever the backend. The linear weights ``exp(log_weights - max)`` and
  the exponential spacings ``-log1p(-U)`` are also computed once with torch.
* ``backend="numba"`` (CPU tensors only) turns weights and uniforms into ancestors with O(n)
  numba kernels working in place on ``tensor.numpy()`` views; ``backend="torch"`` uses
  ``cumsum`` + ``searchsorted`` and works on any device; ``"auto"`` picks numba on CPU and torch
  elsewhere. On CPU, both return identical ancestors for the same generator state.
* Returned ancestors: ``(n_out,)`` int64 on the device of ``log_weights``, sorted ascending, except
  for residual resampling (deterministic copies ascending, then the ``R`` residual draws ascending).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from . import _torch_kernels as tk
from ._backend import numba_kernels

Resampler = Callable[..., torch.Tensor]

__all__ = [
    "RESAMPLERS",
    "get_resampler",
    "multinomial",
    "residual",
    "stratified",
    "systematic",
]


def _prepare(log_weights: torch.Tensor, n_out: int | None, backend: str):
    """Validate the arguments; return ``(w, n_out, kernels)`` with the linear weights
    ``w = exp(log_weights - max): (n,)`` float64 (NaN mapped to zero weight; one torch ``exp``
    shared by both backends) and the numba kernel module (None for the torch backend)."""
    if not isinstance(log_weights, torch.Tensor):
        raise TypeError(f"log_weights must be a torch.Tensor, got {type(log_weights).__name__}")
    if log_weights.ndim != 1:
        raise ValueError(
            f"log_weights must be 1-D of shape (n,), got shape {tuple(log_weights.shape)}"
        )
    n = log_weights.shape[0]
    if n == 0:
        raise ValueError("log_weights is empty (shape (0,)): nothing to resample")
    if not log_weights.is_floating_point():
        raise ValueError(f"log_weights must have a floating dtype, got {log_weights.dtype}")
    if n_out is None:
        n_out = n
    elif isinstance(n_out, bool) or not isinstance(n_out, int) or n_out < 0:
        raise ValueError(f"n_out must be a non-negative int, got {n_out!r}")
    kernels = numba_kernels(backend, log_weights.device)
    lw = log_weights.detach().to(torch.float64)
    m = float(lw.max())
    if math.isnan(m):  # torch.max propagates NaN: clean up, then take the max again
        lw = torch.where(torch.isnan(lw), -math.inf, lw)
        m = float(lw.max())
    if m == -math.inf:
        raise ValueError(f"all {n} log-weights are -inf or NaN: no particle has positive weight")
    if m == math.inf:
        n_pos = int(torch.isposinf(lw).sum())
        raise ValueError(f"{n_pos} of {n} log-weights are +inf: weights undefined")
    w = _empty(n, torch.float64, lw.device, kernels)
    torch.sub(lw, m, out=w)
    return w.exp_(), n_out, kernels


_NUMPY_DTYPES = {torch.float64: np.float64, torch.int64: np.int64}


def _empty(n: int, dtype: torch.dtype, device: torch.device, kernels) -> torch.Tensor:
    """Uninitialised ``(n,)`` buffer. For the numba backend it is NumPy-allocated (and shared with
    torch, zero copy): NumPy recycles large buffers and asks for huge pages, whereas a fresh large
    torch CPU tensor is often fresh memory, whose page faults can cost more than the O(n)
    kernels themselves (measured ~2-4 us per 4 KiB page on the reference VM)."""
    if kernels is None:
        return torch.empty(n, dtype=dtype, device=device)
    return torch.from_numpy(np.empty(n, dtype=_NUMPY_DTYPES[dtype]))


def _rand(n: int, generator: torch.Generator | None, device: torch.device, kernels=None):
    """``(n,)`` float64 uniforms on [0, 1) from ``generator`` (same stream for both backends)."""
    out = _empty(n, torch.float64, device, kernels)
    return torch.rand(n, generator=generator, dtype=torch.float64, device=device, out=out)


def _exponentials(n: int, generator: torch.Generator | None, device: torch.device, kernels=None):
    """``(n,)`` standard exponentials ``-log1p(-U)``, ``U ~ U[0, 1)`` (finite: U < 1)."""
    return _rand(n, generator, device, kernels).neg_().log1p_().neg_()


def _no_ancestors(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.int64, device=device)


def _spacings(w: torch.Tensor, n_out: int, generator, kernels) -> torch.Tensor:
    """Multinomial draw of ``n_out`` sorted ancestors from linear weights ``w``."""
    if n_out == 0:
        return _no_ancestors(w.device)
    e = _exponentials(n_out + 1, generator, w.device, kernels)
    if kernels is None:
        return tk.ancestors_from_points(w, tk.spacings_points(e))
    out = _empty(n_out, torch.int64, w.device, kernels)
    kernels.spacings_kernel(w.numpy(), e.numpy(), out.numpy())
    return out


def multinomial(
    log_weights: torch.Tensor,
    generator: torch.Generator | None = None,
    n_out: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Multinomial resampling: ``A_j`` i.i.d. with ``P(A_j = i) = W_i``.

    O(n + n_out): the sorted uniforms are the normalised cumulative sums of ``n_out + 1``
    exponential spacings, merged with the cumulative weights (no sort, no binary search per draw
    in the numba backend). Consumes ``n_out + 1`` uniforms.

    log_weights: ``(n,)`` unnormalised; returns ancestors ``(n_out,)`` int64, sorted ascending.
    """
    w, n_out, kernels = _prepare(log_weights, n_out, backend)
    return _spacings(w, n_out, generator, kernels)


def stratified(
    log_weights: torch.Tensor,
    generator: torch.Generator | None = None,
    n_out: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Stratified resampling: one uniform in each stratum, ``p_j = (j + U_j) / n_out``.

    Consumes ``n_out`` uniforms. log_weights: ``(n,)``; returns ``(n_out,)`` int64, ascending.
    """
    w, n_out, kernels = _prepare(log_weights, n_out, backend)
    if n_out == 0:
        return _no_ancestors(w.device)
    u = _rand(n_out, generator, w.device, kernels)
    if kernels is None:
        return tk.ancestors_from_points(w, tk.stratified_points(u))
    out = _empty(n_out, torch.int64, w.device, kernels)
    kernels.stratified_kernel(w.numpy(), u.numpy(), 1.0 / n_out, out.numpy())
    return out


def systematic(
    log_weights: torch.Tensor,
    generator: torch.Generator | None = None,
    n_out: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Systematic resampling: a single uniform shifts an evenly spaced grid,
    ``p_j = (j + U) / n_out``. Every particle gets ``floor(n_out W_i)`` or ``ceil(n_out W_i)``
    offspring.

    Consumes 1 uniform. log_weights: ``(n,)``; returns ``(n_out,)`` int64, ascending.
    """
    w, n_out, kernels = _prepare(log_weights, n_out, backend)
    if n_out == 0:
        return _no_ancestors(w.device)
    u = _rand(1, generator, w.device)
    if kernels is None:
        return tk.ancestors_from_points(w, tk.systematic_points(u, n_out))
    out = _empty(n_out, torch.int64, w.device, kernels)
    kernels.systematic_kernel(w.numpy(), float(u), 1.0 / n_out, out.numpy())
    return out


def residual(
    log_weights: torch.Tensor,
    generator: torch.Generator | None = None,
    n_out: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Residual resampling: particle ``i`` first gets ``floor(n_out W_i)`` deterministic copies;
    the ``R = n_out - sum_i floor(n_out W_i)`` remaining ancestors are drawn by
    :func:`multinomial` from the remainders ``n_out W_i - floor(n_out W_i)``.

    Consumes ``R + 1`` uniforms (none if ``R = 0``), so the generator advances by an amount that
    depends on the weights.

    log_weights: ``(n,)``; returns ``(n_out,)`` int64 in this order: the deterministic copies in
    ascending order, then the ``R`` residual draws in ascending order (the whole vector is not
    sorted; ``ancestors.sort()`` if needed).
    """
    w, n_out, kernels = _prepare(log_weights, n_out, backend)
    n = w.shape[0]
    if n_out == 0:
        return _no_ancestors(w.device)
    if kernels is None:
        counts, r = tk.residual_split(w, n_out)
        det = torch.repeat_interleave(torch.arange(n, device=w.device), counts)
        n_det = det.shape[0]
    else:
        counts = _empty(n, torch.int64, w.device, kernels)
        r = _empty(n, torch.float64, w.device, kernels)
        n_det = int(kernels.residual_split(w.numpy(), n_out, counts.numpy(), r.numpy()))
    # sum_i floor(x_i) <= sum_i x_i = n_out (1 + O(n eps)) < n_out + 1: cannot fail in practice.
    if n_det > n_out:
        raise RuntimeError(f"residual: {n_det} deterministic copies exceed n_out={n_out}")
    n_res = n_out - n_det
    if kernels is None:
        if n_res == 0:
            return det
        return torch.cat([det, _spacings(r, n_res, generator, None)])
    out = _empty(n_out, torch.int64, w.device, kernels)
    kernels.repeat_indices(counts.numpy(), out.numpy())
    if n_res > 0:
        out[n_det:] = _spacings(r, n_res, generator, kernels)
    return out


RESAMPLERS: dict[str, Resampler] = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
}


def get_resampler(name: str) -> Resampler:
    """The resampling function registered under ``name`` in :data:`RESAMPLERS`."""
    try:
        return RESAMPLERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown resampling scheme {name!r}; valid names: {sorted(RESAMPLERS)}"
        ) from None
