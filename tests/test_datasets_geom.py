"""fkc.datasets.geom: GEOM rdkit_folder loader on fixtures in the published format."""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from fkc.datasets import load_geom, load_geom_pickle, read_geom_summary

ROOT = Path(__file__).parent / "fixtures" / "geom" / "rdkit_folder"


def test_pickles_are_opt_in():
    with pytest.raises(ValueError, match="trust_pickles=True"):
        load_geom(ROOT)
    with pytest.raises(ValueError, match="trust_pickles=True"):
        load_geom_pickle(ROOT / "drugs" / "CCCO.pickle")
    with pytest.raises(ValueError, match="trust_pickles=True"):
        load_geom(ROOT, trust_pickles="yes")  # only the literal True opts in


def test_good_molecules_and_units():
    data = load_geom(ROOT, "drugs", trust_pickles=True, smiles=["CC(=O)Nc1ccc(O)cc1"])
    assert not data.failures and len(data.molecules) == 1
    m = data.molecules[0]
    assert m.key == m.smiles == "CC(=O)Nc1ccc(O)cc1"
    assert m.positions.shape == (3, 20, 3) and m.positions.dtype == np.float64
    assert m.mol.GetNumConformers() == 3 and m.atomic_numbers.tolist()[:4] == [6, 6, 8, 7]
    np.testing.assert_allclose(m.mol.GetConformer(2).GetPositions(), m.positions[2])
    bonds = np.linalg.norm(m.positions[:, 0] - m.positions[:, 1], axis=-1)  # C-C, angstrom
    assert np.all((bonds > 1.4) & (bonds < 1.6))
    assert m.boltzmann_weights.sum() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(np.diff(m.relative_energies), 0.4)  # kcal/mol
    np.testing.assert_allclose(np.diff(m.total_energies), 0.4 / 627.509474, rtol=1e-4)  # Hartree
    assert m.properties["temperature"] == 298.15 and m.geom_ids.tolist() == [1000, 1001, 1002]
    assert Chem.MolToSmiles(Chem.RemoveHs(m.mol)) == Chem.CanonSmiles(m.smiles)


def test_isomerised_conformer_is_dropped_and_reported():
    m = load_geom_pickle(ROOT / "drugs" / "CCCO.pickle", trust_pickles=True)
    assert m.positions.shape == (2, 12, 3) and m.geom_ids.tolist() == [2000, 2002]
    assert len(m.dropped) == 1 and m.dropped[0].startswith("conformer 1: atoms or bonds differ")
    m1 = load_geom_pickle(ROOT / "drugs" / "CCCO.pickle", trust_pickles=True, max_conformers=1)
    assert m1.positions.shape == (1, 12, 3)


def test_every_bad_entry_is_a_failure_record():
    data = load_geom(ROOT, trust_pickles=True)
    summary = read_geom_summary(ROOT / "summary_drugs.json")
    assert len(data.molecules) + len(data.failures) == len(summary)  # nothing silently dropped
    reasons = {f.smiles: f.reason for f in data.failures}
    assert "no 'pickle_path'" in reasons["CCN"]
    assert "file not found" in reasons["CCCl"]
    assert "cannot unpickle" in reasons["CCBr"]  # truncated file
    assert "missing key(s) ['conformers']" in reasons["CCS"]
    assert "missing key(s) ['rd_mol']" in reasons["CCF"]
    assert "refused global" in reasons["CCI"] and "getcwd" in reasons["CCI"]  # never executed
    assert "points outside" in reasons["CC#N"]
    assert [f.index for f in data.failures] == [2, 3, 4, 5, 6, 7, 8]


def test_raise_mode_and_unknown_key():
    with pytest.raises(ValueError, match=r"entry 2 \('CCN'\): summary entry has no 'pickle_path'"):
        load_geom(ROOT, trust_pickles=True, on_error="raise")
    data = load_geom(ROOT, trust_pickles=True, smiles=["CCCO", "c1ccccc1"])
    assert len(data.molecules) == 1 and data.failures[0].reason == "not in the summary file"
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_geom(ROOT, "zinc", trust_pickles=True)


def test_bad_conformer_values_and_non_dict(tmp_path):
    folder = tmp_path / "rdkit_folder"
    shutil.copytree(ROOT, folder)
    with open(ROOT / "drugs" / "CCCO.pickle", "rb") as f:
        good = pickle.load(f)
    good["conformers"][0]["totalenergy"] = "n/a"
    (folder / "drugs" / "a.pickle").write_bytes(pickle.dumps(good))
    (folder / "drugs" / "b.pickle").write_bytes(pickle.dumps([1, 2, 3]))
    (folder / "summary_qm9.json").write_text(json.dumps(
        {"A": {"pickle_path": "drugs/a.pickle"}, "B": {"pickle_path": "drugs/b.pickle"}}))
    data = load_geom(folder, "qm9", trust_pickles=True)
    assert not data.molecules
    assert "non-numeric conformer value" in data.failures[0].reason
    assert "expected a dict, got list" in data.failures[1].reason
