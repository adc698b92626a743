"""Classifier-free conditioning: condition=None -> null embedding; p_uncond in training mode."""

import pytest
import torch

from fkc.models import EGNNConfig, build_model
from fkc.models._embedding import ConditionEmbedding
from fkc.testing import random_molecular_graph

F64 = torch.float64




@pytest.fixture()
def setup():
    torch.manual_seed(0)
    net = build_model(
        EGNNConfig(n_atom_types=3, hidden=16, n_layers=2, cond_dim=2, p_uncond=0.3), dtype=F64
    )
    for layer in net.layers:
        torch.nn.init.xavier_uniform_(layer.phi_x[-1].weight)
    gen = torch.Generator().manual_seed(0)
    graph = random_molecular_graph(4, n_atom_types=3, generator=gen)
    n = 400
    pos = torch.randn(1, 4, 3, generator=gen, dtype=F64).expand(n, 4, 3)
    t = torch.full((n,), 0.5, dtype=F64)
    cond = torch.randn(1, 2, generator=gen, dtype=F64).expand(n, 2)
    return net, graph, pos, t, cond


def test_none_condition_is_null_embedding_and_condition_matters(setup):
    net, graph, pos, t, cond = setup
    net.eval()
    out_none = net(pos[:2], t[:2], graph, None)
    out_cond = net(pos[:2], t[:2], graph, cond[:2])
    assert (out_none - out_cond).abs().max() > 1e-6
    # p_uncond = 1 in training mode drops every condition: same as condition=None
    emb = net.condition_embedding
    emb.p_uncond = 1.0
    net.train()
    try:
        torch.testing.assert_close(net(pos[:2], t[:2], graph, cond[:2]), out_none)
    finally:
        emb.p_uncond = 0.3
        net.eval()
    # eval mode never drops
    torch.testing.assert_close(net(pos[:2], t[:2], graph, cond[:2]), out_cond)


def test_p_uncond_respected_in_training_with_generator(setup):
    net, graph, pos, t, cond = setup
    net.eval()
    out_none = net(pos[:1], t[:1], graph, None)[0]
    out_cond = net(pos[:1], t[:1], graph, cond[:1])[0]
    net.train()
    out = net(pos, t, graph, cond, generator=torch.Generator().manual_seed(42))
    dropped = (out - out_none).abs().amax((1, 2)) < 1e-12
    kept = (out - out_cond).abs().amax((1, 2)) < 1e-12
    assert bool((dropped ^ kept).all())  # each particle is exactly one of the two
    frac = dropped.double().mean().item()
    # Binomial(400, 0.3): sd = 0.023; 5 sd band
    assert abs(frac - 0.3) < 0.115, frac
    # same seed, same dropout pattern; the module's own draw agrees
    out2 = net(pos, t, graph, cond, generator=torch.Generator().manual_seed(42))
    torch.testing.assert_close(out, out2, atol=0, rtol=0)
    _, keep = net.condition_embedding(cond, len(t), torch.Generator().manual_seed(42))
    assert torch.equal(~keep, dropped)


def test_condition_embedding_statistics():
    emb = ConditionEmbedding(cond_dim=3, dim=4, p_uncond=0.1).train()
    _, keep = emb(torch.randn(20000, 3), 20000, torch.Generator().manual_seed(1))
    assert abs((~keep).double().mean().item() - 0.1) < 0.0106  # 5 sd of Binomial(20000, 0.1)
    emb.eval()
    _, keep = emb(torch.randn(10, 3), 10)
    assert keep.all()
    emb_none, keep = emb(None, 10)
    assert not keep.any() and torch.equal(emb_none, emb.null.expand(10, -1))


def test_unconditional_network_rejects_condition():
    net = build_model({"name": "egnn", "n_atom_types": 2, "hidden": 8, "n_layers": 1})
    g = random_molecular_graph(3, n_atom_types=2)
    with pytest.raises(ValueError, match="cond_dim=0"):
        net(torch.randn(2, 3, 3), torch.rand(2), g, torch.randn(2, 1))
