"""Choice between the numba (CPU) and torch (any device) kernels (private)."""

from __future__ import annotations

import functools
import importlib

import torch

BACKENDS = ("auto", "numba", "torch")


@functools.cache
def _numba_kernels_or_none():
    try:
        return importlib.import_module("fkc.smc._numba_kernels")
    except ImportError:  # numba missing or broken: "auto" falls back to torch
        return None


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def numba_kernels(backend: str, device: torch.device):
    """The numba kernel module if ``backend`` selects it for tensors on ``device``, else None.

    ``"auto"``: numba on CPU (if importable), torch elsewhere; ``"numba"``: CPU only;
    ``"torch"``: never numba.
    """
    check_backend(backend)
    if backend == "torch":
        return None
    if backend == "numba":
        if device.type != "cpu":
            raise ValueError(f"backend='numba' needs CPU tensors, got device {device}")
        kernels = _numba_kernels_or_none()
        if kernels is None:
            raise ImportError("backend='numba' needs numba (pip install numba)")
        return kernels
    return _numba_kernels_or_none() if device.type == "cpu" else None
