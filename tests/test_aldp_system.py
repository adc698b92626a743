"""Alanine dipeptide through OpenMM: energies, forces, batching, errors; the MD data recipe."""

import hashlib
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")
mdtraj = pytest.importorskip("mdtraj")
if importlib.util.find_spec("openmmtools") is None:  # its data files hold the structure
    pytest.skip("openmmtools is not installed", allow_module_level=True)

import openmm.app as app  # noqa: E402
import openmm.unit as unit  # noqa: E402

from fkc.systems import (  # noqa: E402
    MOLAR_GAS_CONSTANT,
    AlanineDipeptide,
    MDConfig,
    load_md,
    run_md,
)
from fkc.systems._aldp import (  # noqa: E402
    PHI_INDICES,
    PSI_INDICES,
    import_openmm,
    openmmtools_aldp_pdb,
)
from fkc.systems._md import timing_path  # noqa: E402
from fkc.systems.aldp_md import main, phi_crossings  # noqa: E402

TINY = MDConfig(temperature=300.0, n_frames=12, save_interval=50, equilibration_steps=100,
                chunk_frames=5, seed=4)  # fmt: skip


@pytest.fixture(scope="module")
def system():
    return AlanineDipeptide()


@pytest.fixture(scope="module")
def conformations(system):
    """Five perturbed copies of the reference structure, (5, 22, 3) nm float64."""
    rng = np.random.default_rng(0)
    return system.reference_positions + 0.01 * rng.standard_normal((5, 22, 3))


def _direct_openmm_energy(x: np.ndarray, files: tuple[str, ...]) -> float:
    """One conformation through a freshly built OpenMM system (independent of fkc)."""
    pdb = app.PDBFile(str(openmmtools_aldp_pdb()))
    s = app.ForceField(*files).createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                            constraints=None)  # fmt: skip
    ctx = openmm.Context(s, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))  # fmt: skip
    ctx.setPositions(unit.Quantity(x, unit.nanometer))
    return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


# ------------------------------------------------------------------ the system
def test_description_and_topology(system):
    assert system.n_atoms == 22 and system.event_shape == (22, 3)
    assert system.topology.n_atoms == 22 and system.topology.n_residues == 3
    assert system.bonds.shape == (21, 2) and (system.bonds[:, 0] < system.bonds[:, 1]).all()
    assert system.bond_lengths.shape == (21,) and (system.bond_lengths > 0.09).all()
    assert system.heavy_atom_mask.sum() == 10
    assert "".join(system.elements).count("H") == 12
    assert system.masses.sum() == pytest.approx(144.17, abs=0.01)  # C6 H12 N2 O2
    assert "ff99SB" in system.description and "OBC" in system.description
    traj = system.to_mdtraj(system.reference_positions)
    assert traj.n_frames == 1
    assert mdtraj.compute_phi(traj)[0].tolist() == [list(PHI_INDICES)]
    assert mdtraj.compute_psi(traj)[0].tolist() == [list(PSI_INDICES)]


@pytest.mark.parametrize("solvent", ["obc", "vacuum"])
def test_energy_matches_direct_openmm(solvent, conformations):
    s = AlanineDipeptide(solvent=solvent)
    e = s.energy(conformations)
    files = ("amber99sb.xml", "amber99_obc.xml") if solvent == "obc" else ("amber99sb.xml",)
    direct = [_direct_openmm_energy(x, files) for x in conformations[:2]]
    np.testing.assert_allclose(e[:2], direct, rtol=1e-12, atol=1e-9)


def test_forces_match_finite_differences(system, conformations):
    x = conformations[0]
    f = system.forces(x)
    rng = np.random.default_rng(1)
    h = 1e-5
    for _ in range(3):
        v = rng.standard_normal((22, 3))
        v /= np.linalg.norm(v)
        fd = (system.energy(x + h * v) - system.energy(x - h * v)) / (2 * h)
        assert fd == pytest.approx(-(f * v).sum(), rel=1e-5, abs=1e-3)
    e, f2 = system.energy_and_forces(x)
    assert e == system.energy(x) and np.array_equal(f2, f)


def test_batched_equals_single_and_follows_input(system, conformations):
    batch = system.energy(conformations)
    assert batch.shape == (5,) and batch.dtype == np.float64
    single = np.array([system.energy(x) for x in conformations])
    np.testing.assert_array_equal(batch, single)
    assert system.energy(conformations.reshape(5, 1, 22, 3)).shape == (5, 1)
    assert system.forces(conformations).shape == (5, 22, 3)
    xt = torch.from_numpy(conformations)
    et = system.energy(xt.float())
    assert isinstance(et, torch.Tensor) and et.dtype == torch.float64 and et.shape == (5,)
    np.testing.assert_allclose(et.numpy(), batch, atol=0.05)  # float32 input rounding
    np.testing.assert_allclose(system.energy(xt).numpy(), batch, rtol=1e-14)
    ft = system.forces(xt)
    assert isinstance(ft, torch.Tensor) and ft.shape == (5, 22, 3)


def test_reduced_energy(system, conformations):
    e = system.energy(conformations)
    np.testing.assert_allclose(system.reduced_energy(conformations, 300.0),
                               e / (MOLAR_GAS_CONSTANT * 300.0))  # fmt: skip
    with pytest.raises(ValueError, match=r"temperature .* got -1"):
        system.reduced_energy(conformations, -1)


def test_bad_input_errors(system, conformations):
    with pytest.raises(ValueError, match=r"\(\.\.\., 22, 3\).*got \(5, 21, 3\)"):
        system.energy(conformations[:, :21])
    x = conformations.copy()
    x[3, 7, 1] = np.nan
    x[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 of 5 samples .*indices: 1, 3\)"):
        system.energy(x)
    with pytest.raises(ValueError, match="solvent .* got 'water'"):
        AlanineDipeptide(solvent="water")
    with pytest.raises(ValueError, match="platform .* got 'GPU'"):
        AlanineDipeptide(platform="GPU")


def test_missing_openmm_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "openmm", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[md\]'"):
        import_openmm()


def test_pickle_rebuilds_context(system, conformations):
    import pickle

    system.energy(conformations[:1])  # context exists
    clone = pickle.loads(pickle.dumps(system))
    np.testing.assert_array_equal(clone.energy(conformations), system.energy(conformations))


# ------------------------------------------------------------------ MD recipe
def test_md_config_validation():
    with pytest.raises(ValueError, match="n_frames .* got 0"):
        MDConfig(temperature=300.0, n_frames=0)
    with pytest.raises(ValueError, match="timestep_fs .* got 4"):
        MDConfig(temperature=300.0, n_frames=1, timestep_fs=4.0)
    with pytest.raises(ValueError, match="temperature .* got -5"):
        MDConfig(temperature=-5.0, n_frames=1)
    assert MDConfig(temperature=300.0, n_frames=1000).length_ns == pytest.approx(1.0)


def test_run_md_writes_loadable_file(tmp_path, system):
    d = run_md(TINY, tmp_path / "a.npz", progress=False)
    assert d.x.shape == (12, 22, 3) and d.x.dtype == np.float32
    assert d.energy.shape == d.kinetic_energy.shape == d.time_ps.shape == (12,)
    np.testing.assert_allclose(d.time_ps, 0.05 * np.arange(1, 13))
    assert d.temperature == 300.0 and d.config == TINY and d.length_ns == pytest.approx(6e-4)
    assert d.metadata["system"]["force_field_files"] == ["amber99sb.xml", "amber99_obc.xml"]
    # stored energies are those of the double-precision positions: float32 rounding only
    np.testing.assert_allclose(system.energy(d.x), d.energy, atol=0.05)
    traj = d.to_mdtraj()
    assert traj.n_frames == 12 and traj.n_atoms == 22
    top = mdtraj.load(str(tmp_path / "aldp.pdb"))
    assert top.n_atoms == 22
    assert len(json.loads(timing_path(tmp_path / "a.npz").read_text())) == 3  # 5 + 5 + 2 frames


def test_run_md_resume_is_bit_identical(tmp_path):
    full = run_md(TINY, tmp_path / "full.npz", progress=False)
    run_md(MDConfig(**{**TINY.__dict__, "n_frames": 7}), tmp_path / "part.npz", progress=False)
    resumed = run_md(TINY, tmp_path / "part.npz", progress=False)
    np.testing.assert_array_equal(resumed.x, full.x)
    np.testing.assert_array_equal(resumed.energy, full.energy)
    assert resumed.metadata["resumes"] == [{"frame": 7, "mode": "checkpoint", "platform": "Reference"}]  # fmt: skip
    again = run_md(TINY, tmp_path / "again.npz", progress=False)  # same config -> same bytes
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("full.npz", "again.npz")]  # fmt: skip
    assert digest[0] == digest[1] and again.n_frames == 12
    assert run_md(TINY, tmp_path / "full.npz", progress=False).n_frames == 12  # nothing to do


def test_run_md_resume_on_other_platform_warns(tmp_path):
    if "CPU" not in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]:  # fmt: skip
        pytest.skip("no OpenMM CPU platform")
    run_md(MDConfig(**{**TINY.__dict__, "n_frames": 5}), tmp_path / "a.npz", progress=False)
    with pytest.warns(UserWarning, match="cannot load the OpenMM checkpoint"):
        d = run_md(MDConfig(**{**TINY.__dict__, "n_frames": 8, "platform": "CPU"}), tmp_path / "a.npz",
                   progress=False)  # fmt: skip
    assert d.n_frames == 8 and d.metadata["resumes"][0]["mode"] == "state_xml"
    assert np.isfinite(d.energy).all() and d.energy[5:].std() > 0


def test_run_md_refuses_corrupt_or_mismatched_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="bad.npz is not a readable alanine-dipeptide MD file"):
        run_md(TINY, bad, progress=False)
    run_md(MDConfig(**{**TINY.__dict__, "n_frames": 5}), tmp_path / "ok.npz", progress=False)
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz is not a readable"):
        load_md(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match=r"different config .*'temperature': \(300.0, 310.0\)"):
        run_md(MDConfig(**{**TINY.__dict__, "temperature": 310.0}), tmp_path / "ok.npz",
               progress=False)  # fmt: skip
    np.savez(tmp_path / "other.npz", x=np.zeros((3, 22, 3)))
    with pytest.raises(ValueError, match="missing arrays"):
        load_md(tmp_path / "other.npz")


def test_cli_run_check_checksums(tmp_path, capsys):
    out = tmp_path / "T300.npz"
    args = ["run", "--temperature", "300", "--ns", "0.0006", "--save-every-ps", "0.05",
            "--equilibration-ps", "0.1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert load_md(out).n_frames == 12
    assert main(["check", str(out), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["files"][0]["n_frames"] == 12 and report["files"][0]["chirality_L"] == 1.0
    assert main(["checksums", str(tmp_path)]) == 0
    assert main(["checksums", str(tmp_path), "--verify"]) == 0
    assert main(["run", "--temperature", "310", "--ns", "0.0006", "--save-every-ps", "0.05",
                 "--out", str(out), "--no-progress"]) == 2  # fmt: skip
    assert "different config" in capsys.readouterr().err
    out.write_bytes(b"garbage")
    assert main(["checksums", str(tmp_path), "--verify"]) == 1
    assert main(args) == 2
    assert "is not a readable" in capsys.readouterr().err


def test_cli_recipe_quick(tmp_path, capsys):
    assert main(["recipe", "--out", str(tmp_path), "--quick", "--no-progress"]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"T300_s0.npz", "T300_s1.npz", "T800_s2.npz", "T800_s3.npz", "aldp.pdb", "SHA256SUMS",
            "CONVERGENCE.md", "convergence.json"} <= names  # fmt: skip
    assert "pooled beta" in (tmp_path / "CONVERGENCE.md").read_text()
    assert "T300_s0.npz" in capsys.readouterr().out


def test_phi_crossings():
    # R core -> gap -> R core -> L core -> gap -> L core -> R core: two crossings
    assert phi_crossings(np.array([-60, 0, -70, 60, 110, 70, -60.0])) == 2
    assert phi_crossings(np.array([0.0, 10.0])) == 0
