"""python -m fkc.conformers.build: molecule selection, ensembles, training set, references."""

from __future__ import annotations

import numpy as np
import pytest

from fkc.conformers.build import main, pick_distinct, read_molecules
from fkc.conformers.evaluate import read_conformer_sdf
from fkc.datasets import embed_etkdg, mol_from_smiles
from fkc.train import MoleculeDataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """molecules from cdk2 only, then tiny ensembles of two train and one test molecule."""
    root = tmp_path_factory.mktemp("conformers")
    from fkc.conformers import build

    kept, failed = build.select_molecules(sources=("cdk2",), max_heavy=30)
    build._write_csv(root / "molecules.csv", kept, ["id", "source", "name", "smiles", "split",
                                                    "n_heavy", "n_rotatable", "mw"])
    common = ["--out", str(root), "--samples", "8", "--thin", "1", "--burn", "10",
              "--replicas", "2", "--limit"]
    assert main(["ensembles", "--split", "train", "--temperature", "500", *common, "2"]) == 0
    assert main(["ensembles", "--split", "test", "--temperature", "300", *common, "1"]) == 0
    return root, kept, failed


def test_selection_keeps_or_records_every_molecule(built):
    root, kept, failed = built
    assert len(kept) + len(failed) == 47  # cdk2.sdf: nothing silently dropped
    rows = read_molecules(root / "molecules.csv")
    assert [r["id"] for r in rows] == [f"mol{i:05d}" for i in range(len(rows))]
    assert {r["split"] for r in rows} <= {"train", "valid", "test"}
    assert all(8 <= r["n_heavy"] <= 30 and r["n_rotatable"] <= 6 for r in rows)
    assert len({r["smiles"] for r in rows}) == len(rows)
    assert all(f["reason"] for f in failed)
    with pytest.raises(ValueError, match="split"):
        read_molecules(root / "molecules.csv", "tests")
    with pytest.raises(FileNotFoundError, match="molecules"):
        read_molecules(root / "nothing.csv")


def test_ensembles_resume_and_training_set(built, tmp_path):
    root, _, _ = built
    work = sorted((root / "work" / "T500_train").glob("*.npz"))
    assert len(work) == 2
    stamp = [p.stat().st_mtime_ns for p in work]
    main(["ensembles", "--out", str(root), "--split", "train", "--temperature", "500",
          "--samples", "8", "--thin", "1", "--burn", "10", "--replicas", "2", "--limit", "2"])
    assert [p.stat().st_mtime_ns for p in work] == stamp  # finished molecules are skipped
    out = tmp_path / "train.npz"
    assert main(["training-set", "--out-dir", str(root), "--split", "train", "--temperature",
                 "500", "--out", str(out)]) == 0
    ds = MoleculeDataset.from_npz(out)
    assert len(ds) == 16 and ds.atom_features.shape[1] == 21
    assert ds.metadata["training_temperature"] == 500.0
    assert ds.metadata["featurizer"] == "fkc.conformers.featurize"


def test_references_file(built):
    root, _, _ = built
    assert main(["references", "--out-dir", str(root), "--split", "test", "--temperature", "300",
                 "--k", "5", "--dedup", "0.0"]) == 0
    mols, props = read_conformer_sdf(root / "T300_test.sdf")
    (mol_id, mol), = mols.items()
    assert 1 <= mol.GetNumConformers() <= 5
    with np.load(root / "T300_test_energies.npz") as f:
        e = f[mol_id]
    assert e.shape == (8,)
    np.testing.assert_allclose(props[mol_id]["energy"], e[props[mol_id]["sample_index"].astype(int)])


def test_pick_distinct_respects_the_threshold():
    mol = embed_etkdg(mol_from_smiles("CCCCCC(=O)O"), 12, seed=0)
    x = np.stack([c.GetPositions() for c in mol.GetConformers()])
    x = np.concatenate([x, x])  # every conformer twice
    picked = pick_distinct(mol_from_smiles("CCCCCC(=O)O"), x, 50, 0.1)
    assert len(picked) <= 12 and picked[0] == 0
    assert len(pick_distinct(mol_from_smiles("CCCCCC(=O)O"), x, 3, 0.1)) == 3
