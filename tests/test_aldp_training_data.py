"""Alanine-dipeptide training files (angstrom + molecular graph), graph arrays in point-cloud files,
and training a chiral tensor-product network on them (EMA with e3nn's compiled modules)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openmm")
if importlib.util.find_spec("openmmtools") is None:
    pytest.skip("openmmtools is not installed", allow_module_level=True)

from fkc.models import TensorProductNet  # noqa: E402
from fkc.models._tensor_product import TensorProductConfig  # noqa: E402
from fkc.systems import (  # noqa: E402
    AlanineDipeptide,
    MDConfig,
    aldp_graph_arrays,
    aldp_training_set,
    run_md,
    to_nm,
)
from fkc.systems._aldp_data import BOND_PAIRS, ELEMENTS  # noqa: E402
from fkc.systems.aldp_md import main  # noqa: E402
from fkc.train import EMA, PointCloudDataset  # noqa: E402

TINY = MDConfig(temperature=800.0, n_frames=10, save_interval=50, equilibration_steps=100,
                chunk_frames=5, seed=7)  # fmt: skip


@pytest.fixture(scope="module")
def md_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("md") / "T800_s7.npz"
    run_md(TINY, path, progress=False)
    return path


def test_graph_arrays_describe_alanine_dipeptide():
    system = AlanineDipeptide()
    g = aldp_graph_arrays(system)
    el = system.elements
    assert [ELEMENTS[t] for t in g["atom_types"]] == list(el)
    assert g["edge_index"].shape == (2, 21) and g["bond_types"].shape == (21,)
    for (i, j), bt in zip(g["edge_index"].T, g["bond_types"], strict=True):
        assert set(BOND_PAIRS[bt]) == {el[i], el[j]}
    # hydrogens have one neighbour, carbons four or three (carbonyl), the amide N three
    degree = g["atom_features"].argmax(1) + 1
    assert (degree[np.array(el) == "H"] == 1).all()
    assert sorted(set(degree[np.array(el) == "C"].tolist())) == [3, 4]
    assert (degree[np.array(el) == "N"] == 3).all() and (degree[np.array(el) == "O"] == 1).all()
    np.testing.assert_array_equal(g["atom_features"].sum(1), 1.0)


def test_training_set_units_graph_and_loader(tmp_path, md_file):
    out = aldp_training_set([md_file, md_file], tmp_path / "train.npz", stride=2, max_frames=4)
    with np.load(out) as f:
        x, meta = f["x"], json.loads(str(f["metadata"]))
        assert str(f["length_unit"]) == "angstrom" and float(f["temperature"]) == 800.0
        assert f["energy"].shape == (8,)
    assert x.shape == (8, 22, 3) and x.dtype == np.float32
    from fkc.systems import load_md

    d = load_md(md_file)
    np.testing.assert_allclose(to_nm(x[:4]), d.x[::2][:4], rtol=1e-6)  # angstrom -> nm
    assert meta["stride"] == 2 and [s["frames"] for s in meta["sources"]] == [4, 4]
    assert len(meta["sources"][0]["sha256"]) == 64

    ds = PointCloudDataset.from_npz(out)
    g = aldp_graph_arrays()
    assert ds.graph.atom_types.tolist() == g["atom_types"].tolist()
    assert ds.graph.edge_index.tolist() == g["edge_index"].tolist()
    assert ds.graph.atom_features.shape == (22, 4)
    assert ds.metadata["temperature"] == 800.0
    b = ds.batch(torch.tensor([0, 3]))
    assert b.edge_index.shape == (2, 42) and b.atom_features.shape == (44, 4)
    # config atom types must agree with the stored ones
    with pytest.raises(ValueError, match="differ from the atom_types stored"):
        PointCloudDataset.from_npz(out, atom_types=[0] * 22)
    assert PointCloudDataset.from_npz(out, atom_types=g["atom_types"].tolist()).n_atoms == 22


def test_stored_graph_errors(tmp_path):
    x = np.zeros((3, 4, 3), dtype=np.float32) + np.arange(4.0)[:, None]
    np.savez(tmp_path / "a.npz", x=x, edge_index=np.array([[0], [1]]), bond_types=np.array([0]))
    with pytest.raises(ValueError, match="without 'atom_types'"):
        PointCloudDataset.from_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=x, atom_types=np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match=r"atom_types must be integers of shape \(4,\)"):
        PointCloudDataset.from_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=x, atom_types=np.zeros(4, dtype=np.int64),
             edge_index=np.array([[0], [9]]), bond_types=np.array([0]))  # fmt: skip
    with pytest.raises(ValueError, match="c.npz: invalid stored graph"):
        PointCloudDataset.from_npz(tmp_path / "c.npz")


def test_training_set_errors_and_cli(tmp_path, md_file, capsys):
    with pytest.raises(ValueError, match="at least one MD file"):
        aldp_training_set([], tmp_path / "x.npz")
    with pytest.raises(ValueError, match="stride must be an int >= 1, got 0"):
        aldp_training_set([md_file], tmp_path / "x.npz", stride=0)
    other = tmp_path / "T300.npz"
    run_md(MDConfig(temperature=300.0, n_frames=2, save_interval=50, equilibration_steps=10,
                    seed=1), other, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="different temperatures"):
        aldp_training_set([md_file, other], tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    assert main(["training-set", str(md_file), "--out", str(tmp_path / "t.npz")]) == 0
    assert "10 frames at 800 K (angstrom)" in capsys.readouterr().out


def test_ema_of_a_chiral_tensor_product_network():
    """e3nn's fx-compiled tensor products gain constant buffers when deep-copied; the EMA must
    still update (by buffer name) and track the parameters."""
    cfg = TensorProductConfig(chiral=True, n_atom_types=4, atom_feature_dim=4, n_bond_types=10)
    net = TensorProductNet(cfg).train()  # default sizes (lmax 2): the copy has 4 more buffers
    ema = EMA(net, decay=0.5, warmup=False)
    assert len(list(ema.module.buffers())) > len(list(net.buffers()))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, 1)
    for (name, pe), p in zip(ema.module.named_parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(pe, p - 0.5, msg=name)
    # checkpoints hold the network's own keys only, and load back
    assert list(ema.state_dict()) == list(net.state_dict())
    fresh = EMA(TensorProductNet(cfg), decay=0.5)
    fresh.load_state_dict(ema.state_dict())
    for pe, p in zip(fresh.module.parameters(), ema.module.parameters(), strict=True):
        torch.testing.assert_close(pe, p)
    with pytest.raises(KeyError, match="missing"):
        fresh.load_state_dict({k: v for k, v in ema.state_dict().items() if "output" not in k})


def test_subsample_md_is_loadable_and_not_resumable(tmp_path, md_file, capsys):
    from fkc.systems import load_md, subsample_md

    d = subsample_md([md_file, md_file], tmp_path / "sub.npz", every=3)
    full = load_md(md_file)
    assert d.n_frames == 8 and d.temperature == 800.0  # 4 + 4 frames of 10
    np.testing.assert_array_equal(d.x[:4], full.x[::3])
    np.testing.assert_array_equal(d.energy[4:], full.energy[::3])
    src = d.metadata["subsample"]["sources"]
    assert d.metadata["subsample"]["every"] == 3 and len(src) == 2 and len(src[0]["sha256"]) == 64
    assert d.to_mdtraj().n_frames == 8
    with pytest.raises(ValueError, match="is a subsample"):
        run_md(TINY, tmp_path / "sub.npz", progress=False)
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        subsample_md([md_file], tmp_path / "x.npz", every=0)
    assert main(["subsample", str(md_file), "--every", "5", "--out", str(tmp_path / "s.npz")]) == 0
    assert "2 frames at 800 K" in capsys.readouterr().out


def test_train_anneal_trajectory_evaluate_workflow(tmp_path, md_file, capsys):
    """The shipped config trains (tiny settings) on a training file, `fkc anneal --trajectory`
    writes DCD + PDB in nm, and `fkc evaluate` against MD prints the dihedral metrics."""
    import mdtraj

    from fkc.cli import main as fkc_main
    from fkc.io import load_samples
    from fkc.train import load_config, train

    data = aldp_training_set([md_file], tmp_path / "train.npz")
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs/aldp_tp_T800.yaml"), {
        "output_dir": str(tmp_path / "model"), "data.train": str(data), "data.valid": None,
        "model.hidden_scalars": 4, "model.hidden_vectors": 2, "model.n_layers": 2,
        "train.n_steps": 3, "train.batch_size": 4, "train.log_every": 1,
        "train.checkpoint_every": 3})  # fmt: skip
    res = train(cfg, progress=False)
    assert res.step == 3
    out = tmp_path / "s.npz"
    assert fkc_main(["anneal", "--model", str(tmp_path / "model"), "--temperature", "300",
                     "--particles", "6", "--steps", "4", "--out", str(out), "--trajectory",
                     str(tmp_path / "s.dcd"), "--no-progress"]) == 0  # fmt: skip
    s = load_samples(out)
    assert s.metadata["length_unit"] == "angstrom" and s.metadata["beta"] == pytest.approx(8 / 3)
    traj = mdtraj.load(str(tmp_path / "s.dcd"), top=str(tmp_path / "s.pdb"))
    assert traj.n_frames == 6 and traj.n_atoms == 22
    np.testing.assert_allclose(traj.xyz, to_nm(s.x), atol=1e-5)  # mdtraj stores nm
    capsys.readouterr()
    assert fkc_main(["evaluate", str(out), "--reference", str(md_file), "--drop-nonfinite", "--fix-chirality",
                     "--json", str(tmp_path / "m.json")]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "torus_w2" in text and "rama_kl" in text and "chirality_L" in text
    assert "mirrored D -> L" in text
    assert (tmp_path / "s" / "ramachandran.png").exists()
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n_reference"] == 10 and m["chirality_L_reference"] == 1.0
    # a non-molecular model cannot write a trajectory
    with pytest.raises(ValueError, match="length_unit must be 'angstrom' or 'nm'"):
        from fkc.systems import samples_in_nm

        samples_in_nm(s.x, {})


def _sample_file(path, x_angstrom, log_weights, temperature=300.0, system="aldp", log_z=0.0,
                 model="m", correct=True):
    meta = {"system": system, "temperature": temperature, "length_unit": "angstrom",
            "training_temperature": 800.0, "beta": 800.0 / temperature, "seed": 0,
            "correct": correct, "model": model, "noise": "target", "n_steps": 200}  # fmt: skip
    np.savez(path, x=np.asarray(x_angstrom, np.float32), log_weights=np.asarray(log_weights),
             log_z=np.float64(log_z), metadata=np.array(json.dumps(meta)))  # fmt: skip
    return path


def test_training_set_from_samples_resamples_weighted_particles(tmp_path, md_file, capsys):
    """pool='equal': uniform weights keep the particles; skewed weights become equally weighted
    duplicates in proportion to the weights (systematic resampling); energies match OpenMM."""
    from fkc.systems import aldp_training_set_from_samples, load_md

    frames = load_md(md_file).x * 10.0  # nm -> angstrom, (10, 22, 3)
    a = _sample_file(tmp_path / "a.npz", frames[:4], np.zeros(4))
    lw = np.log(np.array([0.5, 0.25, 0.25, 0.0, 0.0, 0.0]) + 1e-300)
    b = _sample_file(tmp_path / "b.npz", frames[4:], lw)
    out = aldp_training_set_from_samples([a, b], tmp_path / "t.npz", pool="equal", seed=1)
    with np.load(out) as f:
        x, e, meta = f["x"], f["energy"], json.loads(str(f["metadata"]))
        assert float(f["temperature"]) == 300.0 and str(f["length_unit"]) == "angstrom"
    assert x.shape == (10, 22, 3)
    np.testing.assert_array_equal(x[:4], frames[:4].astype(np.float32))
    # systematic resampling of 6 with weights (1/2, 1/4, 1/4): exactly 3, 1 or 2, 1 or 2 copies
    copies = [int(np.all(x[4:] == frames[4 + k].astype(np.float32), axis=(1, 2)).sum())
              for k in range(6)]  # fmt: skip
    assert copies[0] == 3 and copies[1] + copies[2] == 3 and copies[1] >= 1 and copies[2] >= 1
    assert copies[3:] == [0, 0, 0]
    np.testing.assert_allclose(e, AlanineDipeptide().energy(to_nm(x.astype(np.float64))),
                               rtol=1e-5, atol=1e-3)  # fmt: skip
    assert [s["unique"] for s in meta["samples"]] == [4, 3]
    assert [s["kept"] for s in meta["samples"]] == [4, 6]
    ds = PointCloudDataset.from_npz(out)
    assert len(ds) == 10 and ds.metadata["temperature"] == 300.0
    assert main(["training-set-from-samples", str(a), str(b), "--out", str(tmp_path / "c.npz"),
                 "--pool", "equal"]) == 0  # fmt: skip
    assert "10 frames (7 distinct) at 300 K" in capsys.readouterr().out


def test_training_set_from_samples_weights_runs_by_their_normaliser(tmp_path, md_file, capsys):
    """pool='z': run r gets mass Z_r / sum Z (here 3/4 and 1/4 of 8 frames: 6 and 2 exactly with
    systematic resampling); equal pooling would give 4 and 4."""
    from fkc.systems import aldp_training_set_from_samples, load_md

    frames = load_md(md_file).x * 10.0
    a = _sample_file(tmp_path / "a.npz", frames[:4], np.zeros(4), log_z=np.log(3.0) + 5.0)
    b = _sample_file(tmp_path / "b.npz", frames[4:8], np.zeros(4), log_z=5.0)
    out = aldp_training_set_from_samples([a, b], tmp_path / "t.npz", pool="z")
    with np.load(out) as f:
        x, meta = f["x"], json.loads(str(f["metadata"]))
    assert [s["kept"] for s in meta["samples"]] == [6, 2]
    assert [s["run_weight"] for s in meta["samples"]] == pytest.approx([0.75, 0.25])
    assert meta["effective_runs"] == pytest.approx(1 / (0.75**2 + 0.25**2))
    from_a = [int(np.all(x == frames[k].astype(np.float32), axis=(1, 2)).sum()) for k in range(4)]
    assert sorted(from_a) == [1, 1, 2, 2]  # 1.5 copies each: floor or ceil
    with np.load(aldp_training_set_from_samples([a, b], tmp_path / "e.npz")) as f:  # default
        assert [s["kept"] for s in json.loads(str(f["metadata"]))["samples"]] == [4, 4]
    assert main(["training-set-from-samples", str(a), str(b), "--out", str(tmp_path / "c.npz"),
                 "--pool", "z"]) == 0  # fmt: skip
    assert "effective runs 1.60 of 2" in capsys.readouterr().out
    # Z-pooling needs FKC runs of one setup
    c = _sample_file(tmp_path / "c.npz", frames[:2], np.zeros(2), model="other")
    with pytest.raises(ValueError, match="one model, beta, noise and step count"):
        aldp_training_set_from_samples([a, c], tmp_path / "t2.npz", pool="z")
    u = _sample_file(tmp_path / "u.npz", frames[:2], np.zeros(2), correct=False)
    with pytest.raises(ValueError, match="pool='z' needs FKC runs .*correct=False"):
        aldp_training_set_from_samples([u], tmp_path / "t2.npz", pool="z")
    with pytest.raises(ValueError, match="pool must be 'z' or 'equal', got 'mean'"):
        aldp_training_set_from_samples([a], tmp_path / "t2.npz", pool="mean")


def test_training_set_from_samples_errors(tmp_path, md_file):
    from fkc.systems import aldp_training_set_from_samples, load_md

    frames = load_md(md_file).x * 10.0
    a = _sample_file(tmp_path / "a.npz", frames[:2], np.zeros(2))
    with pytest.raises(ValueError, match="at least one sample file"):
        aldp_training_set_from_samples([], tmp_path / "t.npz")
    c = _sample_file(tmp_path / "c.npz", frames[:2], np.zeros(2), temperature=450.0)
    with pytest.raises(ValueError, match="different temperatures"):
        aldp_training_set_from_samples([a, c], tmp_path / "t.npz")
    d = _sample_file(tmp_path / "d.npz", frames[:2, :13], np.zeros(2), system="lj13")
    with pytest.raises(ValueError, match="system 'lj13', not 'aldp'"):
        aldp_training_set_from_samples([d], tmp_path / "t.npz")
    bad = frames[:2].copy()
    bad[1, 3, 0] = np.nan
    e = _sample_file(tmp_path / "e.npz", bad, np.zeros(2))
    with pytest.raises(ValueError, match="non-finite coordinates in 1 of 2"):
        aldp_training_set_from_samples([e], tmp_path / "t.npz")
    f = _sample_file(tmp_path / "f.npz", frames[:2], np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="log_weights must be finite"):
        aldp_training_set_from_samples([f], tmp_path / "t.npz")
    assert not (tmp_path / "t.npz").exists()
