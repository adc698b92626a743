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
    assert main(["demo", "--particles", "300", "--steps", "40", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "q1^2 (anneal, beta=2)" in text and "uncorrected" in text and "FKC" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


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
