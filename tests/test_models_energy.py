"""Energy-parameterised score: score = -grad E (central finite differences, float64)."""

import pytest
import torch

from fkc.models import (
    EGNNConfig,
    EnergyConfig,
    EnergyScoreModel,
    FrameTransformerConfig,
    TensorProductConfig,
    build_model,
)
from fkc.testing import random_molecular_graph

F64 = torch.float64


class VP:
    def alpha(self, t):
        return torch.cos(torch.pi * t / 2)

    def sigma(self, t):
        return torch.sin(torch.pi * t / 2)




def _backbone_config(kind):
    if kind == "frame_transformer":
        return FrameTransformerConfig(n_atoms=5, frame_atoms=[0, 1, 2], n_atom_types=3,
                                      n_bond_types=2, hidden=16, n_layers=2, n_heads=2,
                                      sigma_data=1.0, time_input="log_sigma")  # fmt: skip
    if kind == "egnn":
        return EGNNConfig(n_atom_types=3, n_bond_types=2, hidden=16, n_layers=2, sigma_data=1.0)
    return TensorProductConfig(
        n_atom_types=3,
        n_bond_types=2,
        hidden_scalars=8,
        hidden_vectors=4,
        hidden_tensors=2,
        n_layers=3,
        cutoff=4.0,
        sigma_data=1.0,
    )


@pytest.fixture(
    scope="module",
    params=[("egnn", "sigma"), ("tensor_product", "sigma"), ("egnn", "edm"),
            ("frame_transformer", "edm")],  # fmt: skip
    ids=lambda p: "-".join(p),
)
def model(request):
    kind, scaling = request.param
    torch.manual_seed(0)
    cfg = EnergyConfig(backbone=_backbone_config(kind), readout_hidden=16,
                       sigma_scaling=scaling == "sigma", edm_preconditioning=scaling == "edm")
    m = build_model(cfg.to_dict(), VP(), dtype=F64).eval()
    if scaling == "edm":  # its zero init would leave only the Gaussian term to test
        torch.nn.init.normal_(m.readout[-1].weight, std=0.5)
    return m


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(5)
    graph = random_molecular_graph(5, n_atom_types=3, n_bond_types=2, generator=gen)
    pos = torch.randn(2, 5, 3, generator=gen, dtype=F64)
    pos = pos - pos.mean(1, keepdim=True)
    t = torch.tensor([0.3, 0.8], dtype=F64)
    return pos, t, graph


def test_score_is_minus_energy_gradient_by_finite_differences(model, inputs):
    pos, t, graph = inputs
    s = model.score(pos, t, graph)
    assert s.shape == pos.shape
    h = 1e-5
    fd = torch.zeros_like(pos)
    for a in range(pos.shape[1]):  # test-only loop over coordinates
        for k in range(3):
            e = torch.zeros_like(pos)
            e[:, a, k] = h
            fd[:, a, k] = -(model.energy(pos + e, t, graph) - model.energy(pos - e, t, graph)) / (
                2 * h
            )
    # central differences: O(h^2) truncation + O(eps/h) rounding ~ 1e-10 relative
    torch.testing.assert_close(s, fd, atol=1e-7, rtol=1e-6)
    assert s.sum(1).abs().max() < 1e-12  # CoM-free
    torch.testing.assert_close(model(pos, t, graph), s)
    torch.testing.assert_close(model.log_density(pos, t, graph), -model.energy(pos, t, graph))


def test_energy_and_score_in_one_pass(model, inputs):
    pos, t, graph = inputs
    e, s = model.energy_and_score(pos, t, graph, chunk_size=1)
    torch.testing.assert_close(e, model.energy(pos, t, graph))
    torch.testing.assert_close(s, model.score(pos, t, graph))
    assert not e.requires_grad and not s.requires_grad


def test_flat_energy_and_score_match_fixed_graph(model, inputs):
    from fkc.models import batch_fixed_graph

    pos, t, graph = inputs
    flat = batch_fixed_graph(pos, graph)
    args = (t, flat.batch, flat.atom_types, flat.edge_index, flat.bond_types)
    torch.testing.assert_close(model.energy_flat(flat.pos, *args), model.energy(pos, t, graph))
    torch.testing.assert_close(
        model.forward_flat(flat.pos, *args).reshape(pos.shape), model.score(pos, t, graph)
    )


def test_create_graph_in_training_allows_score_matching_backprop(model, inputs):
    pos, t, graph = inputs
    model.train()
    try:
        s = model.score(pos, t, graph)
        assert s.requires_grad  # create_graph defaults to training mode
        loss = (s**2).sum()
        loss.backward()
        # (the readout's last bias shifts E by a constant and gets no gradient: expected)
        for p in (model.readout[0].weight, model.backbone.atom_embedding.types.weight):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    with torch.no_grad():  # inference under no_grad still differentiates internally
        s = model.score(pos, t, graph)
    assert not s.requires_grad


def test_energy_model_config_and_validation():
    bb = build_model(_backbone_config("egnn"), VP())
    em = EnergyScoreModel(bb, readout_hidden=8)
    assert em.config.to_dict()["backbone"]["name"] == "egnn"
    assert em.parity_sensitive is False and em.parameterization == "score"
    with pytest.raises(ValueError, match="readout_hidden must be an int >= 1, got 0"):
        EnergyScoreModel(bb, readout_hidden=0)
    with pytest.raises(
        ValueError, match="sigma_scaling=True needs a backbone constructed with a process"
    ):
        EnergyScoreModel(build_model({"name": "egnn"}), sigma_scaling=True)
    em = EnergyScoreModel(bb, readout_hidden=8, sigma_scaling=True)
    g = random_molecular_graph(3, n_atom_types=3)
    with pytest.raises(ValueError, match=r"needs sigma\(t\) > 0, got sigma = 0 at t = \[0.0\]"):
        em.energy(torch.randn(2, 3, 3), torch.tensor([0.5, 0.0]), g)
    with pytest.raises(ValueError, match="backbone must be a ScoreNetwork"):
        EnergyScoreModel(torch.nn.Linear(2, 2))


def test_edm_preconditioned_energy_starts_at_the_gaussian_and_matches_the_edm_denoiser():
    """Untrained (zero readout), E = |x|^2 / (2 s^2) and the score is -x / s^2 with
    s^2 = alpha^2 sigma_d^2 + sigma^2 exactly; trained, -grad E equals the EDM denoiser score
    (alpha D - x) / sigma^2 with D = c_skip x + c_out grad_y psi (module docstring)."""
    from fkc.models import edm_scalings
    from fkc.sde.space import remove_com

    torch.manual_seed(1)
    cfg = EnergyConfig(backbone=_backbone_config("frame_transformer"), readout_hidden=8,
                       edm_preconditioning=True)  # fmt: skip
    m = build_model(cfg.to_dict(), VP(), dtype=F64).eval()
    gen = torch.Generator().manual_seed(2)
    graph = random_molecular_graph(5, n_atom_types=3, n_bond_types=2, generator=gen)
    pos = remove_com(torch.randn(3, 5, 3, generator=gen, dtype=F64))
    t = torch.tensor([0.01, 0.4, 0.9], dtype=F64)
    a, sg = VP().alpha(t), VP().sigma(t)
    s2 = (a**2 + sg**2)[:, None, None]
    torch.testing.assert_close(m.score(pos, t, graph), -pos / s2, atol=1e-12, rtol=0)
    torch.testing.assert_close(m.energy(pos, t, graph), (pos**2).sum((1, 2)) / (2 * s2.flatten()))

    torch.nn.init.normal_(m.readout[-1].weight, std=0.5)
    c_in, c_skip, c_out = edm_scalings(a, sg, 1.0, "denoiser")
    y = (pos * c_in[:, None, None]).requires_grad_(True)
    from fkc.models.graph import batch_fixed_graph

    def psi(y):
        flat = batch_fixed_graph(y / c_in[:, None, None], graph)
        inv, _ = m.backbone.invariant_features(flat, t)
        return m.readout(inv).sum()

    (grad_psi,) = torch.autograd.grad(psi(y), y)
    d = c_skip[:, None, None] * pos + c_out[:, None, None] * remove_com(grad_psi)
    expected = (a[:, None, None] * d - pos) / sg[:, None, None] ** 2
    torch.testing.assert_close(m.score(pos, t, graph), expected, atol=1e-9, rtol=1e-9)


def test_edm_preconditioning_config_errors():
    with pytest.raises(ValueError, match="choose one of sigma_scaling and edm_preconditioning"):
        EnergyConfig(backbone=_backbone_config("egnn"), sigma_scaling=True,
                     edm_preconditioning=True)  # fmt: skip
    with pytest.raises(ValueError, match="edm_preconditioning needs the backbone's sigma_data"):
        EnergyConfig(backbone=EGNNConfig(n_atom_types=3), edm_preconditioning=True)
    # (a backbone with sigma_data always has a process: it refuses to be built without one)
