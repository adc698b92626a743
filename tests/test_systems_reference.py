"""The reference-set pipeline: files, metadata, splits, checksums, reproducibility, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fkc.systems import DoubleWell, LennardJones
from fkc.systems.reference import (
    DEFAULT_SPECS,
    ReferenceSpec,
    file_names,
    generate_reference,
    load_reference,
    main,
    verify_checksums,
)

TINY = ReferenceSpec(
    system="dw4",
    temperatures=(1.0, 2.0),
    ladder=(1.0, 1.4, 2.0),
    n_samples=60,
    train_temperatures=(1.0,),
    n_train=80,
    n_runs=2,
    n_burn_in=300,
    n_pilot=2_000,
    thin_factor=1.0,
    split_gap=2,
    seed=5,
)


def test_generate_reference_files(tmp_path):
    diag = generate_reference(TINY, tmp_path / "a", log=None)
    names = file_names(TINY)
    assert set(names) == {"T1.0.npz", "T2.0.npz", "T1.0_train.npz"}
    assert verify_checksums(tmp_path / "a") == []
    system = DoubleWell()
    for name, (t, split) in names.items():
        ref = load_reference(tmp_path / "a" / name)
        n = TINY.n_train if split == "train" else TINY.n_samples
        assert ref.x.shape == (n, 4, 2) and ref.x.dtype == np.float32
        assert ref.energy.shape == (n,) and ref.temperature == t and ref.split == split
        assert np.abs(ref.x.mean(axis=1)).max() < 1e-5
        e = system.energy(torch.from_numpy(ref.x.astype(np.float64))).numpy()
        np.testing.assert_allclose(ref.energy, e, rtol=1e-12)
        assert ref.metadata["system_params"]["pair_convention"] == "unordered"
        assert ref.system().temperature == t
    train = load_reference(tmp_path / "a" / "T1.0_train.npz").x
    test = load_reference(tmp_path / "a" / "T1.0.npz").x
    assert not (train[:, None] == test[None]).all(axis=(2, 3)).any()  # disjoint splits
    per_t = diag["per_temperature"]["T1.0"]
    for key in ("rhat", "tau_sweeps", "tau_thinned", "ess_trace", "max_abs_z_run_vs_rest"):
        assert np.isfinite(per_t[key])
    readme = (tmp_path / "a" / "README.md").read_text()
    assert "R-hat" in readme and "T1.0_train.npz" in readme
    assert json.loads((tmp_path / "a" / "diagnostics.json").read_text())["spec"]["seed"] == 5
    # same spec and seed: bit-identical data files
    generate_reference(TINY, tmp_path / "b", log=None)
    assert (tmp_path / "a" / "SHA256SUMS").read_text() == (
        tmp_path / "b" / "SHA256SUMS"
    ).read_text()
    # corruption is detected
    (tmp_path / "b" / "T2.0.npz").write_bytes(b"junk")
    assert verify_checksums(tmp_path / "b") == ["T2.0.npz"]
    assert main(["--system", "dw4", "--out", str(tmp_path / "b"), "--verify"]) == 1
    assert main(["--system", "dw4", "--out", str(tmp_path / "a"), "--verify"]) == 0


def test_spec_validation():
    with pytest.raises(ValueError, match="target temperature 0.9 is not in the ladder"):
        ReferenceSpec(
            system="dw4",
            temperatures=(0.9,),
            ladder=(1.0, 2.0),
            n_samples=1,
            n_runs=2,
            n_burn_in=0,
            n_pilot=100,
        )
    with pytest.raises(ValueError, match="n_runs must be >= 2"):
        ReferenceSpec(
            system="dw4",
            temperatures=(1.0,),
            ladder=(1.0, 2.0),
            n_samples=1,
            n_runs=1,
            n_burn_in=0,
            n_pilot=100,
        )
    lj = DEFAULT_SPECS["lj13"]
    assert lj.temperatures == (2.0, 1.5, 1.0, 0.8) and lj.train_temperatures == (2.0,)
    assert lj.make_system().pair_convention == "ordered"


LJ13_DIR = Path(__file__).resolve().parents[1] / "datasets" / "lj13"


@pytest.mark.skipif(not (LJ13_DIR / "SHA256SUMS").exists(), reason="datasets/lj13 not present")
def test_shipped_lj13_reference_sets():
    assert verify_checksums(LJ13_DIR) == []
    system = LennardJones()
    sets = {}
    for name, (t, split) in file_names(DEFAULT_SPECS["lj13"]).items():
        ref = load_reference(LJ13_DIR / name)
        n = 40_000 if split == "train" else 20_000
        assert ref.x.shape == (n, 13, 3) and ref.x.dtype == np.float32
        assert ref.temperature == t and ref.split == split
        assert ref.metadata["system_params"]["pair_convention"] == "ordered"
        assert ref.metadata["system_params"]["k"] == 1.0
        assert np.abs(ref.x.astype(np.float64).mean(axis=1)).max() < 1e-5
        e = system.energy(torch.from_numpy(ref.x[:2000].astype(np.float64))).numpy()
        np.testing.assert_allclose(ref.energy[:2000], e, rtol=1e-10, atol=1e-10)
        sets[name] = ref.energy
    # energies fall as T falls; train and held-out T = 2 sets agree (SE of the difference ~0.12)
    means = [sets[f"T{t}.npz"].mean() for t in ("2.0", "1.5", "1.0", "0.8")]
    assert all(a > b for a, b in zip(means, means[1:], strict=False))
    assert abs(sets["T2.0.npz"].mean() - sets["T2.0_train.npz"].mean()) < 0.6
