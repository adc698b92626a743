"""fkc.datasets.qm9: gdb9.sdf + gdb9.sdf.csv and qm9pack CSVs, on fixtures in those formats."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fkc.datasets import load_gdb9, load_qm9pack

FIX = Path(__file__).parent / "fixtures"
GDB9 = (FIX / "qm9" / "gdb9.sdf", FIX / "qm9" / "gdb9.sdf.csv")
GDB9_BAD = (FIX / "qm9" / "gdb9_bad.sdf", FIX / "qm9" / "gdb9_bad.sdf.csv")
WATER = np.array([[-0.0343604951, 0.9775395708, 0.0076015923],
                  [0.0647664923, 0.0205721989, 0.0015346341],
                  [0.8717903737, 1.3007924048, 0.0006931336]])


def test_gdb9_sdf_csv():
    d = load_gdb9(*GDB9)
    assert not d.failures
    assert [m.mol_id for m in d.molecules] == ["gdb_1", "gdb_2", "gdb_3"]
    assert [m.smiles for m in d.molecules] == ["C", "N", "O"]
    water = d.molecules[2]
    assert water.atomic_numbers.tolist() == [8, 1, 1] and water.positions.shape == (3, 3)
    np.testing.assert_allclose(water.positions, WATER, atol=6e-5)  # SDF keeps 4 decimals (angstrom)
    assert water.properties["u0"] == pytest.approx(-76.404702) and d.units["u0"] == "Hartree"
    assert water.properties["A"] == pytest.approx(799.58812) and d.units["u0_atom"] == "kcal/mol"
    assert len(water.properties) == 19 and water.mol.GetNumAtoms() == 3
    assert [m.mol_id for m in load_gdb9(*GDB9, limit=2).molecules] == ["gdb_1", "gdb_2"]


def test_gdb9_mismatches_are_failure_records():
    d = load_gdb9(*GDB9_BAD)
    assert [m.mol_id for m in d.molecules] == ["gdb_1"]
    reasons = [f.reason for f in d.failures]
    assert "sanitisation failed" in reasons[0] and d.failures[0].where.endswith("gdb_4")
    assert reasons[1] == "SDF record 'gdb_6' has no row in gdb9_bad.sdf.csv"
    assert reasons[2] == "CSV row 'gdb_5' has no record in gdb9_bad.sdf"
    with pytest.raises(ValueError, match="sanitisation failed"):
        load_gdb9(*GDB9_BAD, on_error="raise")


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("mol_id,", "id,", 1), "first column must be 'mol_id'"),
    (lambda t: t + t.splitlines()[1] + "\n", "duplicate mol_id 'gdb_1'"),
    (lambda t: t.replace("-76.404702", "nan?"), r"row 2 \('gdb_3'\) has non-numeric"),
])
def test_gdb9_malformed_csv_raises(tmp_path, edit, match):
    csv = tmp_path / "gdb9.sdf.csv"
    csv.write_text(edit(GDB9[1].read_text()))
    with pytest.raises(ValueError, match=match):
        load_gdb9(GDB9[0], csv)


def test_qm9pack_format_fixture():
    d = load_qm9pack([FIX / "qm9pack" / "qm9_sample.csv"])
    assert not d.failures and [m.smiles for m in d.molecules] == ["C", "N", "O", "C#C"]
    water, acetylene = d.molecules[2], d.molecules[3]
    assert water.mol_id == "dsgdb9nsd_000003" and water.mol is None
    np.testing.assert_array_equal(water.positions, WATER)
    np.testing.assert_array_equal(acetylene.positions[:, 1:], [[0.0, 1.0]] * 4)  # "0." and "1."
    assert acetylene.atomic_numbers.tolist() == [6, 6, 1, 1]
    assert water.properties["HOMO_au"] == -0.2928 and d.units["HOMO_au"] == "Hartree"
    assert len(load_qm9pack([FIX / "qm9pack" / "qm9_sample.csv"], limit=2).molecules) == 2


def test_qm9pack_bad_rows_are_failure_records():
    d = load_qm9pack([FIX / "qm9pack" / "qm9_bad.csv"])
    assert [m.mol_id for m in d.molecules] == ["dsgdb9nsd_000001"]
    assert [f.index for f in d.failures] == [1, 2, 3]
    assert "N_atoms=4 but 3 elements" in d.failures[0].reason
    assert "XYZ_Ang is not a list" in d.failures[1].reason
    assert "unknown element symbol(s) ['Xx']" in d.failures[2].reason
    with pytest.raises(ValueError, match="N_atoms=4"):
        load_qm9pack([FIX / "qm9pack" / "qm9_bad.csv"], on_error="raise")
    with pytest.raises(ValueError, match="not a qm9pack CSV"):
        load_qm9pack([GDB9[1]])


@pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack not installed")
def test_installed_qm9pack_first_rows():
    d = load_qm9pack(limit=20)
    assert len(d.molecules) == 20 and not d.failures
    assert d.molecules[0].mol_id == "dsgdb9nsd_000001" and d.molecules[0].smiles == "C"
