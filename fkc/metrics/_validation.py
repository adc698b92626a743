"""Input conversion and checks shared by the metrics (inputs may be numpy arrays or tensors)."""

from __future__ import annotations

import numpy as np
import torch


def as_float64(x, what: str) -> np.ndarray:
    """``x`` (array-like or tensor, any device) as a float64 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.ascontiguousarray(x, dtype=np.float64)


def check_1d(x, what: str) -> np.ndarray:
    """A non-empty, finite 1-D float64 array, or ``ValueError`` naming the problem."""
    a = as_float64(x, what)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array (n,), got shape {a.shape}")
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise ValueError(f"{what} has {bad} non-finite values out of {a.size}")
    return a


def check_clouds(x, y, what_x: str = "x", what_y: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Two sets of point clouds ``(n, n_atoms, n_dim)`` and ``(m, n_atoms, n_dim)``, finite."""
    a, b = as_float64(x, what_x), as_float64(y, what_y)
    for arr, what in ((a, what_x), (b, what_y)):
        if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] < 2:
            raise ValueError(
                f"{what} must have shape (n, n_atoms, n_dim) with n >= 1 and n_atoms >= 2, "
                f"got {arr.shape}"
            )
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise ValueError(f"{what} has {bad} non-finite coordinates")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{what_x} and {what_y} must have the same (n_atoms, n_dim), got shapes {a.shape} and "
            f"{b.shape}"
        )
    return a, b
