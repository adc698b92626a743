"""Training: data and flat batching, the denoising loss, bitwise resume, errors, the CLI."""

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from fkc.checkpoint import CheckpointError, load_checkpoint
from fkc.models import EGNNConfig, build_model
from fkc.sde import VPSDE, remove_com
from fkc.train import (
    ConfigError,
    EpochSampler,
    MoleculeDataset,
    MoleculeRecord,
    PointCloudDataset,
    Trainer,
    denoising_loss,
    load_config,
    main,
    sample_noise,
    sample_times,
    train,
)

F64 = torch.float64
REPO = Path(__file__).resolve().parents[1]




def _gaussian_clouds(n, n_atoms=4, v=0.25, seed=0, cond_dim=0):
    g = torch.Generator().manual_seed(seed)
    x = remove_com(torch.randn(n, n_atoms, 3, generator=g, dtype=F64)) * math.sqrt(v)
    cond = torch.randn(n, cond_dim, generator=g) if cond_dim else None
    return PointCloudDataset(x, condition=cond)


def _records(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = 2 + i % 4
        bonds = torch.stack([torch.arange(k - 1), torch.arange(1, k)])
        out.append(MoleculeRecord(
            pos=torch.randn(k, 3, generator=g, dtype=F64) + 5.0,
            atom_types=torch.randint(0, 3, (k,), generator=g),
            edge_index=bonds,
            bond_types=torch.randint(0, 2, (k - 1,), generator=g),
        ))
    return out


def _config(out, **over):
    d = {
        "output_dir": str(out),
        "seed": 3,
        "model": {"name": "egnn", "hidden": 8, "n_layers": 2, "n_atom_types": 1},
        "data": {"train": "unused.npz"},
        "optim": {"lr": 3e-3, "warmup_steps": 3, "schedule": "cosine", "grad_clip": 0.5},
        "train": {"n_steps": 12, "batch_size": 8, "ema_decay": 0.9, "log_every": 2,
                  "valid_every": 4, "checkpoint_every": 4, "valid_batch_size": 5},
    }
    return load_config(d, over)


# ---- data -----------------------------------------------------------------------------------
def test_point_cloud_dataset_centres_and_batches(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 5, 3)) + 3.0
    np.savez(tmp_path / "d.npz", x=x.astype(np.float32), temperature=np.float64(1.5))
    ds = PointCloudDataset.from_npz(tmp_path / "d.npz")
    assert len(ds) == 6 and ds.n_atoms == 5 and ds.metadata["temperature"] == 1.5
    assert ds.x.mean(1).abs().max() < 1e-6
    b = ds.batch(torch.tensor([4, 1]))
    assert b.pos.shape == (10, 3) and b.batch.tolist() == [0] * 5 + [1] * 5
    assert torch.equal(b.pos[5:], ds.x[1]) and b.atom_types.tolist() == [0] * 10
    with pytest.raises(ValueError, match="atom_types has 2 entries.*n_atoms=5"):
        PointCloudDataset.from_npz(tmp_path / "d.npz", atom_types=[0, 1])
    with pytest.raises(ValueError, match="no array 'pos'"):
        PointCloudDataset.from_npz(tmp_path / "d.npz", key="pos")


def test_molecule_dataset_batches_mixed_sizes(tmp_path):
    recs = _records(7)
    ds = MoleculeDataset(recs, dtype=F64)
    idx = torch.tensor([5, 0, 3])
    b = ds.batch(idx)
    assert b.n_atoms.tolist() == [recs[i].pos.shape[0] for i in idx]
    off = 0
    bond_off = 0
    for g, i in enumerate(idx.tolist()):
        r, k = recs[i], recs[i].pos.shape[0]
        torch.testing.assert_close(b.pos[off:off + k], remove_com(r.pos))
        assert torch.equal(b.atom_types[off:off + k], r.atom_types)
        assert (b.batch[off:off + k] == g).all()
        nb = r.edge_index.shape[1]
        assert torch.equal(b.edge_index[:, bond_off:bond_off + nb], r.edge_index + off)
        assert torch.equal(b.bond_types[bond_off:bond_off + nb], r.bond_types)
        off, bond_off = off + k, bond_off + nb
    # npz round trip and subsets give the same batches
    ds.save_npz(tmp_path / "m.npz")
    back = MoleculeDataset.from_npz(tmp_path / "m.npz", dtype=F64)
    sub = ds.subset(torch.tensor([0, 3, 5]))
    for other, j in ((back, idx), (sub, torch.tensor([2, 0, 1]))):
        ob = other.batch(j)
        torch.testing.assert_close(ob.pos, b.pos)
        assert torch.equal(ob.edge_index, b.edge_index) and torch.equal(ob.batch, b.batch)


def test_epoch_sampler_is_a_function_of_seed_and_step():
    s = EpochSampler(10, 4, seed=1)
    seen = torch.cat([s.indices(k) for k in range(5)])  # 20 draws = 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10))
    assert sorted(seen[10:].tolist()) == list(range(10))
    assert torch.equal(EpochSampler(10, 4, seed=1).indices(3), s.indices(3))
    assert not torch.equal(EpochSampler(10, 4, seed=2).indices(0), s.indices(0))


def test_noise_is_com_free_and_times_in_range():
    ds = MoleculeDataset(_records(5))
    b = ds.batch(torch.arange(5))
    g = torch.Generator().manual_seed(0)
    eps = sample_noise(b, g)
    for k in range(5):
        assert eps[b.batch == k].sum(0).abs().max() < 1e-5
    for how in ("uniform", "stratified"):
        t = sample_times(1000, 0.01, how, g)
        assert t.min() >= 0.01 and t.max() <= 1.0 and abs(float(t.mean()) - 0.505) < 0.03


# ---- the loss -------------------------------------------------------------------------------
class _ExactGaussian(torch.nn.Module):
    """A fake network that outputs the exact eps / score / denoiser of N(0, v I) data."""

    def __init__(self, process, v, parameterization, sigma_data=None):
        super().__init__()
        self.process, self.v, self.parameterization = process, v, parameterization
        self.config = EGNNConfig(n_atom_types=1, sigma_data=sigma_data)

    def forward_flat(self, pos, t, batch, *args, **kw):
        a = self.process.alpha(t.double())[batch, None]
        s2 = self.process.sigma2(t.double())[batch, None]
        score = -pos.double() / (a**2 * self.v + s2)
        if self.parameterization == "score":
            return score.to(pos.dtype)
        if self.parameterization == "eps":
            return (-s2.sqrt() * score).to(pos.dtype)
        return ((pos.double() + s2 * score) / a).to(pos.dtype)  # denoiser (Tweedie)


@pytest.mark.parametrize("weighting", ["eps", "edm"])
@pytest.mark.parametrize("parameterization", ["eps", "score", "denoiser"])
def test_loss_of_exact_score_is_the_bayes_risk(parameterization, weighting):
    """For N(0, v I) data the exact score minimises the loss; with lambda = sigma^2 its expected
    value at time t is alpha^2 v / (alpha^2 v + sigma^2) (per free dimension); the EDM weighting
    multiplies it by (alpha^2 sigma_d^2 + sigma^2) / (alpha^2 sigma_d^2)."""
    proc, v, sd = VPSDE(com_free=True), 0.25, 0.7
    ds = _gaussian_clouds(20000, v=v)
    b = ds.batch(torch.arange(len(ds)))
    g = torch.Generator().manual_seed(1)
    model = _ExactGaussian(proc, v, parameterization, sigma_data=sd)
    for t0 in (0.05, 0.3, 0.8):
        t = torch.full((len(ds),), t0, dtype=F64)
        loss = denoising_loss(model, proc, b, t, sample_noise(b, g), weighting=weighting)
        a2 = float(proc.alpha(torch.tensor(t0)) ** 2)
        s2 = float(proc.sigma2(torch.tensor(t0)))
        expected = a2 * v / (a2 * v + s2)
        if weighting == "edm":
            expected *= (a2 * sd**2 + s2) / (a2 * sd**2)
        # l / expected ~ chi^2_9 / 9: relative sd sqrt(2/9) / sqrt(20000) = 0.33%
        assert abs(float(loss.mean()) / expected - 1) < 0.015


def test_eps_loss_is_eps_mse():
    proc = VPSDE(com_free=True)
    torch.manual_seed(0)
    net = build_model(EGNNConfig(hidden=8, n_layers=1, n_atom_types=1), proc, dtype=F64).eval()
    ds = _gaussian_clouds(6)
    ds.x = ds.x.double()
    b = ds.batch(torch.arange(6))
    g = torch.Generator().manual_seed(0)
    t, eps = sample_times(6, 1e-3, "uniform", g), sample_noise(b, g)
    a, s = proc.alpha(t)[b.batch, None], proc.sigma(t)[b.batch, None]
    eps_hat = net.forward_flat(a * b.pos + s * eps, t, b.batch, b.atom_types)
    direct = ((eps_hat - eps) ** 2).sum(-1).reshape(6, 4).sum(-1) / 9
    torch.testing.assert_close(denoising_loss(net, proc, b, t, eps), direct)


def test_flat_batch_loss_equals_one_molecule_at_a_time():
    proc = VPSDE(com_free=True)
    torch.manual_seed(0)
    cfg = EGNNConfig(hidden=8, n_layers=2, n_atom_types=3, n_bond_types=2)
    net = build_model(cfg, proc, dtype=F64).eval()
    ds = MoleculeDataset(_records(6), dtype=F64)
    g = torch.Generator().manual_seed(0)
    b = ds.batch(torch.arange(6))
    t, eps = sample_times(6, 1e-3, "uniform", g), sample_noise(b, g)
    flat = denoising_loss(net, proc, b, t, eps)
    for k in range(6):
        bk = ds.batch(torch.tensor([k]))
        single = denoising_loss(net, proc, bk, t[k:k + 1], eps[b.batch == k])
        torch.testing.assert_close(flat[k:k + 1], single, rtol=1e-10, atol=1e-12)


# ---- training runs, checkpoints and resume --------------------------------------------------
def _run(out, data, valid, callback=None, resume="auto", **over):
    return train(_config(out, **over), train_data=data, valid_data=valid, progress=False,
                 callback=callback, resume=resume)


CASES = {
    # conditional point clouds with classifier-free dropout (uses the dropout generator)
    "conditional": (lambda: (_gaussian_clouds(40, cond_dim=2), _gaussian_clouds(9, cond_dim=2,
                                                                                 seed=1)),
                    {"model.cond_dim": 2, "model.p_uncond": 0.3}),
    # molecules of different sizes with bonds
    "molecules": (lambda: (MoleculeDataset(_records(30)), MoleculeDataset(_records(7, seed=1))),
                  {"model.n_atom_types": 3, "model.n_bond_types": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_after_crash_is_bitwise_identical(tmp_path, case):
    make, over = CASES[case]
    data, valid = make()
    full = _run(tmp_path / "full", data, valid, **over)
    assert full.step == 12 and full.train_loss.shape == (12,)
    assert [r["step"] for r in full.valid] == [0, 4, 8, 12]

    def crash(trainer, step, loss):
        if step == 6:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "b", data, valid, callback=crash, **over)
    assert load_checkpoint(tmp_path / "b" / "last.safetensors").step == 4
    resumed = _run(tmp_path / "b", data, valid, **over)
    assert torch.equal(resumed.train_loss, full.train_loss)  # bitwise
    assert resumed.valid == full.valid
    a, b = (load_checkpoint(r.last_checkpoint) for r in (full, resumed))
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k])
        assert torch.equal(a.ema_state[k], b.ema_state[k])
    # the log was truncated at the checkpoint: every step logged once
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "b" / "log.jsonl").read_text().splitlines() if "loss" in line
             and "valid" not in line]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_init_from_fine_tunes_from_the_ema_weights(tmp_path):
    """init_from starts the network and its EMA from the source's EMA weights (so the first
    validation loss equals the source's last EMA loss); optimizer and step start fresh; the
    source is recorded; a different model config or process is an error naming the field."""
    data, valid = _gaussian_clouds(40), _gaussian_clouds(9, seed=1)
    src = _run(tmp_path / "a", data, valid)
    src_ck = load_checkpoint(src.last_checkpoint)
    trainer = Trainer(_config(tmp_path / "b", init_from=str(src.last_checkpoint)),
                      train_data=data, valid_data=valid, progress=False)  # fmt: skip
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, src_ck.ema_state[k])
    assert trainer.step == 0 and not trainer.optimizer.state
    fine = _run(tmp_path / "b", data, valid, init_from=str(src.last_checkpoint))
    assert fine.valid[0]["valid_loss_ema"] == pytest.approx(src.valid[-1]["valid_loss_ema"], rel=1e-12)
    fresh = _run(tmp_path / "c", data, valid)
    assert fine.valid[0]["valid_loss_ema"] != pytest.approx(fresh.valid[0]["valid_loss_ema"], rel=1e-3)
    ck = load_checkpoint(fine.last_checkpoint)
    assert ck.metadata["init_from"]["step"] == 12
    assert ck.metadata["init_from"]["path"] == str(src.last_checkpoint)
    assert ck.train_config["init_from"] == str(src.last_checkpoint)
    with pytest.raises(ConfigError, match=r"model config differs from model: in hidden \(8 vs 16\)"):
        Trainer(_config(tmp_path / "d", init_from=str(src.last_checkpoint),
                        **{"model.hidden": 16}), train_data=data, progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="noise process .* differs"):
        Trainer(_config(tmp_path / "d", init_from=str(src.last_checkpoint),
                        **{"process": {"type": "vp", "beta_max": 10.0}}),
                train_data=data, progress=False)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        Trainer(_config(tmp_path / "d", init_from=str(tmp_path / "nope.safetensors")),
                train_data=data, progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="config.init_from must be a non-empty string"):
        _config(tmp_path / "d", init_from="")


def test_init_from_a_score_checkpoint_initialises_an_energy_models_backbone(tmp_path):
    """An energy model (score = -grad E) can start from a score model of its backbone config:
    the backbone gets the source's EMA weights, the readout keeps its own initialisation; a
    checkpoint of a different backbone is refused, naming the field."""
    data, valid = _gaussian_clouds(40), _gaussian_clouds(9, seed=1)
    src = _run(tmp_path / "a", data, valid, **{"model.sigma_data": 1.0})
    src_ck = load_checkpoint(src.last_checkpoint)
    energy = {"name": "energy", "readout_hidden": 8, "edm_preconditioning": True,
              "backbone": src_ck.model_config}  # fmt: skip
    trainer = Trainer(_config(tmp_path / "b", init_from=str(src.last_checkpoint), model=energy),
                      train_data=data, valid_data=valid, progress=False)  # fmt: skip
    for k, v in trainer.model.backbone.state_dict().items():
        assert torch.equal(v, src_ck.ema_state[k])
    assert trainer.model.readout[-1].weight.abs().sum() == 0  # its own (zero) init
    fine = _run(tmp_path / "b", data, valid, init_from=str(src.last_checkpoint), model=energy)
    assert torch.isfinite(torch.as_tensor(fine.train_loss)).all()
    assert load_checkpoint(fine.last_checkpoint).metadata["init_from"]["step"] == 12
    other = dict(energy, backbone=dict(src_ck.model_config, hidden=16))
    with pytest.raises(ConfigError, match=r"differs from model.backbone: in hidden \(8 vs 16\)"):
        Trainer(_config(tmp_path / "c", init_from=str(src.last_checkpoint), model=other),
                train_data=data, progress=False)  # fmt: skip


def test_sigint_stops_with_checkpoint_and_resumes(tmp_path):
    data, valid = _gaussian_clouds(40), _gaussian_clouds(9, seed=1)
    full = _run(tmp_path / "full", data, valid)

    def interrupt(trainer, step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    part = _run(tmp_path / "b", data, valid, callback=interrupt)
    assert part.interrupted and 5 <= part.step < 12
    assert load_checkpoint(part.last_checkpoint).step == part.step
    resumed = _run(tmp_path / "b", data, valid)
    assert not resumed.interrupted and torch.equal(resumed.train_loss, full.train_loss)


def test_resume_errors(tmp_path):
    data, valid = _gaussian_clouds(40), _gaussian_clouds(9, seed=1)
    res = _run(tmp_path / "a", data, valid)
    with pytest.raises(FileExistsError, match="last.safetensors exists"):
        _run(tmp_path / "a", data, valid, resume="never")
    with pytest.raises(CheckpointError, match=r"different training config.*train\.batch_size"):
        _run(tmp_path / "a", data, valid, **{"train.batch_size": 4})
    with pytest.raises(CheckpointError, match="not a resumable checkpoint"):
        _run(tmp_path / "c", data, valid, resume=res.best_checkpoint)
    # harmless differences are allowed; a finished run is not trained further
    again = _run(tmp_path / "a", data, valid, **{"train.log_every": 3})
    assert again.step == 12 and torch.equal(again.train_loss, res.train_loss)


def test_checkpoint_contents(tmp_path):
    data, valid = _gaussian_clouds(40), _gaussian_clouds(9, seed=1)
    res = _run(tmp_path / "a", data, valid, metadata={"training_temperature": 2.0})
    ck = load_checkpoint(res.last_checkpoint)
    assert ck.resumable and ck.step == 12
    assert ck.metadata["training_temperature"] == 2.0
    assert ck.metadata["graph"]["atom_types"] == [0, 0, 0, 0] and ck.metadata["n_atoms"] == 4
    assert ck.process == VPSDE(com_free=True)
    assert ck.train_config["train"]["n_steps"] == 12
    best = load_checkpoint(res.best_checkpoint)
    assert not best.resumable and best.ema_state is not None
    assert sorted(os.listdir(tmp_path / "a")) == [
        "best.safetensors", "config.yaml", "last.safetensors", "log.jsonl"]


@pytest.mark.parametrize("model, dtype", [
    ({"name": "energy", "backbone": {"name": "egnn", "hidden": 8, "n_layers": 1,
                                     "n_atom_types": 1}}, "float32"),
    ({"name": "tensor_product", "hidden_scalars": 4, "hidden_vectors": 2, "hidden_tensors": 0,
      "lmax": 1, "n_layers": 1, "chiral": False, "n_atom_types": 1}, "float32"),
    ({"name": "egnn", "hidden": 8, "n_layers": 1, "n_atom_types": 1, "sigma_data": 0.5,
      "parameterization": "denoiser", "time_input": "log_sigma"}, "float64"),
])
def test_other_networks_and_dtypes_train(tmp_path, model, dtype):
    cfg = load_config(_config(tmp_path).to_dict(), {
        "model": model, "dtype": dtype, "train.n_steps": 4, "train.batch_size": 4,
        "loss.weighting": "edm" if "sigma_data" in model else "eps"})
    data = _gaussian_clouds(16)
    res = train(cfg, train_data=data, progress=False)
    assert res.step == 4 and torch.isfinite(res.train_loss).all() and res.best_checkpoint is None
    ck = load_checkpoint(res.last_checkpoint)
    assert ck.model_config["name"] == model["name"]
    assert next(iter(ck.model_state.values())).dtype == getattr(torch, dtype)


def test_data_model_mismatch_errors(tmp_path):
    with pytest.raises(ConfigError, match="condition vectors of width 2 but model.cond_dim is 0"):
        Trainer(_config(tmp_path), train_data=_gaussian_clouds(10, cond_dim=2))
    with pytest.raises(ConfigError, match="atom type 2 but model.n_atom_types is 1"):
        Trainer(_config(tmp_path), train_data=MoleculeDataset(_records(5)))


def test_training_temperature_is_checked_against_the_data(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 4, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, temperature=np.float64(2.0))
    over = {"data.train": str(tmp_path / "d.npz"), "metadata": {"training_temperature": 1.0}}
    with pytest.raises(ConfigError, match="training_temperature is 1.0 .*T = 2.0"):
        Trainer(_config(tmp_path / "o", **over), progress=False)


def test_cli_runs_the_lj13_recipe(tmp_path, capsys):
    out = tmp_path / "lj"
    code = main([
        str(REPO / "configs" / "lj13_egnn_T2.yaml"), "--no-progress",
        "--set", f"output_dir={out}", "--set", "train.n_steps=3", "--set", "train.batch_size=4",
        "--set", "model.hidden=8", "--set", "model.n_layers=1", "--set", "data.n_valid=8",
        "--set", "data.n_train=64",
    ])
    assert code == 0
    assert "finished at step 3" in capsys.readouterr().out
    ck = load_checkpoint(out / "last.safetensors")
    assert ck.metadata["system"] == "lj13" and ck.metadata["training_temperature"] == 2.0
    assert ck.metadata["data"]["temperature"] == 2.0 and ck.metadata["n_atoms"] == 13
    assert main([str(REPO / "configs" / "lj13_egnn_T2.yaml"), "--set", "train.n_stepz=3"]) == 2
    assert "unknown key train.n_stepz" in capsys.readouterr().err
