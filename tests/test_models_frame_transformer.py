"""The canonical-frame transformer: exact SE(3) equivariance (float64), separation of mirror
images, the frame and hop-distance helpers, config validation and the small-noise time sampler."""

from collections import deque

import pytest
import torch

from fkc.models import FrameTransformerConfig, build_model, canonical_frame
from fkc.models._frame_transformer import hop_distances
from fkc.sde import VPSDE
from fkc.testing import equivariance_errors, random_molecular_graph
from fkc.train import sample_times
from fkc.train._loss import log_noise_to_signal, time_of_log_nsr

F64 = torch.float64
N, N_TYPES, N_BONDS = 9, 4, 3


def _random_rotation(gen, det=1.0):
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=F64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) * det < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = FrameTransformerConfig(
        n_atoms=N, frame_atoms=[2, 0, 5], n_atom_types=N_TYPES, n_bond_types=N_BONDS,
        hidden=32, n_layers=2, n_heads=4, cond_dim=2, sigma_data=1.5, parameterization="denoiser",
        time_input="log_sigma",
    )
    net = build_model(cfg.to_dict(), VPSDE(com_free=True), dtype=F64).eval()
    torch.nn.init.normal_(net.out.weight, std=0.3)  # the zero init would make the tests weak
    gen = torch.Generator().manual_seed(123)
    graph = random_molecular_graph(N, n_atom_types=N_TYPES, n_bond_types=N_BONDS,
                                   n_extra_bonds=2, generator=gen)
    pos = torch.randn(4, N, 3, generator=gen, dtype=F64) * 1.5 + 2.0  # off-centre on purpose
    t = torch.rand(4, generator=gen, dtype=F64) * 0.9 + 0.05
    cond = torch.randn(4, 2, generator=gen, dtype=F64)
    return net, pos, t, graph, cond


def test_rotation_translation_equivariance_float64(setup):
    net, pos, t, graph, cond = setup
    errs = equivariance_errors(lambda p, g: net(p, t, g, cond), pos, graph, reflections=False,
                               permutations=False, com_free=True,
                               generator=torch.Generator().manual_seed(7))
    assert errs["scale"] > 1e-2, errs
    assert errs["rotation"] < 1e-9 * errs["scale"], errs
    assert errs["translation"] < 1e-9 * errs["scale"], errs
    assert errs["com"] < 1e-9, errs


def test_mirror_image_gets_a_different_score(setup):
    """Chiral by construction: out(P x) != P out(x) for a reflection P."""
    net, pos, t, graph, cond = setup
    assert net.parity_sensitive
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    out, out_m = net(pos, t, graph, cond), net(pos * mirror, t, graph, cond)
    assert (out_m * mirror - out).abs().max() > 1e-2 * out.abs().max()


def test_canonical_frame_is_a_rotation_that_follows_the_molecule():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 6, 3, generator=gen, dtype=F64)
    r = canonical_frame(x, [0, 1, 2])
    eye = torch.eye(3, dtype=F64).expand(5, 3, 3)
    torch.testing.assert_close(r.transpose(1, 2) @ r, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.det(r), torch.ones(5, dtype=F64))
    # e1 points from atom 0 to atom 1, e2 lies in the plane of atoms 0, 1, 2
    u = x[:, 1] - x[:, 0]
    torch.testing.assert_close(r[:, :, 0], u / u.norm(dim=-1, keepdim=True))
    assert (((x[:, 2] - x[:, 0]) * r[:, :, 2]).sum(-1).abs() < 1e-12).all()
    q = _random_rotation(gen)
    torch.testing.assert_close(canonical_frame(x @ q.T, [0, 1, 2]), q @ r)
    # a mirror image still gets a right-handed frame: canonical coordinates change handedness
    p = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64))
    rp = canonical_frame(x @ p, [0, 1, 2])
    torch.testing.assert_close(torch.det(rp), torch.ones(5, dtype=F64))
    y, yp = x @ r, (x @ p) @ rp
    torch.testing.assert_close(yp, y * torch.tensor([1.0, 1.0, -1.0], dtype=F64))


def _bfs(adj, i):
    dist = {i: 0}
    todo = deque([i])
    while todo:
        a = todo.popleft()
        for b in torch.nonzero(adj[a]).flatten().tolist():
            if b not in dist:
                dist[b] = dist[a] + 1
                todo.append(b)
    return dist


def test_hop_distances_match_breadth_first_search():
    gen = torch.Generator().manual_seed(3)
    n = 12
    adj = torch.zeros(2, n, n, dtype=torch.bool)
    for g in range(2):
        for i in range(1, n - 2):  # a tree plus a few extra bonds; atoms n-2, n-1 disconnected
            j = int(torch.randint(0, i, (1,), generator=gen))
            adj[g, i, j] = adj[g, j, i] = True
        adj[g, 3, 7] = adj[g, 7, 3] = True
    hops = hop_distances(adj, max_hops=3)
    for g in range(2):
        for i in range(n):
            d = _bfs(adj[g], i)
            for j in range(n):
                assert int(hops[g, i, j]) == min(d.get(j, 99), 4), (g, i, j)


@pytest.mark.parametrize("kw, message", [
    (dict(n_atoms=5, frame_atoms=[0, 1, 1]), "frame_atoms must be three distinct"),
    (dict(n_atoms=5, frame_atoms=[0, 1, 5]), "frame_atoms must be three distinct"),
    (dict(n_atoms=5, frame_atoms=None), "frame_atoms must be three distinct"),
    (dict(n_atoms=5, frame_atoms=[0, 1, 2], hidden=30, n_heads=4), "divisible by n_heads"),
    (dict(n_atoms=2, frame_atoms=[0, 1, 2]), "n_atoms must be an int >= 3"),
])
def test_config_validation_names_the_value(kw, message):
    with pytest.raises(ValueError, match=message):
        FrameTransformerConfig(n_atom_types=2, **kw)


def test_wrong_molecule_size_is_an_error(setup):
    net, pos, t, graph, cond = setup
    small = random_molecular_graph(N - 1, n_atom_types=N_TYPES, n_bond_types=N_BONDS,
                                   generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"n_atoms=9 atoms; got molecules of \[8\] atoms"):
        net(pos[:, :-1], t, small, cond)


def test_json_round_trip_gives_the_same_network(setup):
    net, pos, t, graph, cond = setup
    twin = build_model(net.config.to_dict(), net.process, dtype=F64).eval()
    twin.load_state_dict(net.state_dict())
    torch.testing.assert_close(twin(pos, t, graph, cond), net(pos, t, graph, cond))


def test_mixed_time_sampling_puts_half_the_batch_log_uniform_in_noise_to_signal():
    proc = VPSDE(com_free=True)
    t_min, n = 1e-3, 20000
    t = sample_times(n, t_min, "mixed", torch.Generator().manual_seed(0), proc)
    assert t.shape == (n,) and float(t.min()) >= t_min and float(t.max()) <= 1.0
    lo, hi = (float(v) for v in log_noise_to_signal(proc, torch.tensor([t_min, 1.0], dtype=F64)))
    # inverse of lambda(t) by bisection
    lam = torch.linspace(lo, hi, 7, dtype=F64)
    torch.testing.assert_close(log_noise_to_signal(proc, time_of_log_nsr(proc, lam, t_min)), lam)
    # P(lambda < mid) = 1/2 * (uniform-t share below mid) + 1/2 * 1/2 (stratified: error ~1/n)
    mid = 0.5 * (lo + hi)
    t_mid = float(time_of_log_nsr(proc, torch.tensor([mid], dtype=F64), t_min))
    expect = 0.5 * (t_mid - t_min) / (1 - t_min) + 0.25
    got = float((log_noise_to_signal(proc, t) < mid).double().mean())
    assert abs(got - expect) < 2e-3, (got, expect)
    assert expect > 0.3  # vs ~0.05 for uniform t: the mixture really moves mass to small noise
    with pytest.raises(ValueError, match="needs the noise process"):
        sample_times(4, t_min, "mixed", torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="'uniform', 'stratified' or 'mixed', got 'bad'"):
        sample_times(4, t_min, "bad", torch.Generator().manual_seed(0))


def test_pairwise_distances_match_cdist_and_are_twice_differentiable():
    """An energy model trains through -grad E, so the distances need a double backward
    (torch.cdist has none); the diagonal stays exactly 0 with zero, finite derivatives."""
    from fkc.models._frame_transformer import pairwise_distances

    gen = torch.Generator().manual_seed(0)
    y = torch.randn(2, 6, 3, generator=gen, dtype=F64, requires_grad=True)
    d = pairwise_distances(y)
    torch.testing.assert_close(d, torch.cdist(y, y), atol=1e-12, rtol=0)
    assert torch.all(torch.diagonal(d, dim1=1, dim2=2) == 0)
    (g,) = torch.autograd.grad(torch.sin(d).sum(), y, create_graph=True)
    (h,) = torch.autograd.grad((g**2).sum(), y)
    assert torch.isfinite(g).all() and torch.isfinite(h).all() and h.abs().sum() > 0
    assert torch.autograd.gradcheck(pairwise_distances, (y,))
    assert torch.autograd.gradgradcheck(pairwise_distances, (y,))
