"""Random symmetry transformations (float64 by default, explicit generators)."""

from __future__ import annotations

import torch


def random_rotation(
    n: int | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Haar-random rotation matrices (det = +1).

    QR of a Gaussian matrix with the signs of ``diag(R)`` moved into ``Q`` (Mezzadri 2007) gives a
    Haar-distributed orthogonal matrix; flipping one column when ``det = -1`` gives Haar on SO(3).
    Computed in float64, returned in ``dtype``. Returns ``(3, 3)`` if ``n is None`` else
    ``(n, 3, 3)``.
    """
    m = 1 if n is None else n
    a = torch.randn(m, 3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    det = torch.linalg.det(q)
    q[:, :, 0] = q[:, :, 0] * det[:, None]
    q = q.to(dtype=dtype, device=device)
    return q[0] if n is None else q


def random_reflection(
    n: int | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Haar-random improper orthogonal matrices (det = -1): a rotation times the mirror
    ``diag(-1, 1, 1)``. Returns ``(3, 3)`` or ``(n, 3, 3)``."""
    q = random_rotation(n, generator=generator, dtype=torch.float64)
    q = q * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    return q.to(dtype=dtype, device=device)


def random_permutation(
    n_atoms: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform random permutation ``(n_atoms,)`` long (new atom ``k`` = old atom ``perm[k]``)."""
    return torch.randperm(n_atoms, generator=generator).to(device)


def permute_graph(graph, perm: torch.Tensor):
    """Apply an atom permutation to per-atom inputs: ``None`` stays ``None``; a tensor is indexed
    along dim 0 (``(n_atoms, ...)`` features); any other object must have ``.permute(perm)``
    (e.g. :class:`fkc.models.MolecularGraph`, which also relabels bonds)."""
    if graph is None:
        return None
    if isinstance(graph, torch.Tensor):
        return graph[perm.to(graph.device)]
    if hasattr(graph, "permute"):
        return graph.permute(perm)
    raise TypeError(
        f"cannot permute a {type(graph).__name__}: pass None, a per-atom tensor or an object with "
        ".permute(perm)"
    )
