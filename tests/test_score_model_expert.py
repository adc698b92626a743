"""ScoreModelExpert: the Expert protocol for checkpointed networks (shapes, CoM, chunking,
conditioning, energy models, composition with fkc.cfg / fkc.anneal and fkc.sample)."""

import pytest
import torch

import fkc
from fkc.checkpoint import Checkpoint, CheckpointError, save_checkpoint
from fkc.experts import ExpertContext, ScoreModelExpert
from fkc.models import EGNNConfig, EnergyConfig, MolecularGraph, build_model, to_score
from fkc.sde import VPSDE

F64 = torch.float64
PROC = VPSDE(com_free=True)




def _save(path, config, *, dtype=torch.float32, graph=True, process=PROC, perturb_ema=True,
          **meta):
    torch.manual_seed(0)
    model = build_model(config, process, dtype=dtype)
    for p in model.parameters():  # non-trivial outputs (some last layers start at zero)
        torch.nn.init.normal_(p, std=0.3) if p.dim() > 1 else None
    ema = {k: (v * 0.9 if perturb_ema and v.is_floating_point() else v)
           for k, v in model.state_dict().items()}
    metadata = {"training_temperature": 2.0, "system": "toy", **meta}
    if graph:
        metadata["graph"] = {"atom_types": [0] * 5, "edge_index": None, "bond_types": None,
                             "atom_features": None}
    save_checkpoint(path, Checkpoint(model_config=config.to_dict(), process=process,
                                     model_state=model.state_dict(), ema_state=ema,
                                     metadata=metadata))
    return path


@pytest.fixture(scope="module")
def egnn_ckpt(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("e") / "egnn.safetensors",
                 EGNNConfig(hidden=16, n_layers=2, n_atom_types=2), dtype=F64)


@pytest.fixture(scope="module")
def cond_ckpt(tmp_path_factory):
    cfg = EGNNConfig(hidden=16, n_layers=2, n_atom_types=1, cond_dim=2, parameterization="denoiser",
                     sigma_data=1.0)
    return _save(tmp_path_factory.mktemp("c") / "cond.safetensors", cfg)


@pytest.fixture(scope="module")
def energy_ckpt(tmp_path_factory):
    cfg = EnergyConfig(backbone=EGNNConfig(hidden=16, n_layers=2, n_atom_types=1))
    return _save(tmp_path_factory.mktemp("en") / "energy.safetensors", cfg, dtype=F64)


def _x(n, dtype=torch.float32, n_atoms=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_atoms, 3, generator=g, dtype=dtype), torch.rand(n, generator=g,
                                                                            dtype=dtype) * 0.9 + 0.05


def test_protocol_shapes_com_and_metadata(egnn_ckpt):
    ex = ScoreModelExpert.from_checkpoint(egnn_ckpt)
    assert ex.event_shape == (5, 3) and ex.process == PROC and ex.process.com_free
    assert not ex.has_log_density and not ex.is_conditional
    assert ex.metadata["training_temperature"] == 2.0 and ex.metadata["system"] == "toy"
    for dtype in (torch.float32, F64):
        x, t = _x(7, dtype)
        s = ex.score(x, t)
        assert s.shape == (7, 5, 3) and s.dtype == dtype and torch.isfinite(s).all()
        assert s.sum(1).abs().max() < 1e-5 * (1 + s.abs().max())  # CoM-free
    with pytest.raises(ValueError, match=r"expects x of shape \(n, 5, 3\), got \(7, 4, 3\)"):
        ex.score(torch.zeros(7, 4, 3), torch.rand(7))
    with pytest.raises(ValueError, match=r"t must have shape \(7,\)"):
        ex.score(torch.zeros(7, 5, 3), torch.rand(6))
    with pytest.raises(NotImplementedError, match="not an energy model"):
        ex.log_density(*_x(2))


def test_score_is_the_converted_network_output_and_translation_invariant(egnn_ckpt):
    ex = ScoreModelExpert.from_checkpoint(egnn_ckpt, use_ema=False)
    x, t = _x(4, F64)
    graph = MolecularGraph(torch.zeros(5, dtype=torch.long))
    x0 = x - x.mean(1, keepdim=True)
    raw = ex.model(x0, t, graph)
    torch.testing.assert_close(ex.score(x, t), to_score(raw, x0, t, PROC, "eps"))
    torch.testing.assert_close(ex.score(x + 3.0, t), ex.score(x, t))
    # EMA weights (default) differ from the trained weights in this checkpoint
    assert (ScoreModelExpert.from_checkpoint(egnn_ckpt).score(x, t) - ex.score(x, t)).abs().max() > 1e-6


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_chunking_matches_unchunked(egnn_ckpt, chunk):
    x, t = _x(10, F64)
    whole = ScoreModelExpert.from_checkpoint(egnn_ckpt, chunk_size=None).score(x, t)
    parts = ScoreModelExpert.from_checkpoint(egnn_ckpt, chunk_size=chunk).score(x, t)
    torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-12)


def test_default_chunk_size_and_validation(egnn_ckpt):
    assert ScoreModelExpert.from_checkpoint(egnn_ckpt).chunk_size == 16384 // 20
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        ScoreModelExpert.from_checkpoint(egnn_ckpt, chunk_size=0)


def test_context(egnn_ckpt, tmp_path):
    graph = MolecularGraph(torch.tensor([0, 1, 1]))
    ex = ScoreModelExpert.from_checkpoint(egnn_ckpt, context=graph)
    assert ex.event_shape == (3, 3)
    assert ex.score(*_x(2, n_atoms=3)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="atom type 3 but the network knows n_atom_types=2"):
        ScoreModelExpert.from_checkpoint(egnn_ckpt, context=MolecularGraph(torch.tensor([0, 3])))
    bare = _save(tmp_path / "nograph.safetensors", EGNNConfig(hidden=8, n_layers=1), graph=False)
    with pytest.raises(ValueError, match="no default molecule.*context="):
        ScoreModelExpert.from_checkpoint(bare)
    assert ScoreModelExpert.from_checkpoint(bare, context=graph).event_shape == (3, 3)


def test_process_is_rebuilt_com_free(tmp_path):
    p = _save(tmp_path / "p.safetensors", EGNNConfig(hidden=8, n_layers=1),
              process=VPSDE(beta_max=12.0))
    assert ScoreModelExpert.from_checkpoint(p).process == VPSDE(beta_max=12.0, com_free=True)


def test_conditional_and_unconditional_compose_with_cfg(cond_ckpt):
    base = ScoreModelExpert.from_checkpoint(cond_ckpt)
    cond = base.condition(torch.tensor([1.0, -0.5]))
    unc = base.unconditional()
    assert cond.is_conditional and not unc.is_conditional and cond.model is unc.model
    x, t = _x(6)
    sc, su = cond.score(x, t), unc.score(x, t)
    assert (sc - su).abs().max() > 1e-4
    assert sc.sum(1).abs().max() < 1e-4 * (1 + sc.abs().max())
    guided = fkc.cfg(unc, cond, 2.0)
    torch.testing.assert_close(guided.score(x, t), 2.0 * sc - su, rtol=1e-5, atol=1e-5)
    res = fkc.sample(guided, 16, n_steps=5, generator=torch.Generator().manual_seed(0),
                     progress=False)
    assert res.samples.shape == (16, 5, 3) and torch.isfinite(res.samples).all()
    assert res.samples.mean(1).abs().max() < 1e-4
    prod = fkc.product(cond, base.condition([0.0, 1.0]))
    assert prod.score(x, t).shape == (6, 5, 3)
    with pytest.raises(ValueError, match=r"condition must have shape \(2,\)"):
        base.condition([1.0, 2.0, 3.0])


def test_unconditional_network_rejects_conditions(egnn_ckpt):
    with pytest.raises(ValueError, match="unconditional"):
        ScoreModelExpert.from_checkpoint(egnn_ckpt).condition([1.0])
    with pytest.raises(ValueError, match="unconditional"):
        ScoreModelExpert.from_checkpoint(
            egnn_ckpt, context=ExpertContext(MolecularGraph(torch.zeros(5, dtype=torch.long)),
                                             torch.ones(2)))


def test_energy_expert_log_density(energy_ckpt):
    ex = ScoreModelExpert.from_checkpoint(energy_ckpt, chunk_size=3)
    assert ex.has_log_density
    x, t = _x(7, F64)
    ld = ex.log_density(x, t)
    assert ld.shape == (7,) and ld.dtype == F64
    # score = grad_x log_density = -grad_x E (on the CoM-free subspace)
    xr = x.clone().requires_grad_(True)
    graph = MolecularGraph(torch.zeros(5, dtype=torch.long))
    (g,) = torch.autograd.grad(-ex.model.energy(xr, t, graph).sum(), xr)
    torch.testing.assert_close(ex.score(x, t), g - g.mean(1, keepdim=True))
    assert not ex.score(x, t).requires_grad
    # log_density is translation invariant; annealing with a log density runs (exact initial
    # weights use it)
    torch.testing.assert_close(ex.log_density(x + 1.0, t), ld)
    res = fkc.sample(fkc.anneal(ex, 2.0), 8, n_steps=4, dtype=F64,
                     generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.isfinite(res.samples).all() and res.samples.shape == (8, 5, 3)


def test_energy_expert_reuses_the_energy_of_the_last_score_call(energy_ckpt, monkeypatch):
    """MALA asks for the log density right after the score at the same points: the energy of
    the score's forward pass is reused (one network pass fewer per move), and only for exactly
    those tensors, unmodified."""
    ex = ScoreModelExpert.from_checkpoint(energy_ckpt, chunk_size=3)
    x, t = _x(7, F64)
    fresh = ex.log_density(x.clone(), t.clone())
    calls = []
    monkeypatch.setattr(ex.model, "log_density",
                        lambda *a, **k: calls.append(1) or torch.zeros(7, dtype=F64))
    ex.score(x, t)
    torch.testing.assert_close(ex.log_density(x, t), fresh)  # cached, exact
    assert calls == []
    ex.log_density(x.clone(), t)  # another tensor (same values): computed
    x.add_(0.0)  # modified in place: computed again
    ex.log_density(x, t)
    assert len(calls) == 2


def test_density_weights_and_mala_cost_one_network_pass_per_evaluation(energy_ckpt, monkeypatch):
    """With weights='density' and MALA every log density the sampler needs is at points whose
    score was just computed, so it comes from the score pass: no separate energy evaluation."""
    ex = ScoreModelExpert.from_checkpoint(energy_ckpt, chunk_size=3)
    calls = []
    real = ex.model.log_density
    monkeypatch.setattr(ex.model, "log_density",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    r = fkc.sample(fkc.anneal(ex, 2.0), 6, n_steps=3, weights="density", mcmc_steps=1,
                   dtype=F64, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.isfinite(r.log_weights).all()
    assert calls == []


def test_corrupt_checkpoint_error_names_the_file(egnn_ckpt, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(egnn_ckpt.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="bad.safetensors.*truncated"):
        ScoreModelExpert.from_checkpoint(bad)
