"""fkc.conformers: featurisation, MMFF94 energies, the replica-exchange HMC reference sampler,
generate() and the `fkc conformers` / `fkc evaluate-conformers` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem

from fkc.cli import main
from fkc.conformers.featurize import ATOM_FEATURE_DIM, N_ATOM_TYPES, atom_arrays, mol_graph
from fkc.conformers.mmff import KB_KCAL, MMFFEnergy
from fkc.conformers.reference import sample_boltzmann, temperature_ladder
from fkc.datasets import embed_etkdg, mol_from_smiles

ALANINE_L = "C[C@H](N)C(=O)O"
ALANINE_D = "C[C@@H](N)C(=O)O"


# ---- featurisation --------------------------------------------------------------------------
def test_graph_shapes_and_bonds_both_directions():
    mol = mol_from_smiles("CC(=O)Nc1ccc(O)cc1")
    g = mol_graph(mol)
    n = mol.GetNumAtoms()
    assert g.atom_types.shape == (n,) and g.atom_features.shape == (n, ATOM_FEATURE_DIM)
    assert int(g.atom_types.max()) < N_ATOM_TYPES
    assert g.edge_index.shape == (2, 2 * mol.GetNumBonds())
    pairs = {tuple(p) for p in g.edge_index.T.tolist()}
    assert all((j, i) in pairs for i, j in pairs)
    assert set(g.bond_types.tolist()) == {0, 1, 3}  # single, double, aromatic


def test_cip_features_tell_enantiomers_apart():
    _, fl = atom_arrays(mol_from_smiles(ALANINE_L))
    _, fd = atom_arrays(mol_from_smiles(ALANINE_D))
    assert not np.array_equal(fl, fd)
    cip = slice(ATOM_FEATURE_DIM - 3, ATOM_FEATURE_DIM - 1)
    assert fl[:, cip].sum() == fd[:, cip].sum() == 1  # one R or S centre each
    assert np.array_equal(fl[:, cip][:, ::-1], fd[:, cip])
    # a molecule without stereocentres has no R/S flags
    _, fe = atom_arrays(mol_from_smiles("CCO"))
    assert fe[:, cip].sum() == 0


def test_featurisation_rejects_bad_input():
    with pytest.raises(ValueError, match="implicit hydrogens"):
        atom_arrays(Chem.MolFromSmiles("CCO"))
    with pytest.raises(ValueError, match="Si"):
        atom_arrays(Chem.AddHs(Chem.MolFromSmiles("C[Si](C)(C)C")))
    with pytest.raises(ValueError, match=r"\+2"):
        atom_arrays(Chem.AddHs(Chem.MolFromSmiles("[NH2+2]C")))


# ---- MMFF -----------------------------------------------------------------------------------
def test_mmff_energy_and_gradient():
    from rdkit.Chem import rdForceFieldHelpers as fh

    mol = embed_etkdg(mol_from_smiles("CC(=O)Nc1ccc(O)cc1"), 1, seed=0)
    x = mol.GetConformer().GetPositions()
    en = MMFFEnergy(mol)
    ff = fh.MMFFGetMoleculeForceField(mol, fh.MMFFGetMoleculeProperties(mol))
    assert en.energy(x) == pytest.approx(ff.CalcEnergy(), rel=1e-10)
    e, g = en.energy_grad(x)
    rng = np.random.default_rng(0)
    d = rng.standard_normal(x.shape) * 1e-5
    fd = (en.energy(x + d) - en.energy(x - d)) / 2
    assert fd == pytest.approx(float((g * d).sum()), rel=1e-4)
    xs = np.stack([x, x + 0.01, np.full_like(x, np.nan)])
    es = en.energies(xs)
    assert es[0] == pytest.approx(e) and np.isnan(es[2])
    xm, em = en.minimize(x)
    assert em < e and en.energy(xm) == pytest.approx(em, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(20, 3\)"):
        en.energy(x[:5])


# ---- reference sampler ----------------------------------------------------------------------
def _equipartition_ratio(ens, mol) -> float:
    """<E - E_min> / ((3N - 6) k T / 2): 1 for a harmonic molecule (low T)."""
    en = MMFFEnergy(mol)
    e_min = min(en.minimize(x)[1] for x in ens.x[:3])
    n_dof = 3 * mol.GetNumAtoms() - 6
    return float((ens.energies - e_min).mean() / (0.5 * n_dof * KB_KCAL * ens.temperature))


@pytest.mark.parametrize(("n_replicas", "tol"), [(1, 0.12), (3, 0.06)])
def test_hmc_samples_equipartition_at_low_temperature(n_replicas, tol):
    """Exact reference: near its minimum (T = 20 K) methane is harmonic, so the mean potential
    energy above the minimum is (3N - 6) kT / 2 = 4.5 kT. Over 20 seeds the ratio had mean
    0.991 / 1.006 and sd 0.033 / 0.015 (1 / 3 replicas); the tolerances are ~4 sd, while a
    sampler at a temperature wrong by 20 % is off by 0.2."""
    mol = mol_from_smiles("C")
    ens = sample_boltzmann(mol, 20.0, 4000, seed=1, n_replicas=n_replicas, t_max=60.0,
                           n_burn=300, thin=2)
    assert ens.x.shape == (4000, 5, 3)
    assert np.abs(ens.x.mean(axis=1)).max() < 1e-9
    assert abs(_equipartition_ratio(ens, mol) - 1.0) < tol
    assert 0.7 < ens.accept.min() < 0.99
    if n_replicas > 1:
        assert ens.swap_accept.min() > 0.05 and ens.round_trips > 0


def test_hmc_is_reproducible_and_validates():
    mol = mol_from_smiles("CCO")
    a = sample_boltzmann(mol, 300.0, 20, seed=3, n_replicas=2, n_burn=20)
    b = sample_boltzmann(mol, 300.0, 20, seed=3, n_replicas=2, n_burn=20)
    np.testing.assert_array_equal(a.x, b.x)
    c = sample_boltzmann(mol, 300.0, 20, seed=4, n_replicas=2, n_burn=20)
    assert not np.array_equal(a.x, c.x)
    with pytest.raises(ValueError, match="temperature"):
        temperature_ladder(-1.0, 10.0, 3)
    with pytest.raises(ValueError, match="t_max"):
        temperature_ladder(300.0, 200.0, 3)
    np.testing.assert_allclose(temperature_ladder(300, 1200, 3), [300, 600, 1200])


def _butane_dihedrals(x: np.ndarray) -> np.ndarray:
    from rdkit.Chem import rdMolTransforms

    m = embed_etkdg(mol_from_smiles("CCCC"), 1, seed=0)
    conf = m.GetConformer()
    out = []
    for xi in x:
        for i, p in enumerate(xi):
            conf.SetAtomPosition(i, p.tolist())
        out.append(rdMolTransforms.GetDihedralDeg(conf, 0, 1, 2, 3))
    return np.array(out)


def test_replica_exchange_crosses_the_butane_barrier():
    """Butane at 300 K: the C-C-C-C torsion barrier (3.3 kcal/mol) is crossed about once per
    few hundred ps, so a single chain started in anti stays there for 3000 moves, while replica
    exchange up to 1000 K visits anti and both gauche basins. MMFF94's anti-gauche gap is 0.78
    kcal/mol (harmonic estimate of the anti fraction 0.65; long runs of this sampler gave
    0.60-0.70)."""
    mol = mol_from_smiles("CCCC")
    kw = dict(n_burn=200, thin=5, seed=0)
    pt = _butane_dihedrals(sample_boltzmann(mol, 300.0, 600, n_replicas=6, t_max=1000.0,
                                            **kw).x)
    single = _butane_dihedrals(sample_boltzmann(mol, 300.0, 600, n_replicas=1, **kw).x)
    anti = np.abs(pt) > 120
    assert 0.4 < anti.mean() < 0.95
    assert (pt[~anti] > 0).any() and (pt[~anti] < 0).any()  # g+ and g-
    assert (np.abs(single) > 120).mean() > 0.99


# ---- generate and the CLI -------------------------------------------------------------------
def test_generate_returns_weighted_conformers(tiny_conformer_model):
    from fkc.conformers import generate
    from fkc.conformers.generate import conformer_arrays

    out = generate("CC(=O)Nc1ccc(O)cc1", 8, temperature=250.0, model=tiny_conformer_model,
                   n_steps=6, seed=1, method="sde")
    assert out.GetNumConformers() == 8 and out.GetNumAtoms() == 20
    a = conformer_arrays(out)
    assert a["x"].shape == (8, 20, 3)
    assert np.logaddexp.reduce(a["log_weight"]) == pytest.approx(0.0, abs=1e-9)
    assert out.GetDoubleProp("fkc_beta") == pytest.approx(2.0)
    assert out.GetDoubleProp("fkc_score_evaluations") == 8 * 8
    again = generate("CC(=O)Nc1ccc(O)cc1", 8, temperature=250.0, model=tiny_conformer_model,
                     n_steps=6, seed=1, method="sde")
    np.testing.assert_array_equal(conformer_arrays(again)["x"], a["x"])
    unc = generate("CC(=O)Nc1ccc(O)cc1", 8, temperature=250.0, model=tiny_conformer_model,
                   n_steps=6, seed=1, correct=False, method="sde")
    assert not unc.GetBoolProp("fkc_corrected")
    assert np.allclose(conformer_arrays(unc)["log_weight"], -np.log(8))
    # Langevin moves (ULA for a score network): 2 per step at the 6 step times
    moved = generate("CC(=O)Nc1ccc(O)cc1", 8, temperature=250.0, model=tiny_conformer_model,
                     n_steps=6, seed=1, mcmc_steps=2, method="sde")
    assert moved.GetDoubleProp("fkc_score_evaluations") == 8 * (8 + 12)
    assert moved.GetDoubleProp("fkc_mcmc_steps") == 2
    assert not np.array_equal(conformer_arrays(moved)["x"], a["x"])


def test_generate_with_more_particles_than_conformers(tiny_conformer_model):
    from fkc.conformers import generate
    from fkc.conformers.generate import conformer_arrays

    kw = dict(temperature=250.0, model=tiny_conformer_model, n_steps=6, seed=3, method="sde")
    full = generate("CC(=O)Nc1ccc(O)cc1", 24, **kw)
    out = generate("CC(=O)Nc1ccc(O)cc1", 8, n_particles=24, **kw)
    assert out.GetNumConformers() == 8 and out.GetDoubleProp("fkc_n_particles") == 24
    assert out.GetDoubleProp("fkc_score_evaluations") == 24 * 8
    a, f = conformer_arrays(out), conformer_arrays(full)
    assert np.allclose(a["log_weight"], -np.log(8))
    # the kept conformers are particles of the same 24-particle run (same seed), chosen by
    # systematic resampling: each appears at most ceil(8 W_i) times, and distinct ones are counted
    x_full = f["x"].reshape(24, -1)
    idx = [int(np.flatnonzero(np.abs(x_full - xi.ravel()).max(axis=1) < 1e-6)[0])
           for xi in a["x"]]
    w = np.exp(f["log_weight"])
    counts = np.bincount(idx, minlength=24)
    assert np.all(counts <= np.ceil(8 * w) + 1e-9) and np.all(counts >= np.floor(8 * w) - 1e-9)
    assert out.GetDoubleProp("fkc_n_distinct") == len(set(idx))
    with pytest.raises(ValueError, match="n_particles must be an integer >= n = 8, got 4"):
        generate("CCO", 8, n_particles=4, model=tiny_conformer_model)


def test_generate_rejects_bad_input(tiny_conformer_model, tmp_path):
    from fkc.conformers import generate

    with pytest.raises(ValueError, match="C1CC"):
        generate("C1CC", 4, model=tiny_conformer_model)
    with pytest.raises(ValueError, match="n must be"):
        generate("CCO", 0, model=tiny_conformer_model)
    with pytest.raises(ValueError, match="temperature"):
        generate("CCO", 4, temperature=-5.0, model=tiny_conformer_model)
    with pytest.raises(ValueError, match="Si"):
        generate("C[Si](C)(C)C", 4, model=tiny_conformer_model)
    with pytest.raises(ValueError, match="does not exist"):
        generate("CCO", 4, model=tmp_path / "nothing")


def test_cli_conformers_then_evaluate(tiny_conformer_model, tmp_path, capsys):
    from fkc.conformers.evaluate import read_conformer_sdf, write_conformer_sdf

    ref = embed_etkdg(mol_from_smiles(ALANINE_L), 3, seed=0)
    ref_path = tmp_path / "ref.sdf"
    write_conformer_sdf(ref_path, {"ala": ref})
    out = tmp_path / "gen.sdf"
    assert main(["conformers", "--from-sdf", str(ref_path), "--model", str(tiny_conformer_model),
                 "--steps", "4", "--out", str(out), "--no-progress"]) == 0
    gen, props = read_conformer_sdf(out)
    assert list(gen) == ["ala"] and gen["ala"].GetNumConformers() == 6  # 2K
    assert "(tempering)" in capsys.readouterr().out  # the default method
    over = tmp_path / "over.sdf"
    assert main(["conformers", "--from-sdf", str(ref_path), "--model", str(tiny_conformer_model),
                 "--steps", "4", "--method", "sde", "--oversample", "3", "--out", str(over),
                 "--no-progress"]) == 0
    g_over, p_over = read_conformer_sdf(over)
    assert g_over["ala"].GetNumConformers() == 6
    assert np.allclose(p_over["ala"]["log_weight"], -np.log(6))
    with pytest.raises(ValueError, match="--oversample 3 is for --method sde"):
        main(["conformers", "--smiles", "CCO", "--n", "2", "--model", str(tiny_conformer_model),
              "--oversample", "3", "--out", str(over), "--no-progress"])
    with pytest.raises(ValueError, match="--oversample must be an integer >= 1, got 0"):
        main(["conformers", "--smiles", "CCO", "--n", "2", "--model", str(tiny_conformer_model),
              "--oversample", "0", "--out", str(over), "--no-progress"])
    assert set(props["ala"]) == {"log_weight", "energy", "stereo_ok"}
    js = tmp_path / "m.json"
    assert main(["evaluate-conformers", str(out), "--reference", str(ref_path),
                 "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["rows"][0]["n_generated"] == 6 and res["rows"][0]["n_reference"] == 3
    # evaluating the references against themselves: full coverage, zero matching error
    assert main(["evaluate-conformers", str(ref_path), "--reference", str(ref_path),
                 "--json", str(js)]) == 0
    row = json.loads(js.read_text())["rows"][0]
    assert row["cov_r@0.75"] == 1.0 and row["mat_r"] < 1e-3 and row["failure_fraction"] == 0


def test_stereo_fix_mirrors_wrong_handed_conformers_only():
    from fkc.conformers.generate import stereo_fix

    mol = mol_from_smiles(ALANINE_L)
    emb = embed_etkdg(mol, 6, seed=0)
    x = np.stack([c.GetPositions() for c in emb.GetConformers()])
    x[1::2] *= -1  # three D conformers
    assert stereo_fix(mol, x.copy(), apply=False) == (3, 0)
    y = x.copy()
    assert stereo_fix(mol, y, apply=True) == (3, 3)
    np.testing.assert_array_equal(y[0::2], x[0::2])
    np.testing.assert_array_equal(y[1::2], -x[1::2])
    assert stereo_fix(mol, y, apply=False) == (6, 0)
    # a conformer with a planar (unassignable) centre cannot be fixed by mirroring
    z = x[:1].copy()
    z[0, :, 2] = 0.0
    assert stereo_fix(mol, z, apply=True) == (0, 0)
    # an achiral molecule: every finite conformer is fine
    e = embed_etkdg(mol_from_smiles("CCO"), 2, seed=0)
    xe = np.stack([c.GetPositions() for c in e.GetConformers()])
    assert stereo_fix(mol_from_smiles("CCO"), xe, apply=True) == (2, 0)
