"""Numba energies and single-atom energy differences, one pair per system.

Every kernel takes ``x: (n_atoms, n_dim)`` float64 and a float64 parameter vector ``p``; the
layouts are documented per kernel and produced by the systems' ``numba_kernels`` methods.
``*_delta(x, i, dx, p)`` returns ``E(x') - E(x)`` for ``x'`` equal to ``x`` with atom ``i`` moved by
``dx: (n_dim,)``; it costs ``O(n_atoms)`` instead of the ``O(n_atoms^2)`` of a full energy.

Harmonic term on centre-of-mass-relative coordinates, ``H(x) = sum_i |x_i - xbar|^2``: moving atom
``i`` by ``dx`` changes it by ``2 dx . (x_i - xbar) + |dx|^2 (1 - 1/n_atoms)`` (exact, no
assumption on ``xbar``).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _centered_sq(x):
    n, d = x.shape
    total = 0.0
    for a in range(d):
        m = 0.0
        for i in range(n):
            m += x[i, a]
        m /= n
        for i in range(n):
            total += (x[i, a] - m) ** 2
    return total


@nb.njit(cache=True)
def _centered_sq_delta(x, i, dx):
    n, d = x.shape
    out = 0.0
    for a in range(d):
        m = 0.0
        for j in range(n):
            m += x[j, a]
        m /= n
        out += 2.0 * dx[a] * (x[i, a] - m) + dx[a] * dx[a] * (1.0 - 1.0 / n)
    return out


# ---------------------------------------------------------------- Lennard-Jones
# p = [epsilon, r_m, k, pair_factor]
@nb.njit(cache=True)
def _lj_pair(r2, rm2):
    s = rm2 / r2
    s3 = s * s * s
    return s3 * s3 - 2.0 * s3


@nb.njit(cache=True)
def lj_energy(x, p):
    eps, rm, k, fac = p[0], p[1], p[2], p[3]
    rm2 = rm * rm
    n, d = x.shape
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r2 = 0.0
            for a in range(d):
                r2 += (x[i, a] - x[j, a]) ** 2
            e += _lj_pair(r2, rm2)
    e *= eps * fac
    if k != 0.0:
        e += 0.5 * k * _centered_sq(x)
    return e


@nb.njit(cache=True)
def lj_delta(x, i, dx, p):
    eps, rm, k, fac = p[0], p[1], p[2], p[3]
    rm2 = rm * rm
    n, d = x.shape
    de = 0.0
    for j in range(n):
        if j == i:
            continue
        r2_old = 0.0
        r2_new = 0.0
        for a in range(d):
            diff = x[i, a] - x[j, a]
            r2_old += diff * diff
            r2_new += (diff + dx[a]) ** 2
        de += _lj_pair(r2_new, rm2) - _lj_pair(r2_old, rm2)
    de *= eps * fac
    if k != 0.0:
        de += 0.5 * k * _centered_sq_delta(x, i, dx)
    return de


# ---------------------------------------------------------------- double well
# p = [a, b, c, d0, pair_factor]
@nb.njit(cache=True)
def _dw_pair(r, a, b, c, d0):
    u = r - d0
    u2 = u * u
    return a * u2 * u2 + b * u2 + c


@nb.njit(cache=True)
def dw_energy(x, p):
    a, b, c, d0, fac = p[0], p[1], p[2], p[3], p[4]
    n, d = x.shape
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r2 = 0.0
            for q in range(d):
                r2 += (x[i, q] - x[j, q]) ** 2
            e += _dw_pair(np.sqrt(r2), a, b, c, d0)
    return fac * e


@nb.njit(cache=True)
def dw_delta(x, i, dx, p):
    a, b, c, d0, fac = p[0], p[1], p[2], p[3], p[4]
    n, d = x.shape
    de = 0.0
    for j in range(n):
        if j == i:
            continue
        r2_old = 0.0
        r2_new = 0.0
        for q in range(d):
            diff = x[i, q] - x[j, q]
            r2_old += diff * diff
            r2_new += (diff + dx[q]) ** 2
        de += _dw_pair(np.sqrt(r2_new), a, b, c, d0) - _dw_pair(np.sqrt(r2_old), a, b, c, d0)
    return fac * de


# ---------------------------------------------------------------- harmonic cluster
# p = [k]
@nb.njit(cache=True)
def harmonic_energy(x, p):
    return 0.5 * p[0] * _centered_sq(x)


@nb.njit(cache=True)
def harmonic_delta(x, i, dx, p):
    return 0.5 * p[0] * _centered_sq_delta(x, i, dx)
