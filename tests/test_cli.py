"""Command line: demo, evaluate, sample files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fkc.cli import main
from fkc.io import SampleFile, load_samples, save_samples


def test_demo_writes_table_and_png(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--workload", "gmm", "--particles", "300", "--steps", "40", "--out",
                 str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "q1^2 (anneal, beta=2)" in text and "uncorrected" in text and "FKC" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_lj13_demo_is_the_default_and_writes_table_and_png(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--particles", "16", "--steps", "8", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "FKC" in text and "uncorrected" in text and "reference T=2 (no annealing)" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_lj13_demo_names_missing_files(tmp_path, monkeypatch):
    import fkc.demo_lj13 as d

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(d, "REPO", tmp_path)
    with pytest.raises(FileNotFoundError, match="models/lj13-egnn-T2"):
        d.run_lj13_demo(out=tmp_path / "x.png", n_particles=4, n_steps=2, progress=False)


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "fkc", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "demo" in r.stdout


def test_sample_file_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 13, 3))
    p = save_samples(tmp_path / "s.npz", SampleFile(
        x=x, log_weights=np.zeros(5), log_z=-1.5, diagnostics={"ess": np.ones(3)},
        metadata={"temperature": 1.5}))
    s = load_samples(p)
    np.testing.assert_allclose(s.x, x.astype(np.float32))
    assert s.log_z == -1.5 and s.metadata == {"temperature": 1.5}
    assert s.diagnostics["ess"].shape == (3,)
    assert not [f for f in tmp_path.iterdir() if f.name != "s.npz"]


def test_corrupt_sample_file_is_named(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_samples(p)


def test_evaluate_against_reference(tmp_path, capsys):
    from fkc.systems.reference import load_reference

    ref_path = "datasets/lj13/T2.0.npz"
    ref = load_reference(ref_path)
    same = save_samples(tmp_path / "same.npz", SampleFile(x=ref.x[:1000]))
    other = save_samples(tmp_path / "other.npz",
                         SampleFile(x=load_reference("datasets/lj13/T0.8.npz").x[:1000]))
    metrics = {}
    for name, path in (("same", same), ("other", other)):
        js = tmp_path / f"{name}.json"
        assert main(["evaluate", str(path), "--reference", ref_path, "--json", str(js),
                     "--out-dir", str(tmp_path / name)]) == 0
        metrics[name] = json.loads(js.read_text())
        assert (tmp_path / name / "energy_hist.png").exists()
    assert "energy_w2" in capsys.readouterr().out
    # a subset of the reference is close to it; samples at T = 0.8 are far from T = 2
    assert metrics["same"]["energy_w1"] < 1.5 < 10 < metrics["other"]["energy_w1"]
    assert metrics["same"]["distance_w2"] < 0.05 < metrics["other"]["distance_w2"]


def _save_toy(folder, cfg, model, proc, edge_index=None):
    """Save ``model`` as a 4-atom toy checkpoint trained at T = 2 in ``folder`` (a point cloud,
    or a molecule with the bonds ``edge_index`` ``[[i...], [j...]]``, all of bond type 0)."""
    from fkc.checkpoint import Checkpoint, save_checkpoint

    meta = {"training_temperature": 2.0, "system": "toy",
            "graph": {"atom_types": [0] * 4, "edge_index": edge_index,
                      "bond_types": None if edge_index is None else [0] * len(edge_index[0]),
                      "atom_features": None}}
    save_checkpoint(folder / "last.safetensors",
                    Checkpoint(model_config=cfg.to_dict(), process=proc,
                               model_state=model.state_dict(), ema_state=model.state_dict(),
                               metadata=meta))
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from fkc.models import EGNNConfig, build_model
    from fkc.sde import VPSDE

    proc = VPSDE(com_free=True)
    cfg = EGNNConfig(hidden=8, n_layers=1, n_atom_types=1)
    torch.manual_seed(0)
    return _save_toy(tmp_path_factory.mktemp("model"), cfg, build_model(cfg, proc), proc)


def _energy_toy(folder, edge_index=None):
    """An energy-parameterised toy model (it has a log density, so MALA moves are possible)."""
    import torch

    from fkc.models import EGNNConfig, EnergyConfig, build_model
    from fkc.sde import VPSDE

    proc = VPSDE(com_free=True)
    bond_types = 0 if edge_index is None else 1
    cfg = EnergyConfig(backbone=EGNNConfig(hidden=8, n_layers=1, n_atom_types=1, sigma_data=1.0,
                                           n_bond_types=bond_types),
                       readout_hidden=8, edm_preconditioning=True)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg, proc)
    torch.nn.init.normal_(model.readout[-1].weight, std=0.1)
    return _save_toy(folder, cfg, model, proc, edge_index)


@pytest.fixture(scope="module")
def tiny_energy_model(tmp_path_factory):
    return _energy_toy(tmp_path_factory.mktemp("energy_model"))


def test_anneal_writes_samples_with_metadata(tiny_model, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles",
                 "16", "--steps", "5", "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    s = load_samples(out)
    assert s.x.shape == (16, 4, 3)
    assert np.abs(s.x.mean(axis=1)).max() < 1e-5  # CoM-free
    assert s.metadata["beta"] == 2.0 and s.metadata["seed"] == 3 and s.metadata["correct"]
    assert s.metadata["score_evaluations"] == 7 * 16  # 5 steps + final point + denoising
    assert s.metadata["grid"] == "edm" and s.metadata["denoise"]
    assert s.metadata["weight_window"] == [1.0, 0.0]
    assert s.diagnostics["ess"].shape == (6,)
    # the same seed reproduces the file; --no-correct is the baseline with no log Z
    out2 = tmp_path / "s2.npz"
    main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles", "16",
          "--steps", "5", "--seed", "3", "--out", str(out2), "--no-progress"])
    np.testing.assert_array_equal(load_samples(out2).x, s.x)
    out3 = tmp_path / "s3.npz"
    main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles", "16",
          "--steps", "5", "--out", str(out3), "--no-progress", "--no-correct", "--noise", "tempered"])
    s3 = load_samples(out3)
    assert np.isnan(s3.log_z) and s3.metadata["noise_level"] == 0.5


def test_anneal_bad_inputs(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="temperature must be finite and > 0, got -1.0"):
        main(["anneal", "--model", str(tiny_model), "--temperature", "-1", "--out",
              str(tmp_path / "x.npz"), "--no-progress"])
    with pytest.raises(ValueError, match="does not exist"):
        main(["anneal", "--model", str(tmp_path / "nope"), "--temperature", "1", "--out",
              str(tmp_path / "x.npz"), "--no-progress"])
    with pytest.raises(SystemExit):
        main(["anneal", "--model", str(tiny_model), "--temperature", "1", "--noise", "loud",
              "--out", str(tmp_path / "x.npz")])


def test_anneal_passes_grid_window_and_denoise_options(tiny_model, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles",
                 "8", "--steps", "6", "--grid", "uniform", "--weight-window", "1", "0.5",
                 "--resample-window", "0.9", "0.1", "--t-min", "0.01", "--no-denoise",
                 "--out", str(out), "--no-progress"]) == 0
    m = load_samples(out).metadata
    assert m["grid"] == "uniform" and not m["denoise"] and m["t_min"] == 0.01
    assert m["weight_window"] == [1.0, 0.5] and m["resample_window"] == [0.9, 0.1]
    assert m["score_evaluations"] == 7 * 8
    with pytest.raises(ValueError, match="weight_window"):
        main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles", "8",
              "--steps", "4", "--weight-window", "0.2", "0.5", "--out", str(out),
              "--no-progress"])


def test_anneal_mcmc_moves_options(tiny_model, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles",
                 "8", "--steps", "6", "--mcmc-steps", "2", "--mcmc-window", "1", "0",
                 "--mcmc-step-size", "0.3", "--out", str(out), "--no-progress"]) == 0
    s = load_samples(out)
    m = s.metadata
    # a score-only network: auto picks ULA; 2 moves at each of the 6 step times
    assert m["mcmc"] == "ula" and m["mcmc_steps"] == 2 and m["mcmc_step_size"] == 0.3
    assert m["score_evaluations"] == (6 + 1 + 1 + 12) * 8
    acc = s.diagnostics["mcmc_acceptance"]
    assert acc.shape == (7,) and np.all(acc[:-1] == 1.0) and np.isnan(acc[-1])
    with pytest.raises(ValueError, match="MALA moves need a log density"):
        main(["anneal", "--model", str(tiny_model), "--temperature", "1.0", "--particles", "8",
              "--steps", "4", "--mcmc-steps", "1", "--mcmc", "mala", "--out", str(out),
              "--no-progress"])


def test_anneal_adaptive_mala_on_an_energy_model(tiny_energy_model, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["anneal", "--model", str(tiny_energy_model), "--temperature", "1.0",
                 "--particles", "16", "--steps", "8", "--mcmc-steps", "2", "--mcmc-adapt",
                 "--out", str(out), "--no-progress"]) == 0
    s = load_samples(out)
    m = s.metadata
    assert m["mcmc"] == "mala" and m["mcmc_adapt"] is True  # auto: the model has a log density
    steps, acc = s.diagnostics["mcmc_step_size"], s.diagnostics["mcmc_acceptance"]
    assert steps.shape == acc.shape == (9,) and steps[0] == 0.5 and np.isnan(steps[-1])
    # each step size follows from the previous one and its acceptance (gain 1, target 0.57)
    np.testing.assert_allclose(steps[1:-1], steps[:-2] * np.exp(acc[:-2] - 0.57), rtol=1e-12)
    with pytest.raises(ValueError, match="MALA's acceptance rate, got kind 'ula'"):
        main(["anneal", "--model", str(tiny_energy_model), "--temperature", "1.0",
              "--particles", "8", "--steps", "4", "--mcmc-steps", "1", "--mcmc", "ula",
              "--mcmc-adapt", "--out", str(out), "--no-progress"])


def test_anneal_density_weights_on_an_energy_model(tiny_energy_model, tiny_model, tmp_path):
    out = tmp_path / "d.npz"
    args = ["anneal", "--temperature", "0.5", "--particles", "16", "--steps", "6",
            "--weights", "density", "--no-progress", "--out", str(out)]
    assert main(args + ["--model", str(tiny_energy_model), "--mcmc-steps", "1"]) == 0
    s = load_samples(out)
    assert s.metadata["weights"] == "density" and np.isfinite(s.log_z)
    assert np.isfinite(s.x).all()
    with pytest.raises(ValueError, match="weights='density' needs a log density"):
        main(args + ["--model", str(tiny_model)])  # score-only network


def test_anneal_by_tempering_on_an_energy_model(tiny_energy_model, tiny_model, tmp_path):
    out = tmp_path / "t.npz"
    args = ["anneal", "--temperature", "0.5", "--particles", "16", "--steps", "6",
            "--method", "tempering", "--tempering-steps", "4", "--burn-in", "2", "--mcmc-steps",
            "1", "--no-progress", "--out", str(out)]
    assert main(args + ["--model", str(tiny_energy_model)]) == 0
    s = load_samples(out)
    m = s.metadata
    assert m["method"] == "tempering" and m["weights"] == "tempering" and np.isfinite(s.log_z)
    # SDE steps and their moves (the last time has none), start, burn-in, rungs + final, denoise
    assert m["score_evaluations"] == (6 + 6 + 1 + 2 + 1 * 5 + 1) * 16
    assert s.diagnostics["lambdas"].tolist()[0] == 0.0 and np.isfinite(s.x).all()
    assert main(args + ["--model", str(tiny_energy_model), "--no-correct"]) == 0
    assert load_samples(out).metadata["weights"] is None
    with pytest.raises(ValueError, match="method='tempering' needs an energy-parameterised model"):
        main(args + ["--model", str(tiny_model)])  # score-only network
    with pytest.raises(ValueError, match="moves the particles by MALA, got mcmc='ula'"):
        main(args + ["--model", str(tiny_energy_model), "--mcmc", "ula"])


def test_anneal_by_tempering_with_torsion_moves(tiny_energy_model, tmp_path):
    chain = tmp_path / "chain"
    chain.mkdir()
    _energy_toy(chain, edge_index=[[0, 1, 2], [1, 2, 3]])  # a 4-atom chain: one rotatable bond
    out = tmp_path / "t.npz"
    args = ["anneal", "--temperature", "0.5", "--particles", "16", "--steps", "6",
            "--method", "tempering", "--tempering-steps", "4", "--burn-in", "2", "--mcmc-steps",
            "1", "--torsion-steps", "3", "--no-progress", "--out", str(out)]
    assert main(args + ["--model", str(chain)]) == 0
    s = load_samples(out)
    m = s.metadata
    assert m["torsion_steps"] == 3 and m["n_torsions"] == 1 and np.isfinite(s.x).all()
    acc = s.diagnostics["torsion_acceptance"]
    assert acc.shape == (5,) and np.all((acc >= 0) & (acc <= 1))
    # as without torsions, plus 3 log densities and one re-evaluation per burn-in move and block
    assert m["score_evaluations"] == (6 + 6 + 1 + 2 + 1 * 5 + 1 + (3 + 1) * (2 + 5)) * 16
    with pytest.raises(ValueError, match="stores a graph without bonds"):
        main(args + ["--model", str(tiny_energy_model)])  # a point cloud
    with pytest.raises(ValueError, match="torsion_steps=3 needs method='tempering'"):
        main(args[:7] + args[9:] + ["--model", str(chain)])  # --method sde


def test_anneal_on_to_the_force_field(tiny_energy_model, tmp_path):
    pytest.importorskip("openmm")
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "models/aldp-energy-em-T800"
    out = tmp_path / "ff.npz"
    args = ["anneal", "--temperature", "300", "--particles", "8", "--steps", "5", "--method",
            "tempering", "--tempering-steps", "2", "--burn-in", "1", "--mcmc-steps", "1",
            "--force-field-steps", "3", "--no-progress", "--out", str(out)]
    assert main(args + ["--model", str(model), "--torsion-steps", "1"]) == 0
    s = load_samples(out)
    m = s.metadata
    assert m["target"] == "force field" and m["force_field_steps"] == 3 and not m["denoise"]
    assert np.allclose(s.diagnostics["ff_lambdas"], [0.0, 1 / 3, 2 / 3, 1.0])
    assert s.diagnostics["lambdas"].shape == (3,) and np.isfinite(s.x).all()
    assert np.isfinite(s.log_z)
    with pytest.raises(ValueError, match="needs a system with a force field"):
        main(args + ["--model", str(tiny_energy_model)])
    with pytest.raises(ValueError, match="force_field_steps=3 needs method='tempering'"):
        main(args[:7] + args[9:] + ["--model", str(model)])
