"""fkc.datasets.splits: deterministic Bemis-Murcko scaffold splits."""

import numpy as np
import pytest

from fkc.datasets import egfr, murcko_scaffold, scaffold_split

SMILES = [
    "c1ccccc1C", "c1ccccc1CC", "c1ccccc1O", "c1ccccc1N", "c1ccccc1Cl", "c1ccccc1F",  # benzene
    "c1ccncc1C", "c1ccncc1O",  # pyridine
    "C1CCCCC1C", "C1CCCCC1O",  # cyclohexane
    "c1ccc2ccccc2c1", "O=C1CCCN1", "CCO", "CCCN",  # naphthalene, pyrrolidone, acyclic x2
    "c1ccc(cc1)-c1ccccc1", "C1CC1C", "c1ccoc1C", "c1ccsc1", "c1cc[nH]c1", "C1CCOC1",
]


def _check_partition(split, n):
    parts = [split.train, split.valid, split.test]
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(n))  # each molecule in exactly one split
    scafs = [{split.scaffolds[i] for i in p} for p in parts]
    assert not (scafs[0] & scafs[1]) and not (scafs[0] & scafs[2]) and not (scafs[1] & scafs[2])


def test_murcko_scaffold_plain_and_generic():
    assert murcko_scaffold("c1ccccc1CCO") == "c1ccccc1"
    assert murcko_scaffold("c1ccncc1C") == "c1ccncc1"
    assert murcko_scaffold("CCO") == ""
    assert murcko_scaffold("c1ccncc1C", generic=True) == murcko_scaffold("c1ccccc1O", generic=True)


def test_largest_first_is_moleculenet_order_and_deterministic():
    s = scaffold_split(SMILES, (0.5, 0.25, 0.25))
    _check_partition(s, len(SMILES))
    assert set(s.train.tolist()) >= {0, 1, 2, 3, 4, 5}  # largest group (benzene) goes to train
    assert s.train.dtype == np.int64 and np.all(np.diff(s.train) > 0)
    s2 = scaffold_split(SMILES, (0.5, 0.25, 0.25), seed=123)  # seed unused in this order
    for a, b in zip((s.train, s.valid, s.test), (s2.train, s2.valid, s2.test), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(s.train) <= 0.5 * len(SMILES) and len(s.train) + len(s.valid) <= 0.75 * len(SMILES)


def test_random_order_is_seeded_and_disjoint():
    a = scaffold_split(SMILES, seed=0, order="random")
    b = scaffold_split(SMILES, seed=0, order="random")
    np.testing.assert_array_equal(a.test, b.test)
    _check_partition(a, len(SMILES))
    others = [scaffold_split(SMILES, seed=k, order="random").train.tolist() for k in range(1, 6)]
    assert any(o != a.train.tolist() for o in others)


def test_generic_scaffolds_merge_heteroaromatic_rings():
    s = scaffold_split(SMILES, generic=True)
    _check_partition(s, len(SMILES))
    assert s.scaffolds[0] == s.scaffolds[6]  # benzene ~ pyridine when generic


def test_real_offline_set_is_partitioned():
    mols = egfr()
    s = scaffold_split(mols.smiles)
    _check_partition(s, len(mols))
    assert len(s.train) > len(s.valid) > 0 and len(s.test) > 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"molecule 1: invalid or empty SMILES 'C1CC'"):
        scaffold_split(["CCO", "C1CC"])
    with pytest.raises(ValueError, match="fractions"):
        scaffold_split(SMILES, (0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="order"):
        scaffold_split(SMILES, order="size")
