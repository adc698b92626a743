"""Numba kernels for the CPU backend of :mod:`fkc.smc` (private).

Every kernel works on NumPy views of CPU torch tensors (``tensor.numpy()``, zero copy) and is O(n).

Bit-for-bit agreement with :mod:`fkc.smc._torch_kernels` is part of the contract of the resampling
kernels: given the same linear weights ``w`` and the same uniforms, both return the same ancestors.
They therefore only use operations whose IEEE-754 result does not depend on the implementation
(``+``, ``-``, ``*``, scalar ``/``, ``floor``, comparisons), in the same order as the torch code;
running sums are sequential, as ``torch.cumsum`` is on CPU. Transcendental functions (``exp``,
``log1p``) are evaluated once with torch by the caller and shared by both backends (numba's libm
``exp`` and torch's vectorised one differ in the last bit for ~0.5% of inputs). Tensor divisions by
a scalar are avoided on the torch side (``scalar / tensor`` multiplies by a reciprocal). No
``fastmath``: it would let LLVM contract ``a * b + c`` into an FMA and change the rounding.
Inverse-CDF points are compared with the cumulative weights with exactly the test of
``torch.searchsorted(..., right=True)``; where a merge loop would mispredict a branch about once
per particle, the systematic and stratified kernels use a branch-free histogram + prefix sum.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


@_jit
def total_and_last(w):
    """Sequential sum of ``w: (n,)`` (the last entry of its cumulative sum) and the index where that
    cumulative sum last increases, i.e. the last particle whose interval ``[C_{i-1}, C_i)`` is
    non-empty. Out-of-range points (rounding can make ``p * total >= total``) go to that
    particle."""
    s = 0.0
    last = -1
    for i in range(w.shape[0]):
        t = s + w[i]
        if t > s:
            last = i
        s = t
    return s, last


@_jit
def _counts_to_ancestors(out):
    """In place: ``out[b] = #{i : b_i = b}`` (for ``b < n_out``) becomes the ancestors
    ``out[j] = #{i : b_i <= j}`` (a prefix sum)."""
    run = 0
    for j in range(out.shape[0]):
        run += out[j]
        out[j] = run


@_jit
def systematic_kernel(w, u0, inv_n_out, out):
    """Ancestors for the points ``p_j = (j + u0) * inv_n_out``, ``j = 0..n_out-1``.

    w: ``(n,)`` float64 >= 0 with a positive sum; out: ``(n_out,)`` int64, written in place.
    Ancestor of point j: ``min(#{i : C_i <= v_j}, last)`` with ``v_j = p_j * C_{n-1}`` and
    ``C = cumsum(w)`` -- what ``searchsorted(C, v, right=True)`` returns in the torch backend.

    Branch-free formulation (a data-dependent merge loop mispredicts about once per particle):
    for each particle ``i < last``, ``b_i = #{j : v_j < C_i}`` is guessed in closed form,
    ``ceil(C_i n_out / total - u0)``, and corrected by exact comparisons with ``v`` (the
    correction loops almost never run); then ``ancestor(j) = #{i < last : b_i <= j}`` is a
    histogram of the ``b_i`` followed by a prefix sum (which also clamps at ``last``).
    """
    total, last = total_and_last(w)
    n_out = out.shape[0]
    scale = n_out / total  # only for the guess: rounding here is corrected below
    out[:] = 0
    c = 0.0
    for i in range(last):
        c += w[i]
        b = min(max(np.ceil(c * scale - u0), 0.0), float(n_out))
        b = np.int64(b)
        while b > 0 and ((b - 1 + u0) * inv_n_out) * total >= c:
            b -= 1
        while b < n_out and ((b + u0) * inv_n_out) * total < c:
            b += 1
        if b < n_out:
            out[b] += 1
    _counts_to_ancestors(out)


@_jit
def stratified_kernel(w, u, inv_n_out, out):
    """As :func:`systematic_kernel` with one uniform per stratum: ``p_j = (j + u_j) * inv_n_out``,
    u: ``(n_out,)`` float64 in [0, 1). The guess for ``b_i`` is the stratum ``s`` containing
    ``C_i``, plus one if ``v_s < C_i``."""
    total, last = total_and_last(w)
    n_out = out.shape[0]
    scale = n_out / total
    out[:] = 0
    c = 0.0
    for i in range(last):
        c += w[i]
        s = np.int64(min(max(np.floor(c * scale), 0.0), float(n_out - 1)))
        b = s + np.int64(((s + u[s]) * inv_n_out) * total < c)
        while b > 0 and ((b - 1 + u[b - 1]) * inv_n_out) * total >= c:
            b -= 1
        while b < n_out and ((b + u[b]) * inv_n_out) * total < c:
            b += 1
        if b < n_out:
            out[b] += 1
    _counts_to_ancestors(out)


@_jit
def spacings_kernel(w, e, out):
    """Multinomial ancestors from sorted uniforms ``p_j = S_j * (1 / S_{n_out})``, where
    ``S_j = e_0 + ... + e_j`` are the cumulative sums of ``n_out + 1`` standard exponentials
    ``e: (n_out + 1,)``.
    ``(S_0, ..., S_{n_out-1}) / S_{n_out}`` are distributed as the order statistics of ``n_out``
    i.i.d. U(0, 1), so the merge below is an O(n + n_out) multinomial draw, sorted ascending.
    """
    e_total, _ = total_and_last(e)
    inv_e_total = 1.0 / e_total
    total, last = total_and_last(w)
    i = 0
    c = w[0]
    s = 0.0
    for j in range(out.shape[0]):
        s += e[j]
        v = (s * inv_e_total) * total
        while c <= v and i < last:
            i += 1
            c += w[i]
        out[j] = i


@_jit
def residual_split(w, n_out, counts, r):
    """Deterministic part of residual resampling.

    With ``x_i = w_i * (n_out / sum(w))``: ``counts_i = floor(x_i)`` and ``r_i = x_i - counts_i``
    (written in place; counts: ``(n,)`` int64, r: ``(n,)`` float64). Returns ``sum(counts)``.
    """
    total, _ = total_and_last(w)
    scale = n_out / total
    n_det = 0
    for i in range(w.shape[0]):
        x = w[i] * scale
        f = np.floor(x)
        counts[i] = np.int64(f)
        r[i] = x - f
        n_det += counts[i]
    return n_det


@_jit
def repeat_indices(counts, out):
    """``out[:sum(counts)] = [0]*counts_0 + [1]*counts_1 + ...`` (ascending). out must be large
    enough; the caller checks ``sum(counts) <= out.shape[0]``."""
    pos = 0
    for i in range(counts.shape[0]):
        for _ in range(counts[i]):
            out[pos] = i
            pos += 1
    return pos


@_jit
def log_weight_stats(lw):
    """One pass over unnormalised log-weights ``lw: (n,)`` float64.

    Returns ``(m, s1, s2, n_nan, n_neginf, n_posinf)`` where, over the finite entries,
    ``m = max lw``, ``s1 = sum exp(lw - m)`` and ``s2 = sum exp(2 (lw - m))`` (an online
    logsumexp: the running sums are rescaled when a new maximum appears). Then
    ``logsumexp(lw) = m + log(s1)`` and ``ESS = s1**2 / s2``. ``m = -inf`` if no entry is finite.
    """
    m = -np.inf
    s1 = 0.0
    s2 = 0.0
    n_nan = 0
    n_neginf = 0
    n_posinf = 0
    for i in range(lw.shape[0]):
        x = lw[i]
        if x != x:
            n_nan += 1
        elif x == -np.inf:
            n_neginf += 1
        elif x == np.inf:
            n_posinf += 1
        elif x <= m:
            e = np.exp(x - m)
            s1 += e
            s2 += e * e
        else:
            f = np.exp(m - x)  # 0 for the first finite entry (m = -inf)
            s1 = s1 * f + 1.0
            s2 = s2 * f * f + 1.0
            m = x
    return m, s1, s2, n_nan, n_neginf, n_posinf
