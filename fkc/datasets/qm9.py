"""QM9 (Ramakrishnan et al., Sci. Data 1, 140022 (2014)) in two published formats.

(a) MoleculeNet / PyG raw files ``gdb9.sdf`` + ``gdb9.sdf.csv``: the SDF holds the B3LYP
    geometries with hydrogens and bonds, record titles ``gdb_1``, ``gdb_2``, ...; the CSV has the
    header :data:`GDB9_COLUMNS` and one row per molecule keyed by ``mol_id``. Rows and records
    are matched by id (not by position); units in :data:`GDB9_UNITS`.
(b) The CSVs in the ``qm9pack`` wheel (``qm9pack/data/qm9_part{1,2,3}.csv``, one row per
    molecule, 133,885 in all): ``XYZ_file`` (``dsgdb9nsd_000001.xyz``), ``Index``, ``SMILES``,
    ``InChi``, ``N_atoms``, ``Elements`` (``"['C','H',...]"``), ``XYZ_Ang`` (JSON list of
    ``[x, y, z]`` in angstrom), per-atom lists (``Mulliken_pop``, ``Harmonic_Freq_cmi``, not
    returned) and scalar properties whose column names carry their units (``HOMO_au`` Hartree,
    ``Dipole_debye``, ...). The package is located, never imported.

Both return :class:`QM9Molecule` records (positions in angstrom) and per-molecule failures.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase

from fkc.datasets._records import Failure, check_on_error

GDB9_COLUMNS = ("mol_id", "A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
                "u0", "u298", "h298", "g298", "cv", "u0_atom", "u298_atom", "h298_atom",
                "g298_atom")
GDB9_UNITS = {"A": "GHz", "B": "GHz", "C": "GHz", "mu": "D", "alpha": "bohr^3",
              "homo": "Hartree", "lumo": "Hartree", "gap": "Hartree", "r2": "bohr^2",
              "zpve": "Hartree", "u0": "Hartree", "u298": "Hartree", "h298": "Hartree",
              "g298": "Hartree", "cv": "cal/(mol K)", "u0_atom": "kcal/mol",
              "u298_atom": "kcal/mol", "h298_atom": "kcal/mol", "g298_atom": "kcal/mol"}
QM9PACK_PROPERTIES = ("RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3",
                      "HOMO_au", "LUMO_au", "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au",
                      "InternalEnergy_0K_au", "InternalEnergy_298K_au", "Enthalphy_298K_au",
                      "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K")
QM9PACK_UNITS = {"RotA_GHz": "GHz", "RotB_GHz": "GHz", "RotC_GHz": "GHz", "Dipole_debye": "D",
                 "Polarizability_bohr3": "bohr^3", "HOMO_au": "Hartree", "LUMO_au": "Hartree",
                 "HOMO_LUMO_gap_au": "Hartree", "R2_bohr2": "bohr^2", "ZPVE_au": "Hartree",
                 "InternalEnergy_0K_au": "Hartree", "InternalEnergy_298K_au": "Hartree",
                 "Enthalphy_298K_au": "Hartree", "GibbsFreeEnergy_298K_au": "Hartree",
                 "Heatcapacity_Cv_cal_mol_K": "cal/(mol K)"}
QM9PACK_REQUIRED = ("XYZ_file", "SMILES", "N_atoms", "Elements", "XYZ_Ang")
_Z = {Chem.GetPeriodicTable().GetElementSymbol(z): z for z in range(1, 119)}


@dataclass
class QM9Molecule:
    """One QM9 molecule: ``atomic_numbers (n_atoms,)`` int64, ``positions (n_atoms, 3)`` float64
    in angstrom, ``smiles``, ``properties`` (float values; units in the loader's docs) and, from
    the SDF format only, the RDKit ``mol`` (unsanitised copy with bonds and the conformer)."""

    mol_id: str
    smiles: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    properties: dict[str, float]
    mol: Chem.Mol | None = None


@dataclass
class QM9Dataset:
    molecules: list[QM9Molecule]
    failures: list[Failure] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)


def _fail(out: QM9Dataset, on_error: str, failure: Failure) -> None:
    if on_error == "raise":
        raise ValueError(str(failure))
    out.failures.append(failure)


def _read_gdb9_csv(path: Path) -> dict[str, tuple[int, dict[str, float]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = tuple(reader.fieldnames or ())
        if not cols or cols[0] != "mol_id":
            raise ValueError(f"{path}: first column must be 'mol_id' (gdb9.sdf.csv format), "
                             f"got header {cols}")
        rows: dict[str, tuple[int, dict[str, float]]] = {}
        for i, row in enumerate(reader):
            mol_id = row["mol_id"].strip()
            if mol_id in rows:
                raise ValueError(f"{path}: duplicate mol_id {mol_id!r} (rows {rows[mol_id][0]} "
                                 f"and {i})")
            try:
                props = {k: float(row[k]) for k in cols[1:]}
            except (TypeError, ValueError):
                bad = {k: row[k] for k in cols[1:] if not _is_float(row[k])}
                raise ValueError(f"{path}: row {i} ({mol_id!r}) has non-numeric or missing "
                                 f"values {bad}") from None
            rows[mol_id] = (i, props)
    return rows


def _is_float(x: object) -> bool:
    try:
        float(x)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def load_gdb9(sdf_path: str | os.PathLike, csv_path: str | os.PathLike, *,
              limit: int | None = None, on_error: str = "record") -> QM9Dataset:
    """Load ``gdb9.sdf`` + ``gdb9.sdf.csv`` (MoleculeNet/PyG raw QM9), matched by ``mol_id``.

    Failures (recorded, or raised with ``on_error="raise"``): an SDF record RDKit cannot read,
    one whose title has no CSV row, one RDKit cannot sanitise (no SMILES), and, when the whole
    SDF was read (``limit=None``), a CSV row without an SDF record. A malformed CSV (wrong
    header, duplicate id, non-numeric value) raises ``ValueError``. ``limit``: read only the
    first SDF records. The SMILES is RDKit's canonical isomeric SMILES of the sanitised record
    (hydrogens implicit); the 3,054 "uncharacterized" molecules are not removed here.
    """
    check_on_error(on_error)
    sdf_path, csv_path = Path(sdf_path), Path(csv_path)
    rows = _read_gdb9_csv(csv_path)
    out = QM9Dataset([], [], {k: v for k, v in GDB9_UNITS.items()})
    seen: set[str] = set()
    suppl = Chem.SDMolSupplier(str(sdf_path), removeHs=False, sanitize=False)
    n = len(suppl) if limit is None else min(limit, len(suppl))
    for i in range(n):
        with rdBase.BlockLogs():
            mol = suppl[i]
        title = suppl.GetItemText(i).split("\n", 1)[0].strip()
        where = f"{sdf_path.name}:{title or i}"
        if mol is None or mol.GetNumConformers() == 0:
            _fail(out, on_error, Failure(i, None, "RDKit could not read the SDF record", where))
            continue
        if title not in rows:
            _fail(out, on_error, Failure(i, None, f"SDF record {title!r} has no row in "
                                                  f"{csv_path.name}", where))
            continue
        seen.add(title)
        try:
            clean = Chem.Mol(mol)
            with rdBase.BlockLogs():
                Chem.SanitizeMol(clean)
            smiles = Chem.MolToSmiles(Chem.RemoveHs(clean))
        except Exception as exc:  # RDKit sanitisation exceptions
            _fail(out, on_error, Failure(i, None, f"RDKit sanitisation failed: {exc}", where))
            continue
        out.molecules.append(QM9Molecule(
            mol_id=title, smiles=smiles,
            atomic_numbers=np.asarray([a.GetAtomicNum() for a in mol.GetAtoms()], np.int64),
            positions=np.asarray(mol.GetConformer().GetPositions(), np.float64),
            properties=dict(rows[title][1]), mol=mol))
    if limit is None:
        for mol_id, (row_i, _) in rows.items():
            if mol_id not in seen:
                _fail(out, on_error, Failure(row_i, None, f"CSV row {mol_id!r} has no record in "
                                                          f"{sdf_path.name}", csv_path.name))
    return out


def qm9pack_csv_paths() -> list[Path]:
    """The three molecule CSVs of the installed ``qm9pack`` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the QM9 CSVs ship in the 'qm9pack' wheel, which is not "
                                  "installed; install it with `pip install qm9pack`")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    paths = [data / f"qm9_part{k}.csv" for k in (1, 2, 3)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"qm9pack data file(s) missing: {missing}; reinstall qm9pack")
    return paths


def _parse_elements(text: str) -> list[str]:
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise ValueError(f"Elements {text[:40]!r} is not a bracketed list")
    return [s.strip().strip("'\"") for s in inner[1:-1].split(",") if s.strip()]


_BARE_POINT = re.compile(r"(?<=\d)\.(?=[,\]\s])")  # "0." / "1." as written by the QM9 files


def _parse_xyz(text: str) -> np.ndarray:
    """``"[[x,y,z],...]"`` (numbers may be written ``1.`` or ``1.2*^-6``) -> ``(n, 3)`` array."""
    fixed = _BARE_POINT.sub(".0", text.replace("*^", "e"))
    try:
        pos = np.asarray(json.loads(fixed), np.float64)
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValueError(f"XYZ_Ang is not a list of [x, y, z]: {exc}: {text[:60]!r}") from None
    if pos.ndim != 2 or pos.shape[1:] != (3,):
        raise ValueError(f"XYZ_Ang has shape {pos.shape}, expected (n_atoms, 3)")
    return pos


def _qm9pack_row(row: dict[str, str]) -> QM9Molecule:
    missing = [k for k in QM9PACK_REQUIRED if k not in row or row[k] is None]
    if missing:
        raise ValueError(f"missing column(s) {missing}")
    symbols = _parse_elements(row["Elements"])
    unknown = [s for s in symbols if s not in _Z]
    if unknown:
        raise ValueError(f"unknown element symbol(s) {unknown} in Elements {symbols}")
    z = np.asarray([_Z[s] for s in symbols], np.int64)
    pos = _parse_xyz(row["XYZ_Ang"])
    n_atoms = int(row["N_atoms"])
    if pos.shape != (n_atoms, 3) or len(z) != n_atoms:
        raise ValueError(f"N_atoms={n_atoms} but {len(z)} elements and XYZ_Ang of shape "
                         f"{pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("non-finite coordinates")
    props = {k: float(row[k]) for k in QM9PACK_PROPERTIES if k in row and _is_float(row[k])}
    return QM9Molecule(mol_id=row["XYZ_file"].strip().removesuffix(".xyz"),
                       smiles=row["SMILES"].strip(), atomic_numbers=z, positions=pos,
                       properties=props)


def load_qm9pack(paths: Sequence[str | os.PathLike] | None = None, *, limit: int | None = None,
                 on_error: str = "record") -> QM9Dataset:
    """Load QM9 from ``qm9pack``-format CSVs (default: the installed wheel's three parts).

    A row with missing columns, unparsable ``Elements``/``XYZ_Ang`` or an atom count that does not
    match ``N_atoms`` is a failure (index = row number over all files, ``where`` = file:mol).
    SMILES are returned as written in the file. ``limit``: read at most this many rows.
    Property units are in the column names (``_au`` = Hartree, ``_debye``, ``_GHz``, ...).
    """
    check_on_error(on_error)
    paths = qm9pack_csv_paths() if paths is None else [Path(p) for p in paths]
    out = QM9Dataset([], [], dict(QM9PACK_UNITS))
    k = 0
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            absent = [c for c in QM9PACK_REQUIRED if c not in (reader.fieldnames or ())]
            if absent:
                raise ValueError(f"{path}: not a qm9pack CSV, missing column(s) {absent}")
            for row in reader:
                if limit is not None and k >= limit:
                    return out
                try:
                    out.molecules.append(_qm9pack_row(row))
                except (ValueError, TypeError) as exc:
                    smi = row.get("SMILES")
                    _fail(out, on_error, Failure(k, smi, str(exc),
                                                 f"{Path(path).name}:{row.get('XYZ_file')}"))
                k += 1
    return out
