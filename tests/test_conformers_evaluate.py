"""Tests of fkc.conformers.evaluate: RMSD coverage/matching, energy W1, failures, SDF I/O."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign
from rdkit.Chem import rdForceFieldHelpers as ff_helpers
from scipy import stats

from fkc.conformers import evaluate as ev

IBUPROFEN = "CC(C)Cc1ccc(cc1)[C@H](C)C(=O)O"  # (S)-ibuprofen


def embed(smiles: str, n: int, seed: int = 7) -> Chem.Mol:
    """``smiles`` with explicit H and ``n`` ETKDGv3 conformers (fixed seed)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    ids = AllChem.EmbedMultipleConfs(mol, n, params)
    assert len(ids) == n
    return mol


def with_positions(mol: Chem.Mol, xyz: np.ndarray) -> Chem.Mol:
    """Copy of ``mol`` with one conformer at ``xyz (n_atoms, 3)``."""
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    conf = Chem.Conformer(out.GetNumAtoms())
    for i, p in enumerate(np.asarray(xyz, dtype=np.float64)):
        conf.SetAtomPosition(i, p.tolist())
    out.AddConformer(conf, assignId=True)
    return out


def add_positions(mol: Chem.Mol, xyz: np.ndarray) -> None:
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, p in enumerate(np.asarray(xyz, dtype=np.float64)):
        conf.SetAtomPosition(i, p.tolist())
    mol.AddConformer(conf, assignId=True)


@pytest.fixture(scope="module")
def butane():
    return embed("CCCC", 4)


@pytest.fixture(scope="module")
def ibuprofen():
    return embed(IBUPROFEN, 3)


# ---- RMSD matrix --------------------------------------------------------------------------------
def test_rmsd_matrix_self_zero_diagonal_symmetric_and_inputs_untouched(ibuprofen):
    before = ev.conformer_coordinates(ibuprofen)
    r = ev.rmsd_matrix(ibuprofen, ibuprofen)
    assert r.shape == (3, 3)
    assert np.all(np.abs(np.diag(r)) < 1e-3)
    np.testing.assert_allclose(r, r.T, atol=1e-4)
    assert r[0, 1] > 0.05  # distinct conformers
    np.testing.assert_array_equal(ev.conformer_coordinates(ibuprofen), before)
    # entry = GetBestRMS on heavy-atom copies
    heavy = Chem.RemoveHs(ibuprofen)
    probe = Chem.Mol(heavy)
    ids = [c.GetId() for c in heavy.GetConformers()]
    assert r[0, 2] == pytest.approx(rdMolAlign.GetBestRMS(probe, heavy, ids[2], ids[0]), abs=1e-6)


def test_rmsd_matrix_shape_and_order():
    ref, gen = embed("CCCCC", 2, seed=1), embed("CCCCC", 3, seed=2)
    r = ev.rmsd_matrix(ref, gen)
    assert r.shape == (2, 3)
    # column j is generated conformer j: a generated copy of reference conformer 1 put last
    add_positions(gen, ref.GetConformer(1).GetPositions())
    r2 = ev.rmsd_matrix(ref, gen)
    assert r2.shape == (2, 4) and r2[1, 3] < 1e-3 and r2[0, 3] > 1e-2
    np.testing.assert_allclose(r2[:, :3], r, atol=1e-9)


def test_rmsd_is_symmetry_aware_ring_flip_and_methyl_rotation():
    eb = embed("CCc1ccccc1", 1)
    # ethylbenzene: C0, C1, ring c2..c7; relabelling c3<->c7, c4<->c6 is a graph symmetry, but
    # no rigid motion maps it back (the ethyl sticks out of the ring plane)
    xyz = eb.GetConformer().GetPositions()
    perm = np.arange(eb.GetNumAtoms())
    perm[[3, 7, 4, 6]] = [7, 3, 6, 4]
    flipped = with_positions(eb, xyz[perm])
    heavy_ref, heavy_flip = Chem.RemoveHs(eb), Chem.RemoveHs(flipped)
    naive = rdMolAlign.AlignMol(Chem.Mol(heavy_flip), heavy_ref)  # fixed atom order
    assert naive > 0.2
    assert ev.rmsd_matrix(eb, flipped)[0, 0] < 1e-3
    # butane with hydrogens: a cyclic relabelling of one methyl's three H
    but = embed("CCCC", 1)
    xyz = but.GetConformer().GetPositions()
    hs = [n.GetIdx() for n in but.GetAtomWithIdx(0).GetNeighbors() if n.GetAtomicNum() == 1]
    perm = np.arange(but.GetNumAtoms())
    perm[hs] = np.roll(hs, 1)
    rotated = with_positions(but, xyz[perm])
    assert rdMolAlign.AlignMol(Chem.Mol(rotated), but) > 0.5
    assert ev.rmsd_matrix(but, rotated, heavy_atoms=False)[0, 0] < 1e-3


def test_rmsd_matrix_mismatched_molecules_name_smiles(butane):
    with pytest.raises(ValueError, match=r"CCCC.*CCCCC|CCCCC.*CCCC"):
        ev.rmsd_matrix(butane, embed("CCCCC", 1))
    with pytest.raises(ValueError, match=r"CCCC.*CC\(C\)C"):  # same atoms, other graph
        ev.rmsd_matrix(butane, embed("CC(C)C", 1))


def test_rmsd_matrix_bad_inputs(butane):
    with pytest.raises(ValueError, match="max_matches"):
        ev.rmsd_matrix(butane, butane, max_matches=0)
    empty = Chem.Mol(butane)
    empty.RemoveAllConformers()
    with pytest.raises(ValueError, match="no conformers"):
        ev.rmsd_matrix(butane, empty)
    bad = Chem.Mol(butane)
    bad.GetConformer(bad.GetConformers()[1].GetId()).SetAtomPosition(0, (math.nan, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"non-finite.*\[1\]"):
        ev.rmsd_matrix(butane, bad)
    with pytest.raises(TypeError, match="Chem.Mol"):
        ev.rmsd_matrix("CCCC", butane)


# ---- coverage / matching -------------------------------------------------------------------------
RMSD = np.array([[0.3, 0.9, 2.0], [1.1, 0.8, 0.6]])  # K = 2 reference, L = 3 generated


def test_coverage_matching_hand_computed():
    out = ev.coverage_matching(RMSD)
    # row minima [0.3, 0.6]; column minima [0.3, 0.8, 0.6]
    expected = {
        "cov_r@0.5": 0.5,
        "cov_r@0.75": 1.0,
        "cov_r@1": 1.0,
        "cov_r@1.25": 1.0,
        "mat_r": 0.45,
        "cov_p@0.5": 1 / 3,
        "cov_p@0.75": 2 / 3,
        "cov_p@1": 1.0,
        "cov_p@1.25": 1.0,
        "mat_p": 1.7 / 3,
    }
    assert list(out) == list(expected)
    for k, v in expected.items():
        assert out[k] == pytest.approx(v), k


def test_coverage_matching_failed_conformers_and_strict_threshold():
    out = ev.coverage_matching(RMSD, thresholds=(0.75, 0.8), n_generated=5)
    assert out["cov_p@0.75"] == pytest.approx(2 / 5)  # 2 failed conformers: not precise
    assert out["cov_p@0.8"] == pytest.approx(2 / 5)  # 0.8 is not < 0.8
    assert out["mat_p"] == pytest.approx(1.7 / 3)  # over the valid columns
    assert out["cov_r@0.75"] == 1.0
    none = ev.coverage_matching(np.zeros((2, 0)), n_generated=4)
    assert none["cov_r@0.75"] == 0.0 and none["cov_p@0.75"] == 0.0
    assert math.isnan(none["mat_r"]) and math.isnan(none["mat_p"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rmsd": np.zeros(3)}, "shape"),
        ({"rmsd": -RMSD}, ">= 0"),
        ({"rmsd": RMSD, "thresholds": (0.5, -1.0)}, "-1"),
        ({"rmsd": RMSD, "thresholds": (0.5, 0.5)}, "distinct"),
        ({"rmsd": RMSD, "n_generated": 2}, "n_generated"),
    ],
)
def test_coverage_matching_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ev.coverage_matching(**kwargs)


# ---- energies -------------------------------------------------------------------------------------
def test_energy_w1_matches_scipy_and_weights_matter():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=7), rng.normal(1.0, 2.0, size=11)
    assert ev.energy_w1(a, b) == pytest.approx(stats.wasserstein_distance(a, b))
    assert ev.energy_w1([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.0)
    # all generated mass at 0 vs uniform on {0, 1}: W1 = 0.5
    assert ev.energy_w1([0.0, 1.0], [0.0, 1.0], gen_weights=[1.0, 0.0]) == pytest.approx(0.5)
    wa, wb = rng.uniform(size=7), rng.uniform(size=11)
    got = ev.energy_w1(a, b, wa, wb)
    assert got == pytest.approx(stats.wasserstein_distance(a, b, wa, wb))
    assert abs(got - ev.energy_w1(a, b)) > 1e-3


def test_energy_w1_bad_inputs():
    with pytest.raises(ValueError, match="2 non-finite"):
        ev.energy_w1([0.0, np.nan, np.inf], [1.0])
    with pytest.raises(ValueError, match="shape"):
        ev.energy_w1([0.0, 1.0], [1.0], gen_weights=[1.0])
    with pytest.raises(ValueError, match="gen_weights"):
        ev.energy_w1([0.0, 1.0], [1.0], gen_weights=[-1.0, 2.0])


def test_mmff_energies(ibuprofen):
    e = ev.mmff_energies(ibuprofen)
    props = ff_helpers.MMFFGetMoleculeProperties(ibuprofen)
    direct = [
        ff_helpers.MMFFGetMoleculeForceField(ibuprofen, props, confId=c.GetId()).CalcEnergy()
        for c in ibuprofen.GetConformers()
    ]
    assert e.shape == (3,)
    np.testing.assert_allclose(e, direct, rtol=1e-10)
    assert np.ptp(e) > 0
    with pytest.raises(ev.MMFFUnavailableError, match=r"OB\(O\)c1ccccc1"):
        ev.mmff_energies(embed("OB(O)c1ccccc1", 1))
    with pytest.raises(ValueError, match="implicit hydrogen"):
        ev.mmff_energies(Chem.RemoveHs(ibuprofen))


# ---- failures -------------------------------------------------------------------------------------
def mirrored(mol: Chem.Mol, conf_index: int = 0) -> Chem.Mol:
    xyz = ev.conformer_coordinates(mol)[conf_index] * np.array([-1.0, 1.0, 1.0])
    return with_positions(mol, xyz)


def test_stereo_matches_mirror_of_chiral_molecule(ibuprofen):
    assert ev.expected_stereo(ibuprofen)[0] == {10: "S"}
    assert ev.stereo_matches(ibuprofen, ibuprofen.GetConformers()[0].GetId())
    assert ev.stereo_matches(with_positions(ibuprofen, ev.conformer_coordinates(ibuprofen)[1]))
    mirror = mirrored(ibuprofen)
    assert not ev.stereo_matches(mirror)
    both = Chem.Mol(ibuprofen)
    add_positions(both, mirror.GetConformer().GetPositions())
    np.testing.assert_array_equal(ev.conformer_failures(both), [False, False, False, True])
    reasons = ev.conformer_failure_reasons(both, ibuprofen)
    assert reasons["stereo"].tolist() == [False, False, False, True]
    assert not reasons["bond_length"].any() and not reasons["non_finite"].any()


def test_stereo_double_bond_and_unspecified_centres():
    trans, cis = embed("C/C=C/C", 1), embed("C/C=C\\C", 1)
    assert ev.expected_stereo(trans)[1] == {1: "E"}
    assert ev.stereo_matches(trans)
    wrong = with_positions(trans, cis.GetConformer().GetPositions())  # same atom order
    assert not ev.stereo_matches(wrong)
    assert ev.conformer_failures(wrong, trans).tolist() == [True]
    # 2-butanol without specified stereo: both enantiomers pass
    butanol = embed("CC(O)CC", 1)
    assert ev.expected_stereo(butanol) == ({}, {})
    assert ev.stereo_matches(butanol) and ev.stereo_matches(mirrored(butanol))


def test_stretched_bond_and_nan_flagged(ibuprofen):
    mol = Chem.Mol(ibuprofen)
    xyz = ev.conformer_coordinates(mol)
    # stretch C0-C1 by 1 A (1.53 -> ~2.53, +65 %) in conformer 1 by moving atom 0 outwards
    u = (xyz[1, 0] - xyz[1, 1]) / np.linalg.norm(xyz[1, 0] - xyz[1, 1])
    mol.GetConformer(mol.GetConformers()[1].GetId()).SetAtomPosition(0, (xyz[1, 0] + u).tolist())
    # conformer 2: a NaN coordinate
    mol.GetConformer(mol.GetConformers()[2].GetId()).SetAtomPosition(5, (np.nan, 0.0, 0.0))
    for reference in (ibuprofen, None):  # reference bond lengths, or an MMFF-minimised copy
        reasons = ev.conformer_failure_reasons(mol, reference)
        assert reasons["non_finite"].tolist() == [False, False, True]
        assert reasons["bond_length"].tolist() == [False, True, False]
        assert reasons["stereo"].tolist() == [False, False, False]
        assert ev.conformer_failures(mol, reference).tolist() == [False, True, True]
    # a looser tolerance accepts the stretch; a C-H moved by 1 A is caught too
    assert ev.conformer_failures(mol, ibuprofen, bond_tolerance=0.8).tolist() == [
        False,
        False,
        True,
    ]
    h = Chem.Mol(ibuprofen)
    hx = ev.conformer_coordinates(h)[0]
    h_idx = h.GetNumAtoms() - 1
    h.GetConformer(h.GetConformers()[0].GetId()).SetAtomPosition(h_idx, (hx[h_idx] + [1.0, 0, 0]))
    assert ev.conformer_failures(h, ibuprofen).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="bond_tolerance"):
        ev.conformer_failures(mol, bond_tolerance=0.0)


def test_failures_reference_atom_order_and_mismatch(ibuprofen):
    # the same molecule from another SMILES (other atom order) gives the same reference lengths
    other = embed("OC(=O)[C@H](C)c1ccc(CC(C)C)cc1", 2, seed=3)
    assert ev.conformer_failures(ibuprofen, other).tolist() == [False, False, False]
    assert ev.rmsd_matrix(other, ibuprofen).shape == (2, 3)
    with pytest.raises(ValueError, match="not the same molecule|same atoms"):
        ev.conformer_failures(ibuprofen, embed("CC(C)Cc1ccc(cc1)C(C)C(=O)OC", 1))


# ---- molecule and set evaluation ------------------------------------------------------------------
def test_evaluate_molecule_with_failed_conformer(ibuprofen):
    gen = Chem.Mol(ibuprofen)
    add_positions(gen, np.full((gen.GetNumAtoms(), 3), np.nan))
    add_positions(gen, mirrored(ibuprofen, 1).GetConformer().GetPositions())
    row = ev.evaluate_molecule(gen, ibuprofen)
    assert row["n_reference"] == 3 and row["n_generated"] == 5 and row["n_valid"] == 3
    assert row["n_failed"] == 2 and row["failure_fraction"] == pytest.approx(0.4)
    assert row["n_failed_non_finite"] == 1 and row["n_failed_stereo"] == 1
    assert row["cov_r@0.5"] == 1.0 and row["mat_r"] < 1e-3
    assert row["cov_p@0.75"] == pytest.approx(3 / 5) and row["mat_p"] < 1e-3
    assert row["energy_w1"] == pytest.approx(0.0, abs=1e-6)
    # weights of the generated conformers change energy W1 (entries of failed ones ignored)
    w = ev.evaluate_molecule(gen, ibuprofen, gen_weights=[1.0, 0.0, 0.0, 5.0, 5.0])
    e = ev.mmff_energies(ibuprofen)
    assert w["energy_w1"] == pytest.approx(stats.wasserstein_distance([e[0]], e))
    assert w["energy_w1"] > 1e-3


def test_evaluate_molecule_all_failed(ibuprofen):
    gen = mirrored(ibuprofen)
    row = ev.evaluate_molecule(gen, ibuprofen)
    assert row["n_valid"] == 0 and row["cov_r@0.75"] == 0.0 and row["cov_p@0.75"] == 0.0
    assert math.isnan(row["mat_r"]) and math.isnan(row["energy_w1"])


def test_evaluate_sets_summary_and_table(ibuprofen, butane):
    gen_b = Chem.Mol(butane)
    add_positions(gen_b, np.full((gen_b.GetNumAtoms(), 3), np.nan))  # 1 of 5 failed
    out = ev.evaluate_sets(
        [
            ("ibu", ibuprofen, ibuprofen),
            ("but", gen_b, butane),
            ("one", ev.subset_conformers(butane, [0]), butane),
        ]
    )
    assert [r["id"] for r in out["rows"]] == ["ibu", "but", "one"] and out["n_molecules"] == 3
    s = out["summary"]
    assert s["failure_fraction"]["mean"] == pytest.approx((0 + 0.2 + 0) / 3)
    assert s["failure_fraction"]["median"] == pytest.approx(0.0)
    assert s["cov_p@0.75"]["mean"] == pytest.approx((1.0 + 0.8 + 1.0) / 3)
    assert s["cov_p@0.75"]["median"] == pytest.approx(1.0)
    assert s["mat_r"]["n"] == 3
    table = ev.format_table(s)
    lines = table.strip().splitlines()
    assert lines[0] == "| metric | mean | median | n |"
    assert "| COV-P @ 0.75 Å (%) | 93.3 | 100.0 | 3 |" in lines
    assert "| failed conformers (%) | 6.7 | 0.0 | 3 |" in lines
    assert any(line.startswith("| energy W1 (kcal/mol) |") for line in lines)
    with pytest.raises(ValueError, match="duplicate"):
        ev.evaluate_sets([("a", butane, butane), ("a", butane, butane)], energies=False)
    with pytest.raises(ValueError, match=r"'x'.*CCCC"):
        ev.evaluate_sets([("x", butane, ibuprofen)], energies=False)
    with pytest.raises(ValueError, match="cov_r@0.3"):
        ev.format_table(s, threshold=0.3)


# ---- SDF I/O --------------------------------------------------------------------------------------
def test_sdf_round_trip(tmp_path, butane, ibuprofen):
    ibu = Chem.Mol(ibuprofen)  # first conformer mirrored: the graph stereo must survive
    ibu.RemoveAllConformers()
    add_positions(ibu, mirrored(ibuprofen).GetConformer().GetPositions())
    for c in ibuprofen.GetConformers():
        add_positions(ibu, c.GetPositions())
    mols = {"butane": butane, "ibuprofen": ibu}
    props = {
        "butane": {"energy": np.array([1.0, 2.5, -3.25, 1e-17]), "tag": np.array(list("abcd"))},
        "ibuprofen": {"energy": ev.mmff_energies(ibu), "log_weight": np.log([0.1, 0.2, 0.3, 0.4])},
    }
    path = tmp_path / "out" / "confs.sdf"
    ev.write_conformer_sdf(path, mols, props)
    got, got_props = ev.read_conformer_sdf(path)
    assert list(got) == ["butane", "ibuprofen"]
    for key, mol in mols.items():
        assert got[key].GetNumConformers() == mol.GetNumConformers()
        assert [a.GetAtomicNum() for a in got[key].GetAtoms()] == [
            a.GetAtomicNum() for a in mol.GetAtoms()
        ]
        np.testing.assert_allclose(
            ev.conformer_coordinates(got[key]), ev.conformer_coordinates(mol), atol=1e-4
        )
        assert set(got_props[key]) == set(props[key])
    np.testing.assert_array_equal(got_props["butane"]["energy"], props["butane"]["energy"])
    assert got_props["butane"]["tag"].tolist() == list("abcd")
    np.testing.assert_array_equal(
        got_props["ibuprofen"]["log_weight"], np.log([0.1, 0.2, 0.3, 0.4])
    )
    # stereo from fkc_smiles, not from the (mirrored) first record
    assert ev.expected_stereo(got["ibuprofen"]) == ev.expected_stereo(ibuprofen)
    assert ev.conformer_failures(got["ibuprofen"], ibuprofen).tolist() == [
        True,
        False,
        False,
        False,
    ]


def test_read_groups_by_title_without_fkc_id(tmp_path, butane, ibuprofen):
    path = tmp_path / "plain.sdf"
    w = Chem.SDWriter(str(path))
    for name, mol in (("b", butane), ("i", ibuprofen), ("b", butane)):
        m = Chem.Mol(mol)
        m.SetProp("_Name", name)
        m.SetProp("energy", "1.5")
        w.write(m, confId=m.GetConformers()[0].GetId())
    w.close()
    got, props = ev.read_conformer_sdf(path)
    assert list(got) == ["b", "i"] and got["b"].GetNumConformers() == 2
    np.testing.assert_array_equal(props["b"]["energy"], [1.5, 1.5])
    # records of one id with different atoms are refused
    w = Chem.SDWriter(str(path))
    for mol in (butane, embed("CCCO", 1)):
        m = Chem.Mol(mol)
        m.SetProp("_Name", "same")
        w.write(m, confId=m.GetConformers()[0].GetId())
    w.close()
    with pytest.raises(ValueError, match="record 1 of molecule 'same'"):
        ev.read_conformer_sdf(path)


@pytest.mark.parametrize("bad", ["not a mol", "nan"])
def test_write_is_atomic(tmp_path, butane, bad):
    path = tmp_path / "confs.sdf"
    path.write_text("old content\n")
    if bad == "nan":
        second = Chem.Mol(butane)
        second.GetConformer(second.GetConformers()[2].GetId()).SetAtomPosition(0, (np.nan, 0, 0))
        err = ValueError
    else:
        second, err = bad, TypeError
    big = Chem.Mol(butane)
    for _ in range(50):  # enough for the first entry to reach the temporary file
        add_positions(big, butane.GetConformer(butane.GetConformers()[0].GetId()).GetPositions())
    with pytest.raises(err):
        ev.write_conformer_sdf(path, {"first": big, "second": second})
    assert path.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["confs.sdf"]
    new = tmp_path / "new.sdf"
    with pytest.raises(err):
        ev.write_conformer_sdf(new, {"first": big, "second": second})
    assert os.listdir(tmp_path) == ["confs.sdf"]


def test_write_bad_properties(tmp_path, butane):
    path = tmp_path / "x.sdf"
    with pytest.raises(ValueError, match=r"'energy'.*\(4,\)"):
        ev.write_conformer_sdf(path, {"b": butane}, {"b": {"energy": np.zeros(3)}})
    with pytest.raises(ValueError, match="reserved"):
        ev.write_conformer_sdf(path, {"b": butane}, {"b": {"fkc_id": np.zeros(4)}})
    with pytest.raises(ValueError, match="not in mols"):
        ev.write_conformer_sdf(path, {"b": butane}, {"c": {"energy": np.zeros(4)}})
    assert not path.exists()
