"""Test helpers for systems: finite-difference forces and symmetry checks (use them on your own).

All helpers take ``x: (batch, n_atoms, n_dim)`` and compare in float64; tolerances are per call.
"""

from __future__ import annotations

import torch

from fkc.systems._base import System


def random_rotation(n_dim: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """A random proper rotation ``(n_dim, n_dim)`` (QR of a Gaussian matrix, det = +1)."""
    a = torch.randn(n_dim, n_dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def finite_difference_force(system: System, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``-grad E`` by central differences in float64. x: ``(batch, n_atoms, n_dim)``."""
    x = x.to(torch.float64)
    flat = x.reshape(x.shape[0], -1)
    grad = torch.empty_like(flat)
    for c in range(flat.shape[1]):
        dx = torch.zeros_like(flat)
        dx[:, c] = eps
        e_plus = system.energy((flat + dx).reshape(x.shape))
        e_minus = system.energy((flat - dx).reshape(x.shape))
        grad[:, c] = (e_plus - e_minus) / (2 * eps)
    return -grad.reshape(x.shape)


def assert_forces_match(
    system: System, x: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-6, eps: float = 1e-6
) -> None:
    """``system.force`` agrees with autograd and with central finite differences (float64)."""
    x = x.to(torch.float64)
    f = system.force(x)
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(system.energy(xg).sum(), xg)
    torch.testing.assert_close(f, -g, rtol=rtol, atol=atol, msg="force vs autograd")
    fd = finite_difference_force(system, x, eps)
    torch.testing.assert_close(f, fd, rtol=rtol, atol=atol, msg="force vs finite differences")


def assert_invariant(
    system: System, x: torch.Tensor, generator: torch.Generator, rtol: float = 1e-10,
    atol: float = 1e-9,
) -> None:  # fmt: skip
    """Energy invariant and force equivariant under translation, rotation and permutation."""
    x = x.to(torch.float64)
    e, f = system.energy(x), system.force(x)
    shift = torch.randn(1, 1, system.n_dim, generator=generator, dtype=x.dtype)
    rot = random_rotation(system.n_dim, generator)
    perm = torch.randperm(system.n_atoms, generator=generator)
    for what, y, fy in (
        ("translation", x + shift, f),
        ("rotation", x @ rot.T, f @ rot.T),
        ("permutation", x[:, perm], f[:, perm]),
    ):
        torch.testing.assert_close(system.energy(y), e, rtol=rtol, atol=atol, msg=f"E {what}")
        torch.testing.assert_close(system.force(y), fy, rtol=rtol, atol=atol, msg=f"F {what}")
