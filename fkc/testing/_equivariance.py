"""Equivariance checks for functions of molecular configurations.

A function ``fn(pos)`` or ``fn(pos, graph)`` of ``pos: (*batch, n_atoms, 3)`` is checked against

* rotations ``x -> x Q^T`` (Haar SO(3), an independent ``Q`` per configuration of the batch);
* reflections ``x -> x P^T`` (Haar improper orthogonal, ``det P = -1``);
* translations ``x -> x + b`` (an independent Gaussian ``b`` per configuration, scale = the
  configuration's spread);
* atom permutations ``x -> x[..., perm, :]`` with ``graph.permute(perm)`` (one ``perm`` for the
  whole batch, since the graph is shared).

``output`` says how the result must transform:

* ``"vector"``: ``(*batch, n_atoms, 3)`` vector field: rotated/reflected, permuted along the atom
  axis, unchanged by translations;
* ``"scalar"``: one invariant per configuration (any shape, e.g. ``(*batch,)``): unchanged by all;
* ``"atom_scalar"``: invariant per-atom quantity ``(*batch, n_atoms, ...)``: permuted, otherwise
  unchanged.

An error is ``max |f(g x) - g f(x)|``; a check passes when ``error <= atol + rtol * max|f(x)|``.
Default tolerances depend on ``pos.dtype`` (:func:`default_tolerance`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._transforms import permute_graph, random_permutation, random_reflection, random_rotation

OUTPUT_KINDS = ("vector", "scalar", "atom_scalar")

_TOLERANCES = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (3e-2, 3e-2),
}


def default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for ``dtype``: float64 ``1e-9``, float32 ``1e-4``, half ``1e-2``."""
    if dtype not in _TOLERANCES:
        raise ValueError(f"no default tolerance for dtype {dtype}; pass atol and rtol")
    return _TOLERANCES[dtype]


def _call(fn, pos, graph):
    # no torch.no_grad(): fn may differentiate internally (score = -grad E)
    out = fn(pos) if graph is None else fn(pos, graph)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"fn must return a tensor, got {type(out).__name__}")
    return out.detach()


def _apply_linear(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x: ``(*batch, n, 3)``, m: ``(*batch, 3, 3)`` -> ``x m^T`` per configuration."""
    return torch.einsum("...ij,...aj->...ai", m, x)


def equivariance_errors(
    fn: Callable,
    pos: torch.Tensor,
    graph=None,
    *,
    output: str = "vector",
    rotations: bool = True,
    reflections: bool = True,
    translations: bool = True,
    permutations: bool = True,
    com_free: bool = False,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Max absolute equivariance errors of ``fn`` at ``pos`` (no assertion).

    fn: ``fn(pos)`` (``graph is None``) or ``fn(pos, graph)``; pos: ``(*batch, n_atoms, 3)``;
    graph: ``None``, a per-atom tensor ``(n_atoms, ...)`` or an object with ``.permute(perm)``.
    com_free: also report ``"com"``, the max norm of the output's centre of mass (vector outputs).
    Returns ``{"rotation": ..., "reflection": ..., "translation": ..., "permutation": ...,
    ("com": ...), "scale": max|f(x)|}`` for the checks requested.
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {output!r}")
    if not isinstance(pos, torch.Tensor) or pos.dim() < 2 or pos.shape[-1] != 3:
        raise ValueError(
            "pos must be a tensor (*batch, n_atoms, 3), got "
            f"{tuple(pos.shape) if isinstance(pos, torch.Tensor) else type(pos).__name__}"
        )
    if com_free and output != "vector":
        raise ValueError(f"com_free=True only applies to output='vector', got output={output!r}")
    batch_shape = pos.shape[:-2]
    n_batch = int(torch.Size(batch_shape).numel())
    atom_axis = pos.dim() - 2
    dtype, device = pos.dtype, pos.device

    def _mats(sampler):
        m = sampler(n_batch, generator=generator, dtype=dtype, device=device)
        return m.reshape(*batch_shape, 3, 3)

    ref = _call(fn, pos, graph)
    if output == "vector" and ref.shape[-2:] != pos.shape[-2:]:
        raise ValueError(
            "output='vector' needs fn to return shape (..., n_atoms, 3) like pos "
            f"{tuple(pos.shape)}, "
            f"got {tuple(ref.shape)}"
        )
    errors: dict[str, float] = {"scale": float(ref.abs().max()) if ref.numel() else 0.0}

    def _err(a, b):
        return float((a - b).abs().max()) if a.numel() else 0.0

    for name, on, sampler in (
        ("rotation", rotations, random_rotation),
        ("reflection", reflections, random_reflection),
    ):
        if not on:
            continue
        m = _mats(sampler)
        out = _call(fn, _apply_linear(pos, m), graph)
        expected = _apply_linear(ref, m) if output == "vector" else ref
        errors[name] = _err(out, expected)
    if translations:
        spread = pos.detach().abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1.0)
        shift = torch.randn(*batch_shape, 1, 3, generator=generator, dtype=torch.float64)
        out = _call(fn, pos + spread * shift.to(dtype=dtype, device=device), graph)
        errors["translation"] = _err(out, ref)
    if permutations:
        perm = random_permutation(pos.shape[-2], generator=generator, device=device)
        out = _call(fn, pos.index_select(atom_axis, perm), permute_graph(graph, perm))
        expected = ref if output == "scalar" else ref.index_select(atom_axis, perm)
        errors["permutation"] = _err(out, expected)
    if com_free:
        errors["com"] = float(ref.mean(dim=-2).norm(dim=-1).max()) if ref.numel() else 0.0
    return errors


def assert_equivariant(
    fn: Callable,
    pos: torch.Tensor,
    graph=None,
    *,
    output: str = "vector",
    rotations: bool = True,
    reflections: bool = True,
    translations: bool = True,
    permutations: bool = True,
    com_free: bool = False,
    atol: float | None = None,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Assert that ``fn`` transforms as ``output`` under the requested symmetries.

    Arguments as :func:`equivariance_errors`; ``atol``/``rtol`` default to
    :func:`default_tolerance` of ``pos.dtype``. Returns the error dict; raises ``AssertionError``
    naming every failed transformation, its error and the tolerance. Use ``reflections=False`` for
    SE(3) (parity-sensitive) models, and put models in ``eval()`` mode (no random dropout).
    """
    d_atol, d_rtol = default_tolerance(pos.dtype) if (atol is None or rtol is None) else (0.0, 0.0)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    errors = equivariance_errors(
        fn,
        pos,
        graph,
        output=output,
        rotations=rotations,
        reflections=reflections,
        translations=translations,
        permutations=permutations,
        com_free=com_free,
        generator=generator,
    )
    tol = atol + rtol * errors["scale"]
    failed = {k: v for k, v in errors.items() if k != "scale" and not v <= tol}
    if failed:
        what = ", ".join(f"{k}: max error {v:.3e}" for k, v in failed.items())
        raise AssertionError(
            f"fn is not {'invariant' if output != 'vector' else 'equivariant'} ({output!r} output) "
            f"under {sorted(failed)}: {what} > tolerance {tol:.3e} (atol={atol:g}, rtol={rtol:g}, "
            f"max|f(x)|={errors['scale']:.3e}, dtype={pos.dtype}); all errors: "
            + ", ".join(f"{k}={v:.3e}" for k, v in errors.items())
        )
    return errors


def assert_invariant(fn: Callable, pos: torch.Tensor, graph=None, **kwargs) -> dict[str, float]:
    """:func:`assert_equivariant` with ``output="scalar"`` (e.g. energies ``(*batch,)``)."""
    return assert_equivariant(fn, pos, graph, output="scalar", **kwargs)
