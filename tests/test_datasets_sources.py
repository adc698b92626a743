"""fkc.datasets.sources: molecule sets shipped offline in the rdkit and molsets wheels."""

import importlib.util

import pytest

from fkc.datasets import (
    cdk2,
    egfr,
    load_source,
    moses,
    nci_first_5k,
    parse_molecules,
    read_sdf_smiles,
    read_smi,
)


def test_rdkit_sdf_sets():
    c, e = cdk2(), egfr()
    assert (len(c), len(e)) == (47, 365) and not c.failures and not e.failures
    assert c.names[0] == "ZINC03814457" and c.source.endswith("Fastcluster/testdata/cdk2.sdf")
    assert e.source.endswith("PBF/testData/egfr.sdf")
    assert len(set(c.names)) == len(c) and len(c.smiles) == len(c.names)
    assert not parse_molecules(c.smiles, on_error="record").failures


def test_nci_smi_and_its_failures_are_recorded():
    s = nci_first_5k(limit=200)
    assert len(s) == 200 and s.names[:2] == ["1", "2"] and s.smiles[0] == "CC1=CC(=O)C=CC1=O"
    parsed = parse_molecules(s.smiles, on_error="record")
    assert len(parsed.mols) + len(parsed.failures) == 200 and parsed.failures
    assert len(nci_first_5k()) == 4999


def test_sdf_record_rdkit_cannot_read_is_a_failure(tmp_path):
    good = "gdb_x\n     RDKit          3D\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n" \
           "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\nM  END\n$$$$\n"
    bad = good.replace("gdb_x", "broken").replace("  1  0  0", "  2  0  0")  # 2 atoms declared, 1 given
    path = tmp_path / "mixed.sdf"
    path.write_text(good + bad + good.replace("gdb_x", "gdb_y"))
    out = read_sdf_smiles(path)
    assert out.names == ["gdb_x", "gdb_y"] and out.smiles == ["C", "C"]
    assert len(out.failures) == 1 and out.failures[0].index == 1 and "broken" in out.failures[0].reason
    with pytest.raises(ValueError, match="could not read SDF record 1"):
        read_sdf_smiles(path, on_error="raise")


def test_read_smi_header_and_missing_ids(tmp_path):
    p = tmp_path / "x.smi"
    p.write_text("smiles id\nCCO ethanol\n\nc1ccccc1\n")
    s = read_smi(p, header=True)
    assert s.smiles == ["CCO", "c1ccccc1"] and s.names == ["ethanol", "x_4"]


@pytest.mark.skipif(importlib.util.find_spec("moses") is None, reason="molsets not installed")
def test_moses_from_the_molsets_wheel():
    m = moses("test", limit=50)
    assert len(m) == 50 and m.names[0] == "moses_test_0" and m.source.endswith("test.csv.gz")
    assert not parse_molecules(m.smiles, on_error="record").failures
    assert len(load_source("moses_test_scaf", limit=3)) == 3


def test_moses_missing_gives_install_hint(monkeypatch):
    import fkc.datasets.sources as src

    monkeypatch.setattr(src.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps molsets"):
        moses("test")


def test_unknown_source_and_split():
    with pytest.raises(ValueError, match="unknown molecule source 'zinc'"):
        load_source("zinc")
    with pytest.raises(ValueError, match="MOSES split"):
        moses("valid")
