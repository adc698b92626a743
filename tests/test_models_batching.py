"""Flat batches with mixed molecule sizes, the fixed-graph wrapper, and graph construction."""

import itertools

import pytest
import torch

from fkc.models import (
    EGNNConfig,
    MolecularGraph,
    TensorProductConfig,
    batch_fixed_graph,
    build_model,
    complete_graph,
    radius_graph,
)
from fkc.models.graph import bond_lookup
from fkc.testing import random_molecular_graph

F64 = torch.float64




@pytest.fixture(scope="module", params=["egnn", "tensor_product"])
def net(request):
    torch.manual_seed(0)
    common = dict(n_atom_types=5, n_bond_types=2, cond_dim=3)
    if request.param == "egnn":
        cfg = EGNNConfig(hidden=16, n_layers=2, cutoff=2.0, **common)
    else:
        cfg = TensorProductConfig(
            hidden_scalars=8, hidden_vectors=4, hidden_tensors=2, n_layers=2, cutoff=2.0, **common
        )
    return build_model(cfg, dtype=F64).eval()


def _molecules(sizes, gen):
    graphs = [
        random_molecular_graph(n, n_atom_types=5, n_bond_types=2, n_extra_bonds=1, generator=gen)
        for n in sizes
    ]
    pos = [torch.randn(n, 3, generator=gen, dtype=F64) for n in sizes]
    return graphs, pos


def test_mixed_sizes_flat_equals_one_by_one(net):
    gen = torch.Generator().manual_seed(0)
    sizes = [3, 7, 1, 5, 12]
    graphs, pos = _molecules(sizes, gen)
    t = torch.rand(len(sizes), generator=gen, dtype=F64)
    cond = torch.randn(len(sizes), 3, generator=gen, dtype=F64)
    offsets = [0] + list(itertools.accumulate(sizes))[:-1]
    flat_out = net.forward_flat(
        torch.cat(pos),
        t,
        torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)]),
        torch.cat([g.atom_types for g in graphs]),
        torch.cat(
            [
                g.edge_index + o
                for g, o in zip(graphs, offsets, strict=True)
                if g.edge_index is not None
            ],
            1,
        ),
        torch.cat([g.bond_types for g in graphs if g.bond_types is not None]),
        cond,
    )
    assert flat_out.shape == (sum(sizes), 3)
    for g, (graph, p, o, n) in enumerate(zip(graphs, pos, offsets, sizes, strict=True)):
        single = net(p[None], t[g : g + 1], graph, cond[g : g + 1])[0]
        torch.testing.assert_close(flat_out[o : o + n], single, atol=1e-12, rtol=1e-12)
        # CoM-free per molecule
        assert flat_out[o : o + n].mean(0).abs().max() < 1e-13


def test_fixed_graph_wrapper_matches_flat_and_pyg(net):
    from torch_geometric.data import Batch, Data

    gen = torch.Generator().manual_seed(1)
    graph = random_molecular_graph(6, n_atom_types=5, n_bond_types=2, generator=gen)
    pos = torch.randn(5, 6, 3, generator=gen, dtype=F64)
    t = torch.rand(5, generator=gen, dtype=F64)
    out = net(pos, t, graph)
    flat = batch_fixed_graph(pos, graph)
    torch.testing.assert_close(
        net.forward_flat(
            flat.pos, t, flat.batch, flat.atom_types, flat.edge_index, flat.bond_types
        ),
        out.reshape(-1, 3),
        atol=0,
        rtol=0,
    )
    data = Batch.from_data_list(
        [
            Data(
                pos=p,
                atom_types=graph.atom_types,
                edge_index=graph.edge_index,
                bond_types=graph.bond_types,
            )
            for p in pos
        ]
    )
    torch.testing.assert_close(net.forward_pyg(data, t), out.reshape(-1, 3), atol=1e-12, rtol=1e-12)
    # a scalar t and a shared (cond_dim,) condition broadcast over particles
    cond = torch.randn(3, dtype=F64)
    torch.testing.assert_close(
        net(pos, t[0], graph, cond), net(pos, t[0].expand(5), graph, cond.expand(5, 3))
    )


def test_batch_fixed_graph_layout():
    g = MolecularGraph(
        torch.tensor([0, 1, 2]), torch.tensor([[0, 1], [1, 2]]), torch.tensor([0, 1])
    )
    pos = torch.arange(18, dtype=F64).reshape(3, 3, 2).repeat(1, 1, 2)[..., :3]
    flat = batch_fixed_graph(pos, g)
    assert flat.batch.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert flat.atom_types.tolist() == [0, 1, 2] * 3
    assert flat.edge_index.tolist() == [[0, 1, 3, 4, 6, 7], [1, 2, 4, 5, 7, 8]]
    assert flat.bond_types.tolist() == [0, 1] * 3
    assert torch.equal(flat.pos, pos.reshape(9, 3))


def test_complete_and_radius_graph_against_brute_force():
    gen = torch.Generator().manual_seed(2)
    sizes = [1, 4, 2, 6]
    batch = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)])
    pos = torch.randn(len(batch), 3, generator=gen, dtype=F64)
    ei = complete_graph(batch, len(sizes))
    pairs = {(int(j), int(i)) for j, i in ei.T}
    brute = {
        (j, i)
        for i in range(len(batch))
        for j in range(len(batch))
        if i != j and batch[i] == batch[j]
    }
    assert pairs == brute and ei.shape[1] == len(brute)
    bonds = torch.tensor([[1, 7], [4, 12]])  # (1,4) and (7,12)
    btypes = torch.tensor([2, 0])
    ei_r, eb = radius_graph(pos, batch, len(sizes), 0.8, bonds, btypes)
    got = {(int(j), int(i)): int(b) for (j, i), b in zip(ei_r.T, eb, strict=True)}
    bonded = {(1, 4): 3, (4, 1): 3, (7, 12): 1, (12, 7): 1}
    want = {
        (j, i): bonded.get((j, i), 0)
        for (j, i) in brute
        if (pos[i] - pos[j]).norm() < 0.8 or (j, i) in bonded
    }
    assert got == want
    # bond lookup on the complete graph
    lookup = bond_lookup(ei, bonds, btypes, len(batch))
    pairs = zip(ei.T, lookup, strict=True)
    assert {(int(j), int(i)): int(b) for (j, i), b in pairs if b > 0} == bonded


def test_flat_entry_checks_name_the_values(net):
    pos = torch.randn(4, 3, dtype=F64)
    t = torch.rand(2, dtype=F64)
    types = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"batch values must lie in \[0, n_graphs=2\)"):
        net.forward_flat(pos, t, torch.tensor([0, 0, 1, 2]), types)
    with pytest.raises(ValueError, match="non-decreasing"):
        net.forward_flat(pos, t, torch.tensor([0, 1, 0, 1]), types)
    with pytest.raises(
        ValueError, match=r"atom_types must lie in \[0, n_atom_types=5\), got range \[0, 9\]"
    ):
        net.forward_flat(pos, t, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 9, 0, 0]))
    with pytest.raises(ValueError, match="different molecules"):
        net.forward_flat(
            pos, t, torch.tensor([0, 0, 1, 1]), types, torch.tensor([[1], [2]]), torch.tensor([0])
        )
    with pytest.raises(ValueError, match=r"condition must have shape \(n_graphs=2, cond_dim=3\)"):
        net.forward_flat(pos, t, torch.tensor([0, 0, 1, 1]), types, condition=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="n_atoms=5 but the graph has n_atoms=4"):
        net(torch.randn(2, 5, 3, dtype=F64), t, MolecularGraph(types))
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        net(torch.randn(2, 4, 3, dtype=F64), torch.rand(3), MolecularGraph(types))


def test_molecular_graph_validation_and_permute():
    with pytest.raises(ValueError, match="atom_types must be a 1-d long tensor"):
        MolecularGraph(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"edge_index values must lie in \[0, 3\)"):
        MolecularGraph(torch.tensor([0, 1, 2]), torch.tensor([[0], [3]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="must be given together"):
        MolecularGraph(torch.tensor([0, 1, 2]), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="self-bond"):
        MolecularGraph(torch.tensor([0, 1, 2]), torch.tensor([[1], [1]]), torch.tensor([0]))
    g = MolecularGraph(torch.tensor([5, 6, 7]), torch.tensor([[0], [2]]), torch.tensor([1]))
    gp = g.permute(torch.tensor([2, 0, 1]))  # new 0 = old 2, new 1 = old 0, new 2 = old 1
    assert gp.atom_types.tolist() == [7, 5, 6]
    assert gp.edge_index.tolist() == [[1], [0]]


def test_atom_features_are_used_and_permuted_consistently():
    from fkc.testing import assert_equivariant

    torch.manual_seed(3)
    net = build_model(
        EGNNConfig(n_atom_types=3, atom_feature_dim=2, hidden=8, n_layers=2), dtype=F64
    ).eval()
    for layer in net.layers:
        torch.nn.init.xavier_uniform_(layer.phi_x[-1].weight)
    gen = torch.Generator().manual_seed(4)
    g = random_molecular_graph(5, n_atom_types=3, atom_feature_dim=2, generator=gen)
    pos = torch.randn(2, 5, 3, generator=gen, dtype=F64)
    t = torch.rand(2, generator=gen, dtype=F64)
    assert_equivariant(lambda p, gr: net(p, t, gr), pos, g, generator=gen)
    g2 = MolecularGraph(g.atom_types, atom_features=g.atom_features + 1.0)
    assert (net(pos, t, g) - net(pos, t, g2)).abs().max() > 1e-8
    with pytest.raises(ValueError, match=r"atom_features of shape \(10, 2\) required"):
        net(pos, t, MolecularGraph(g.atom_types))


def test_chunked_evaluation_equals_single_call(net):
    from fkc.models import EnergyScoreModel

    gen = torch.Generator().manual_seed(6)
    graph = random_molecular_graph(5, n_atom_types=5, n_bond_types=2, generator=gen)
    pos = torch.randn(7, 5, 3, generator=gen, dtype=F64)
    t = torch.rand(7, generator=gen, dtype=F64)
    cond = torch.randn(7, 3, generator=gen, dtype=F64)
    full = net(pos, t, graph, cond)
    torch.testing.assert_close(net(pos, t, graph, cond, chunk_size=3), full, atol=1e-13, rtol=0)
    torch.testing.assert_close(
        net(pos, t[0], graph, cond[0], chunk_size=2), net(pos, t[0], graph, cond[0])
    )
    em = EnergyScoreModel(net, readout_hidden=4).to(F64).eval()
    torch.testing.assert_close(
        em.score(pos, t, graph, cond, chunk_size=4), em.score(pos, t, graph, cond)
    )
    torch.testing.assert_close(
        em.energy(pos, t, graph, cond, chunk_size=4), em.energy(pos, t, graph, cond)
    )
    with pytest.raises(ValueError, match="chunk_size must be a positive int or None, got 0"):
        net(pos, t, graph, cond, chunk_size=0)
