"""The energy-matching term of the training loss: r_i = E_theta(x0_i, t0) - U_i / kT, penalised
by its batch variance (config, data, the term's value, its effect, errors, resume)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_train import _config, _gaussian_clouds, _records, _run

from fkc.checkpoint import load_checkpoint, save_checkpoint
from fkc.models import MolecularGraph
from fkc.systems import MOLAR_GAS_CONSTANT
from fkc.train import (
    ConfigError,
    LossConfig,
    MoleculeDataset,
    PointCloudDataset,
    TrainConfig,
    Trainer,
    energy_matching_loss,
    energy_residual,
    load_config,
    train,
)

F64 = torch.float64
T_KELVIN = 300.0
KT = MOLAR_GAS_CONSTANT * T_KELVIN  # kJ/mol
#: spring constants (units of kT per squared length) between the 4 atoms of the harmonic system
SPRINGS = torch.tensor([[0.0, 2.0, 0.3, 0.2],
                        [2.0, 0.0, 1.0, 0.8],
                        [0.3, 1.0, 0.0, 0.5],
                        [0.2, 0.8, 0.5, 0.0]], dtype=F64)  # fmt: skip
ENERGY_MODEL = {"name": "energy", "readout_hidden": 8,
                "backbone": {"name": "egnn", "hidden": 8, "n_layers": 1, "n_atom_types": 4}}


def _harmonic(n, seed, dtype=torch.float32):
    """Exact Boltzmann samples of 4 atoms (types 0-3) joined by springs,
    ``U(x) = 1/2 sum_{i<j} k_ij |x_i - x_j|^2 = 1/2 tr(x^T L x)`` (kJ/mol, ``k = SPRINGS kT``,
    ``L`` the graph Laplacian), at 300 K: a Gaussian on the CoM-free subspace, sampled through
    the eigenmodes of ``L`` (variance ``kT / (kT lambda_k)`` per nonzero mode), with
    ``U / kT ~ chi^2_9 / 2``."""
    lap = torch.diag(SPRINGS.sum(1)) - SPRINGS
    lam, modes = torch.linalg.eigh(lap)  # lam[0] = 0: the centre-of-mass mode
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, 3, generator=g, dtype=F64)
    x = torch.einsum("ak,nkd->nad", modes[:, 1:] / lam[1:].sqrt(), z)
    u = 0.5 * torch.einsum("nad,ab,nbd->n", x, lap, x) * KT
    return PointCloudDataset(x, MolecularGraph(torch.arange(4)), energy=u,
                             metadata={"temperature": T_KELVIN}, dtype=dtype)  # fmt: skip


def _energy_config(out, **over):
    base = {"model": ENERGY_MODEL, "loss.energy_weight": 1.0}
    return _config(out, **(base | over))


# ---- config ---------------------------------------------------------------------------------
def test_energy_loss_config_defaults_round_trip_and_units(tmp_path):
    cfg = _energy_config(tmp_path, **{"loss.t_min": 0.01})
    assert cfg.loss.energy_t is None and cfg.loss.energy_time == 0.01
    assert cfg.loss.energy_unit == "kJ/mol" and cfg.loss.kT(T_KELVIN) == KT
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["loss"]["energy_weight"] == 1.0
    cfg = _energy_config(tmp_path, **{"loss.energy_t": "2e-3", "loss.energy_unit": "reduced"})
    assert cfg.loss.energy_time == 0.002 and cfg.loss.kT(2.0) == 2.0
    assert LossConfig().energy_weight == 0.0


@pytest.mark.parametrize("key, value, pattern", [
    ("loss.energy_weight", -1.0, r"loss\.energy_weight must be a finite number >= 0.0, got -1\.0"),
    ("loss.energy_weight", "lots", r"loss\.energy_weight .* got 'lots'"),
    ("loss.energy_t", 0.0, r"loss\.energy_t must be .*> 0\.0 and < 1\.0 or null, got 0\.0"),
    ("loss.energy_t", 1.0, r"loss\.energy_t .* got 1\.0"),
    ("loss.energy_unit", "kcal/mol", r"loss\.energy_unit must be one of .* got 'kcal/mol'"),
    ("train.batch_size", 1, r"energy_weight 1\.0 needs train\.batch_size >= 2 .*got 1"),
])  # fmt: skip
def test_energy_loss_config_errors_name_the_value(tmp_path, key, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        _energy_config(tmp_path, **{key: value})


def test_energy_weight_needs_an_energy_model(tmp_path):
    with pytest.raises(ConfigError, match=r"energy_weight 0\.5 needs an energy model .*'egnn'"):
        _config(tmp_path, **{"loss.energy_weight": 0.5})
    _config(tmp_path, **{"loss.energy_weight": 0.0})  # off: any model


# ---- data -----------------------------------------------------------------------------------
def test_point_cloud_energies_load_subset_and_batch(tmp_path):
    rng = np.random.default_rng(0)
    x, u = rng.normal(size=(6, 4, 3)).astype(np.float32), rng.normal(size=6) * 50
    np.savez(tmp_path / "d.npz", x=x, energy=u, temperature=np.float64(300.0))
    ds = PointCloudDataset.from_npz(tmp_path / "d.npz")
    assert ds.energy.dtype == F64 and np.array_equal(ds.energy.numpy(), u)
    assert ds.metadata["temperature"] == 300.0
    sub = ds.subset(torch.tensor([5, 2, 3]))
    b = sub.batch(torch.tensor([2, 0])).to("cpu")
    assert b.energy.dtype == F64 and b.energy.tolist() == [u[3], u[5]]
    assert _gaussian_clouds(3).batch(torch.arange(3)).energy is None
    assert MoleculeDataset(_records(3)).batch(torch.arange(3)).energy is None
    u[4] = np.nan
    np.savez(tmp_path / "bad.npz", x=x, energy=u)
    with pytest.raises(ValueError, match=r"bad\.npz: energy has non-finite .*samples: \[4\]"):
        PointCloudDataset.from_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", x=x, energy=u[:5])
    with pytest.raises(ValueError, match=r"short\.npz: energy must have shape \(6,\), got \(5,\)"):
        PointCloudDataset.from_npz(tmp_path / "short.npz")


@pytest.mark.parametrize("what", ["no_energy", "no_temperature", "molecules", "valid"])
def test_energy_weight_needs_energies_and_a_temperature(tmp_path, what):
    data, valid = _harmonic(8, 0), None
    x = data.x.numpy()
    if what == "no_energy":
        np.savez(tmp_path / "d.npz", x=x, temperature=np.float64(300.0))
        pattern = r"d\.npz has no 'energy' array"
    elif what == "no_temperature":
        np.savez(tmp_path / "d.npz", x=x, energy=data.energy.numpy())
        pattern = r"d\.npz has no scalar 'temperature'"
    elif what == "molecules":
        data = MoleculeDataset(_records(8))
        pattern = r"MoleculeDataset> is a 'molecules' dataset, which keeps no energies"
    else:
        valid = _gaussian_clouds(5)
        pattern = r"needs validation data with energies .*PointCloudDataset> has no 'energy'"
    if what in ("molecules", "valid"):
        over, kw = {}, {"train_data": data, "valid_data": valid}
    else:
        over, kw = {"data.train": str(tmp_path / "d.npz")}, {}
    with pytest.raises(ConfigError, match=r"loss\.energy_weight 1\.0 .*" + pattern):
        Trainer(_energy_config(tmp_path / "o", **over), progress=False, **kw)


# ---- the term -------------------------------------------------------------------------------
def test_energy_term_vanishes_when_energies_match_the_model(tmp_path):
    """With U_i = kT (E_theta(x_i, t0) + c) the residual is the constant c and the term is 0;
    adding kT delta_i to the energies makes it the batch variance of delta."""
    cfg = _energy_config(tmp_path, dtype="float64", **{"loss.energy_t": 0.01})
    data = _harmonic(24, 0, F64)
    trainer = Trainer(cfg, train_data=data, progress=False)
    with torch.no_grad():  # an untrained energy is nearly flat: give it structure
        torch.nn.init.normal_(trainer.model.readout[-1].weight, std=0.5,
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    b = data.batch(torch.arange(24))
    with torch.no_grad():
        e = trainer.model.energy_flat(b.pos, torch.full((24,), 0.01, dtype=F64), b.batch,
                                      b.atom_types)  # fmt: skip
    assert e.std() > 1e-3  # not flat (vs the 1e-12 tolerance below): the test has teeth
    matched = PointCloudDataset(data.x, data.graph, energy=KT * (e + 3.7),
                                metadata={"temperature": T_KELVIN}, dtype=F64)  # fmt: skip
    r = energy_residual(trainer.model, matched.batch(torch.arange(24)), 0.01, KT)
    torch.testing.assert_close(r, torch.full_like(r, -3.7), rtol=0, atol=1e-12)
    assert r.requires_grad  # differentiable in theta
    delta = torch.linspace(-1.0, 1.0, 24, dtype=F64) ** 3
    shifted = PointCloudDataset(data.x, data.graph, energy=KT * (e + 3.7 + delta),
                                metadata={"temperature": T_KELVIN}, dtype=F64)  # fmt: skip
    idx = trainer.sampler.indices(0)
    for ds, expected in ((matched, 0.0), (shifted, float(delta[idx].var(correction=0)))):
        trainer.train_data = ds  # the trainer reads energies from its dataset at each step
        trainer.model.load_state_dict(init)
        trainer.step, trainer.energy_history = 0, []
        trainer.train_step()  # the term is evaluated before the weights move
        assert trainer.energy_history[0] == pytest.approx(expected, abs=1e-20, rel=1e-9)
    assert expected > 0.05
    with pytest.raises(ValueError, match=r"shape \(G >= 2,\), got \(1,\)"):
        energy_matching_loss(r[:1])
    with pytest.raises(ValueError, match="needs batch.energy"):
        energy_residual(trainer.model, _gaussian_clouds(2).batch(torch.arange(2)), 0.01, KT)


def test_energy_matching_learns_the_boltzmann_energy(tmp_path):
    """Same seed, 200 steps on exact samples of the harmonic system: with the energy term the
    validation residual std (nats) is far below that of denoising alone. Seeds 0-5 gave
    0.13-0.36 vs 1.16-1.29 (EMA); the bound 0.5x leaves room for platform differences."""
    data, valid = _harmonic(256, 0), _harmonic(128, 1)
    std = {}
    for w in (0.0, 1.0):
        cfg = _energy_config(tmp_path / f"w{w}", **{
            "loss.energy_weight": w, "optim": {"lr": 1e-2}, "train.n_steps": 200,
            "train.batch_size": 16, "train.log_every": 100, "train.valid_every": 200,
            "train.checkpoint_every": 200, "train.valid_batch_size": 128})  # fmt: skip
        res = train(cfg, train_data=data, valid_data=valid, progress=False)
        std[w] = res.valid[-1]["valid_energy_resid_std_ema"]
        assert res.valid[-1]["valid_energy_resid_std"] > 0
        log = [json.loads(line) for line in (res.output_dir / "log.jsonl").read_text().splitlines()]
        train_lines = [r for r in log if "loss" in r]
        assert all(("loss_energy" in r) == (w > 0) for r in train_lines)
        if w > 0:
            assert res.train_loss_energy.shape == (200,)
            assert train_lines[-1]["loss_energy"] < 0.1 * res.train_loss_energy[0]
        else:
            assert res.train_loss_energy is None
    assert std[0.0] > 1.0  # sd of U / kT itself is 2.1
    assert std[1.0] < 0.5 * std[0.0], std


# ---- resume ---------------------------------------------------------------------------------
def test_resume_with_the_energy_term_is_bitwise_identical(tmp_path):
    data, valid = _harmonic(40, 0), _harmonic(9, 1)
    over = {"model": ENERGY_MODEL, "loss.energy_weight": 0.5, "train.n_steps": 8}
    full = _run(tmp_path / "full", data, valid, **over)

    def crash(trainer, step, loss):
        if step == 6:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "b", data, valid, callback=crash, **over)
    resumed = _run(tmp_path / "b", data, valid, **over)
    assert torch.equal(resumed.train_loss, full.train_loss)
    assert torch.equal(resumed.train_loss_energy, full.train_loss_energy)
    assert resumed.valid == full.valid and "valid_energy_resid_std_ema" in full.valid[-1]


def test_checkpoints_written_before_the_energy_keys_still_resume(tmp_path):
    data, valid = _gaussian_clouds(40), _gaussian_clouds(9, seed=1)
    res = _run(tmp_path / "a", data, valid)
    ck = load_checkpoint(res.last_checkpoint)
    old = json.loads(json.dumps(ck.train_config))
    for k in ("energy_weight", "energy_t", "energy_unit"):
        del old["loss"][k]
    save_checkpoint(res.last_checkpoint, dataclasses.replace(ck, train_config=old))
    again = _run(tmp_path / "a", data, valid)  # checks the config, then finds the run finished
    assert again.step == 12 and torch.equal(again.train_loss, res.train_loss)
    assert load_config(old | {"output_dir": "x"}).loss.energy_weight == 0.0


def test_training_curve_has_an_energy_panel(tmp_path):
    from fkc.train._report import plot_training_curve

    log = tmp_path / "log.jsonl"
    recs = [{"step": 0, "valid_loss_ema": 1.0, "valid_energy_resid_std_ema": 9.0},
            {"step": 10, "loss": 2.0, "loss_energy": 4.0},
            {"step": 20, "loss": 1.5, "loss_energy": 1.0, "valid_loss_ema": 0.9,
             "valid_energy_resid_std_ema": 3.0}]
    log.write_text("\n".join(json.dumps(r) for r in recs))
    out = plot_training_curve(log, tmp_path / "curve.png")
    assert out.stat().st_size > 1000 and not list(tmp_path.glob("*.tmp.png"))
    with pytest.raises(ValueError, match="no training-loss records"):
        log.write_text(json.dumps(recs[0]))
        plot_training_curve(log, tmp_path / "c2.png")
