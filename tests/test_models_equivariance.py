"""Equivariance of the score networks (float64): rotations, translations, permutations at ~1e-9;
reflections: EGNN and the chiral=False tensor-product network are reflection-equivariant, the
chiral=True one is not (it separates mirror images)."""

import pytest
import torch

from fkc.models import EGNN, EGNNConfig, EnergyScoreModel, TensorProductConfig, build_model
from fkc.testing import (
    assert_equivariant,
    assert_invariant,
    equivariance_errors,
    random_molecular_graph,
)

F64 = torch.float64
N_TYPES, N_BONDS = 4, 3




class VP:
    """Stand-in noise process: alpha = cos(pi t / 2), sigma = sin(pi t / 2)."""

    def alpha(self, t):
        return torch.cos(torch.pi * t / 2)

    def sigma(self, t):
        return torch.sin(torch.pi * t / 2)


def _egnn(**kw):
    cfg = EGNNConfig(
        n_atom_types=N_TYPES,
        n_bond_types=N_BONDS,
        hidden=16,
        n_layers=3,
        cond_dim=2,
        sigma_data=1.5,
        **kw,
    )
    net = build_model(cfg, VP(), dtype=F64).eval()
    for layer in net.layers:  # the default near-zero coordinate init would make the test weak
        torch.nn.init.xavier_uniform_(layer.phi_x[-1].weight)
    return net


def _tp(chiral):
    cfg = TensorProductConfig(
        n_atom_types=N_TYPES,
        n_bond_types=N_BONDS,
        hidden_scalars=8,
        hidden_vectors=4,
        hidden_tensors=2,
        n_layers=3,
        cutoff=3.0,
        cond_dim=2,
        chiral=chiral,
        sigma_data=1.5,
        parameterization="denoiser",
    )
    return build_model(cfg, VP(), dtype=F64).eval()


MODELS = {
    "egnn_complete": lambda: _egnn(),
    "egnn_radius": lambda: _egnn(cutoff=1.5),
    "tp_achiral": lambda: _tp(False),
    "tp_chiral": lambda: _tp(True),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    torch.manual_seed(0)
    return request.param, MODELS[request.param]()


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(123)
    graph = random_molecular_graph(
        9, n_atom_types=N_TYPES, n_bond_types=N_BONDS, n_extra_bonds=3, generator=gen
    )
    pos = torch.randn(4, 9, 3, generator=gen, dtype=F64) + 2.0  # off-centre on purpose
    t = torch.rand(4, generator=gen, dtype=F64) * 0.9 + 0.05
    cond = torch.randn(4, 2, generator=gen, dtype=F64)
    return pos, t, graph, cond


def test_rotation_translation_permutation_equivariance(model, inputs):
    name, net = model
    pos, t, graph, cond = inputs
    gen = torch.Generator().manual_seed(7)
    errs = assert_equivariant(
        lambda p, g: net(p, t, g, cond),
        pos,
        graph,
        reflections=False,
        com_free=True,
        atol=1e-9,
        rtol=1e-9,
        generator=gen,
    )
    assert errs["scale"] > 1e-3, f"{name}: output too small for a meaningful test: {errs}"


def test_reflections_separate_chiral_model_only(model, inputs):
    name, net = model
    pos, t, graph, cond = inputs
    errs = equivariance_errors(
        lambda p, g: net(p, t, g, cond),
        pos,
        graph,
        rotations=False,
        translations=False,
        permutations=False,
        generator=torch.Generator().manual_seed(8),
    )
    assert net.parity_sensitive == (name == "tp_chiral")
    if net.parity_sensitive:
        # mirrored input does NOT give the mirrored output: the network tells enantiomers apart
        assert errs["reflection"] > 1e-2 * errs["scale"], errs
    else:
        assert errs["reflection"] <= 1e-9 * (1 + errs["scale"]), errs


def test_mirror_images_get_distinct_scores_only_for_chiral_model(model, inputs):
    """A molecule and its enantiomer: E(3) models give exactly mirrored outputs."""
    name, net = model
    pos, t, graph, cond = inputs
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    out, out_m = net(pos, t, graph, cond), net(pos * mirror, t, graph, cond)
    gap = (out_m * mirror - out).abs().max().item()
    assert (gap > 1e-3) == net.parity_sensitive, (name, gap)


@pytest.mark.parametrize("backbone", ["egnn", "tp_chiral"])
def test_energy_model_invariance(backbone, inputs):
    torch.manual_seed(1)
    bb = _egnn() if backbone == "egnn" else _tp(True)
    em = EnergyScoreModel(bb, readout_hidden=16).to(F64).eval()
    pos, t, graph, cond = inputs
    gen = torch.Generator().manual_seed(3)
    reflect = not bb.parity_sensitive
    assert_invariant(
        lambda p, g: em.energy(p, t, g, cond), pos, graph, reflections=reflect, generator=gen
    )
    assert_equivariant(
        lambda p, g: em.score(p, t, g, cond),
        pos,
        graph,
        reflections=reflect,
        com_free=True,
        generator=gen,
    )
    if not reflect:
        errs = equivariance_errors(
            lambda p, g: em.energy(p, t, g, cond),
            pos,
            graph,
            output="scalar",
            rotations=False,
            translations=False,
            permutations=False,
            generator=gen,
        )
        assert errs["reflection"] > 1e-6, errs  # chiral energy differs between enantiomers


def test_float32_equivariance_with_float32_tolerances(inputs):
    torch.manual_seed(2)
    net = EGNN(EGNNConfig(n_atom_types=N_TYPES, n_bond_types=N_BONDS, hidden=16, n_layers=2)).eval()
    pos, t, graph, _ = inputs
    assert_equivariant(
        lambda p, g: net(p, t.float(), g),
        pos.float(),
        graph,
        generator=torch.Generator().manual_seed(0),
    )
