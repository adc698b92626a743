r"""Wasserstein-2 between sets of point clouds, plain or up to rotation and permutation.

For clouds ``a, b: (n_atoms, n_dim)`` the *equivariant* squared distance is

    c(a, b) = min_{R in SO(d), P permutation} sum_i |(a_i - abar) - R (b_{P(i)} - bbar)|^2,

(``O(d)`` instead of ``SO(d)`` with ``reflections=True``). It is invariant to translating,
rotating and relabelling either cloud. The joint minimum is approximated by alternating
minimisation: Hungarian assignment (``scipy.optimize.linear_sum_assignment``) of atoms for a fixed
rotation, then Kabsch alignment for that assignment, until the assignment stops changing; it starts
from the identity and from every principal-axes alignment (``2^(d-1)`` proper axis sign choices, or
``2^d`` with reflections) and keeps the best. The result is an upper bound on ``c`` that is exact
for rotated and permuted copies of a cloud with distinct principal moments.

Between sets ``X = {x_k}`` (n clouds) and ``Y = {y_l}`` (m clouds) with uniform weights,
``W2 = sqrt(min_coupling sum_kl pi_kl C_kl)`` (square root of the OT cost; POT ``ot.emd2``), with
``C_kl = c(x_k, y_l)`` (equivariant) or ``|x_k - y_l|^2`` (plain).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment

from fkc.metrics._validation import check_clouds


def kabsch(a: np.ndarray, b: np.ndarray, reflections: bool = False) -> np.ndarray:
    """Rotation ``R: (d, d)`` minimising ``sum_i |a_i - R b_i|^2`` for centred ``a, b: (n, d)``.

    With ``reflections=True`` the minimum is over orthogonal matrices (``det = ±1``).
    """
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.ones(a.shape[1])
    if not reflections and np.linalg.det(vt.T @ u.T) < 0:
        d[-1] = -1.0
    return (vt.T * d) @ u.T


def _principal_axes(a: np.ndarray) -> np.ndarray:
    return np.linalg.eigh(a.T @ a)[1]  # columns, ascending eigenvalues


def aligned_squared_distance(
    a, b, reflections: bool = False, max_iter: int = 50
) -> tuple[float, np.ndarray, np.ndarray]:
    """Equivariant squared distance ``c(a, b)`` between two clouds (see module docstring).

    a, b: ``(n_atoms, n_dim)``. Returns ``(c, R, perm)`` with ``a - abar ≈ (b[perm] - bbar) R^T``.
    """
    a, b = check_clouds(np.asarray(a)[None], np.asarray(b)[None], "a", "b")
    a, b = a[0] - a[0].mean(0), b[0] - b[0].mean(0)
    d = a.shape[1]
    ua, ub = _principal_axes(a), _principal_axes(b)
    starts = [np.eye(d)]
    for signs in itertools.product((1.0, -1.0), repeat=d):
        r0 = (ua * np.array(signs)) @ ub.T  # maps b's axes onto a's
        if reflections or np.linalg.det(r0) > 0:
            starts.append(r0)
    best = (np.inf, np.eye(d), np.arange(a.shape[0]))
    for rot in starts:
        perm = None
        for _ in range(max_iter):
            br = b @ rot.T
            cost = ((a[:, None, :] - br[None, :, :]) ** 2).sum(-1)
            new_perm = linear_sum_assignment(cost)[1]
            if perm is not None and np.array_equal(new_perm, perm):
                break
            perm = new_perm
            rot = kabsch(a, b[perm], reflections)
        c = float(((a - b[perm] @ rot.T) ** 2).sum())
        if c < best[0]:
            best = (c, rot, perm)
    return best


def equivariant_cost_matrix(x, y, reflections: bool = False) -> np.ndarray:
    """``C_kl = c(x_k, y_l)`` for sets ``x: (n, n_atoms, n_dim)``, ``y: (m, ...)``; ``(n, m)``."""
    a, b = check_clouds(x, y)
    return np.array([[aligned_squared_distance(ak, bl, reflections)[0] for bl in b] for ak in a])


def _ot_w2(cost: np.ndarray) -> float:
    import ot  # POT, an optional dependency (extras "test" / "bench")

    n, m = cost.shape
    value = ot.emd2(np.full(n, 1.0 / n), np.full(m, 1.0 / m), cost)
    return float(np.sqrt(max(float(value), 0.0)))


def equivariant_w2(x, y, reflections: bool = False) -> float:
    """``W2`` between sets of clouds with the equivariant cost (rotation + permutation aligned).

    x: ``(n, n_atoms, n_dim)``, y: ``(m, n_atoms, n_dim)``; costs ``n * m`` alignments (use
    small sets, e.g. a few hundred clouds). Needs POT (``pip install pot``).
    """
    return _ot_w2(equivariant_cost_matrix(x, y, reflections))


def point_cloud_w2(x, y) -> float:
    """Plain ``W2`` between sets of clouds with cost ``|x_k - y_l|^2`` over all coordinates.

    x: ``(n, n_atoms, n_dim)``, y: ``(m, n_atoms, n_dim)``. Not invariant to anything.
    """
    a, b = check_clouds(x, y)
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    cost = (fa**2).sum(1)[:, None] + (fb**2).sum(1)[None] - 2.0 * fa @ fb.T
    return _ot_w2(np.maximum(cost, 0.0))
