"""fkc.datasets.smiles: parsing policy, batch failure records, ETKDGv3 embedding."""

import numpy as np
import pytest
from rdkit import Chem

from fkc.datasets import (
    EmbeddingError,
    Failure,
    MoleculePolicy,
    as_mol,
    embed_etkdg,
    embed_molecules,
    mol_from_smiles,
    parse_molecules,
)

UNEMBEDDABLE = "[C@H]12C[C@@H]1C2"  # bicyclobutane with impossible bridgehead chirality


def test_mol_from_smiles_adds_hydrogens_and_keeps_charge_policy():
    mol = mol_from_smiles("CC(=O)Nc1ccc(O)cc1")
    assert mol.GetNumAtoms() == 20 and all(a.GetNumImplicitHs() == 0 for a in mol.GetAtoms())
    assert mol_from_smiles("CCO", add_hs=False).GetNumAtoms() == 3
    assert mol_from_smiles("C[N+](=O)[O-]").GetNumAtoms() == 7  # formal charges, net 0
    assert Chem.GetFormalCharge(mol_from_smiles("CC[NH3+]")) == 1
    with pytest.raises(ValueError, match=r"net charge \+1"):
        mol_from_smiles("CC[NH3+]", policy=MoleculePolicy(allow_net_charge=False))


@pytest.mark.parametrize("smiles, match", [
    ("C1CC", "invalid SMILES 'C1CC': RDKit could not parse"),
    ("not a smiles", "invalid SMILES 'not a smiles'"),
    ("C(C)(C)(C)(C)C", "invalid SMILES .*sanitisation failed.*valence"),
    ("", "empty SMILES"),
    ("   ", "empty SMILES"),
    ("CC[Si](C)C", r"'CC\[Si\]\(C\)C' has unsupported element\(s\) \['Si'\]"),
    ("[Na+].[Cl-]", r"unsupported element\(s\) \['Na'\]"),
    ("*CC", r"unsupported element\(s\) \['\*'\]"),
    ("C[CH2]", "is a radical"),
    ("CCO.O", "2 disconnected fragments"),
])
def test_mol_from_smiles_rejects_with_the_smiles_named(smiles, match):
    with pytest.raises(ValueError, match=match):
        mol_from_smiles(smiles)


def test_type_errors_and_mol_input():
    with pytest.raises(TypeError, match="must be a str"):
        mol_from_smiles(None)
    mol = as_mol(Chem.MolFromSmiles("c1ccccc1O"))
    assert mol.GetNumAtoms() == 13
    with pytest.raises(ValueError, match="unsupported element"):
        as_mol(Chem.MolFromSmiles("C[Se]C"))


def test_parse_molecules_records_every_failure_in_order():
    smiles = ["CCO", "C1CC", "c1ccccc1", "", "CC[B](C)C", "CCO.O", "CCN"]
    out = parse_molecules(smiles, on_error="record")
    assert out.indices == [0, 2, 6]
    assert [Chem.MolToSmiles(Chem.RemoveHs(m)) for m in out.mols] == ["CCO", "c1ccccc1", "CCN"]
    assert [f.index for f in out.failures] == [1, 3, 4, 5]
    assert all(isinstance(f, Failure) and f.smiles == smiles[f.index] for f in out.failures)
    assert "unsupported element" in out.failures[2].reason
    assert len(out.mols) + len(out.failures) == len(smiles)  # nothing dropped silently


def test_parse_molecules_raise_names_index_and_smiles():
    with pytest.raises(ValueError, match=r"molecule 1: invalid SMILES 'C1CC'"):
        parse_molecules(["CCO", "C1CC"])
    with pytest.raises(ValueError, match="on_error"):
        parse_molecules(["CCO"], on_error="skip")


def test_embed_etkdg_is_seeded_and_keeps_chirality():
    mol = mol_from_smiles("C[C@H](N)C(=O)O")
    a = embed_etkdg(mol, 4, seed=7)
    b = embed_etkdg(mol, 4, seed=7)
    c = embed_etkdg(mol, 4, seed=8)
    assert mol.GetNumConformers() == 0 and a.GetNumConformers() == 4
    pa = np.stack([cf.GetPositions() for cf in a.GetConformers()])
    pb = np.stack([cf.GetPositions() for cf in b.GetConformers()])
    pc = np.stack([cf.GetPositions() for cf in c.GetConformers()])
    assert pa.shape == (4, mol.GetNumAtoms(), 3)
    np.testing.assert_array_equal(pa, pb)
    assert not np.allclose(pa, pc)
    for cid in range(4):  # the embedded 3-D geometry has the input's CIP label
        m = Chem.Mol(a, confId=cid)
        Chem.AssignStereochemistryFrom3D(m, confId=cid)
        assert Chem.FindMolChiralCenters(m) == [(1, "S")]


@pytest.mark.parametrize("seed", [0, 1])
def test_embed_etkdg_conformers_differ_for_every_seed(seed):
    """RDKit's randomSeed = 0 gives identical conformers; fkc's seed 0 must not."""
    a = embed_etkdg(mol_from_smiles("CCCCCC(=O)O"), 4, seed=seed)
    p = np.stack([cf.GetPositions() for cf in a.GetConformers()])
    assert all(not np.allclose(p[0], p[i]) for i in range(1, 4))


def test_embed_failures_raise_or_are_recorded():
    bad = mol_from_smiles(UNEMBEDDABLE)
    with pytest.raises(EmbeddingError, match=r"embedded 0 of 2 conformers of '.*' \(seed=0"):
        embed_etkdg(bad, 2, seed=0)
    with pytest.raises(ValueError, match="implicit hydrogens"):
        embed_etkdg(Chem.MolFromSmiles("CCO"), 1, seed=0)
    with pytest.raises(ValueError, match="n_confs"):
        embed_etkdg(mol_from_smiles("CCO"), 0, seed=0)
    out = embed_molecules([mol_from_smiles("CCO"), bad, mol_from_smiles("CCN")], 2, seed=0,
                          on_error="record")
    assert out.indices == [0, 2] and [m.GetNumConformers() for m in out.mols] == [2, 2]
    assert len(out.failures) == 1 and out.failures[0].index == 1
    assert "ETKDGv3 embedded 0 of 2" in out.failures[0].reason
    with pytest.raises(EmbeddingError, match="molecule 1"):
        embed_molecules([mol_from_smiles("CCO"), bad], 1, seed=0)
