"""The shipped equivariance kit: transformations are right, and the kit can fail."""

import pytest
import torch

from fkc.models import MolecularGraph
from fkc.testing import (
    assert_equivariant,
    assert_invariant,
    default_tolerance,
    equivariance_errors,
    permute_graph,
    random_molecular_graph,
    random_permutation,
    random_reflection,
    random_rotation,
)

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_rotations_are_haar_so3():
    q = random_rotation(20000, generator=_gen())
    assert q.dtype == F64 and q.shape == (20000, 3, 3)
    eye = torch.eye(3, dtype=F64)
    assert (q @ q.transpose(1, 2) - eye).abs().max() < 1e-13
    torch.testing.assert_close(torch.linalg.det(q), torch.ones(20000, dtype=F64))
    # Haar: E[Q] = 0 and E[Q_ij^2] = 1/3 (sd of a mean of 20000 entries ~ 0.004)
    assert q.mean(0).abs().max() < 0.02
    assert ((q**2).mean(0) - 1 / 3).abs().max() < 0.02
    # trace of a Haar SO(3) rotation, 1 + 2 cos(theta): mean 0, E[tr^2] = 1
    tr = q.diagonal(dim1=1, dim2=2).sum(-1)
    assert abs(tr.mean().item()) < 0.03 and abs((tr**2).mean().item() - 1) < 0.05
    r = random_reflection(5, generator=_gen(1))
    torch.testing.assert_close(torch.linalg.det(r), -torch.ones(5, dtype=F64))
    assert random_rotation(generator=_gen(), dtype=torch.float32).shape == (3, 3)
    # same generator seed, same matrices
    assert torch.equal(random_rotation(3, generator=_gen(4)), random_rotation(3, generator=_gen(4)))


def test_permute_graph_semantics():
    perm = random_permutation(6, generator=_gen())
    assert sorted(perm.tolist()) == list(range(6))
    feats = torch.arange(6.0)[:, None]
    assert torch.equal(permute_graph(feats, perm), feats[perm])
    assert permute_graph(None, perm) is None
    g = random_molecular_graph(6, n_atom_types=3, n_bond_types=2, n_extra_bonds=2, generator=_gen())
    gp = permute_graph(g, perm)
    assert isinstance(gp, MolecularGraph)
    bonds = {
        frozenset((int(a), int(b))): int(t)
        for (a, b), t in zip(g.edge_index.T, g.bond_types, strict=True)
    }
    bonds_p = {
        frozenset((int(perm[a]), int(perm[b]))): int(t)
        for (a, b), t in zip(gp.edge_index.T, gp.bond_types, strict=True)
    }
    assert bonds == bonds_p
    with pytest.raises(TypeError, match="cannot permute a str"):
        permute_graph("abc", perm)


def _vector_field(pos, graph=None):
    """An equivariant, translation-invariant, CoM-free vector field (pairwise forces)."""
    diff = pos[..., :, None, :] - pos[..., None, :, :]
    w = torch.exp(-(diff**2).sum(-1, keepdim=True))
    if graph is not None:
        w = (
            w
            * (1 + graph.atom_types.to(pos.dtype))[:, None, None]
            * (1 + graph.atom_types.to(pos.dtype))[None, :, None]
        )
    return (w * diff).sum(-2)


def test_equivariant_function_passes_and_errors_are_tiny():
    pos = torch.randn(3, 5, 3, generator=_gen(), dtype=F64)
    g = random_molecular_graph(5, n_atom_types=4, generator=_gen(1))
    errs = assert_equivariant(_vector_field, pos, g, com_free=True, generator=_gen(2))
    assert set(errs) == {"scale", "rotation", "reflection", "translation", "permutation", "com"}
    assert max(v for k, v in errs.items() if k != "scale") < 1e-13
    assert_invariant(lambda p: (_vector_field(p) ** 2).sum((-2, -1)), pos, generator=_gen(3))
    assert_equivariant(
        lambda p: (_vector_field(p) ** 2).sum(-1), pos, output="atom_scalar", generator=_gen(3)
    )
    assert_equivariant(_vector_field, pos[0], generator=_gen(5))  # unbatched (n_atoms, 3)


@pytest.mark.parametrize(
    "fn, failing",
    [
        (
            lambda p: _vector_field(p) + torch.tensor([0.0, 0.0, 0.1], dtype=p.dtype),
            ["rotation", "reflection"],
        ),
        (lambda p: _vector_field(p) + 1e-3 * p, ["translation"]),  # not translation invariant
        (
            lambda p: _vector_field(p) * torch.arange(1.0, 6.0, dtype=p.dtype)[:, None],
            ["permutation"],
        ),
        (
            lambda p: torch.cross(_vector_field(p), p - p.mean(-2, keepdim=True), dim=-1),
            ["reflection"],
        ),  # pseudo-vector
        (
            lambda p: _vector_field(p) + 1e-6 * _vector_field(p)[..., [1, 0, 2]],
            ["rotation", "reflection"],
        ),
    ],
    ids=[
        "constant_field",
        "absolute_position",
        "position_dependent_weights",
        "pseudovector",
        "small_leak",
    ],
)
def test_kit_catches_non_equivariant_functions(fn, failing):
    pos = torch.randn(4, 5, 3, generator=_gen(), dtype=F64)
    with pytest.raises(AssertionError) as info:
        assert_equivariant(fn, pos, generator=_gen(1))
    msg = str(info.value)
    assert f"under {sorted(failing)}" in msg, msg
    assert "> tolerance" in msg and "dtype=torch.float64" in msg
    errs = equivariance_errors(fn, pos, generator=_gen(1))
    for k in failing:
        assert errs[k] > 1e-9


def test_pseudovector_passes_without_reflections_and_com_check_fails():
    pos = torch.randn(2, 4, 3, generator=_gen(), dtype=F64)

    def pseudo(p):
        return torch.cross(_vector_field(p), p - p.mean(-2, keepdim=True), dim=-1)

    assert_equivariant(pseudo, pos, reflections=False, generator=_gen(1))
    with pytest.raises(AssertionError, match=r"under \['com'\]"):
        assert_equivariant(
            lambda p: _vector_field(p) + 0.5,
            pos,
            rotations=False,
            reflections=False,
            com_free=True,
            generator=_gen(1),
        )
    with pytest.raises(AssertionError, match=r"not invariant .* under \['reflection', 'rotation'"):
        assert_invariant(lambda p: p[..., 0, 0], pos, generator=_gen(1))


def test_batched_rotations_are_independent_per_configuration():
    """A function that mixes configurations of the batch is caught (one rotation per config)."""
    pos = torch.randn(3, 4, 3, generator=_gen(), dtype=F64)

    def mixing(p):
        return _vector_field(p) + 0.1 * _vector_field(p).roll(1, dims=0)

    errs = equivariance_errors(
        mixing, pos, generator=_gen(1), translations=False, permutations=False
    )
    assert errs["rotation"] > 1e-3


def test_tolerances_per_dtype_and_argument_checks():
    assert default_tolerance(F64) == (1e-9, 1e-9)
    assert default_tolerance(torch.float32) == (1e-4, 1e-4)
    with pytest.raises(ValueError, match="no default tolerance for dtype torch.int64"):
        default_tolerance(torch.int64)
    pos32 = torch.randn(2, 4, 3, generator=_gen())
    assert_equivariant(_vector_field, pos32, generator=_gen(1))  # float32 passes at 1e-4
    with pytest.raises(AssertionError):
        assert_equivariant(_vector_field, pos32, atol=0.0, rtol=0.0, generator=_gen(1))
    with pytest.raises(ValueError, match="output must be one of"):
        equivariance_errors(_vector_field, pos32, output="tensor")
    with pytest.raises(ValueError, match=r"pos must be a tensor \(\*batch, n_atoms, 3\)"):
        equivariance_errors(_vector_field, torch.randn(4, 2))
    with pytest.raises(ValueError, match="output='vector' needs fn to return shape"):
        equivariance_errors(lambda p: p.sum(-1), pos32)
