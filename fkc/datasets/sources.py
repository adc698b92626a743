"""Molecule sets that ship offline inside installed wheels (nothing is downloaded).

======================  ===============================================================  =======
name                    file                                                             entries
======================  ===============================================================  =======
``"cdk2"``              ``RDConfig.RDContribDir/Fastcluster/testdata/cdk2.sdf``          47
``"egfr"``              ``RDConfig.RDContribDir/PBF/testData/egfr.sdf``                  365
``"nci_first_5k"``      ``RDConfig.RDDataDir/NCI/first_5K.smi`` (``SMILES<TAB>id``)      4999
``"moses_train"``       ``moses/dataset/data/train.csv.gz`` (molsets wheel, ``SMILES``)  1.58M
``"moses_test"``        ``moses/dataset/data/test.csv.gz``                               176k
``"moses_test_scaf"``   ``moses/dataset/data/test_scaffolds.csv.gz``                     176k
======================  ===============================================================  =======

The SDF sets (3-D ZINC structures with hydrogens) are turned into canonical isomeric SMILES
without explicit hydrogens; an SDF record RDKit cannot read becomes a :class:`Failure`. The
``.smi`` and MOSES sets return their SMILES strings as written, unparsed: validate them with
:func:`~fkc.datasets.parse_molecules`. The MOSES data need ``pip install --no-deps molsets``
(the wheel's own dependencies are only for its generative models; its package is never imported
here, only located).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from rdkit import Chem, RDConfig, rdBase

from fkc.datasets._records import Failure, check_on_error

MOSES_SPLITS = {"train": "train", "test": "test", "test_scaf": "test_scaffolds"}


@dataclass
class MoleculeSet:
    """SMILES with names from one source; ``smiles[k]`` is named ``names[k]``.

    ``source`` is the file read; ``failures`` lists the records that could not be read.
    """

    name: str
    source: str
    smiles: list[str]
    names: list[str]
    failures: list[Failure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.smiles)


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}; is the installed rdkit wheel "
                                f"complete (RDConfig.RDContribDir / RDDataDir)?")
    return path


def read_sdf_smiles(path: str | os.PathLike, *, name: str | None = None,
                    on_error: str = "record", limit: int | None = None) -> MoleculeSet:
    """Canonical SMILES (hydrogens implicit) and ``_Name`` titles of the records of an SDF."""
    check_on_error(on_error)
    path = Path(path)
    suppl = Chem.SDMolSupplier(str(path), removeHs=False)
    out = MoleculeSet(name or path.stem, str(path), [], [])
    for i in range(len(suppl)):
        if limit is not None and i >= limit:
            break
        with rdBase.BlockLogs():
            mol = suppl[i]
        title = suppl.GetItemText(i).split("\n", 1)[0].strip() or f"record{i}"
        smi = None
        if mol is not None:
            with rdBase.BlockLogs():
                smi = Chem.MolToSmiles(Chem.RemoveHs(mol))
        if not smi:
            msg = f"RDKit could not read SDF record {i} ({title!r})"
            if on_error == "raise":
                raise ValueError(f"{path}: {msg}")
            out.failures.append(Failure(i, None, msg, where=f"{path}:{title}"))
            continue
        out.smiles.append(smi)
        out.names.append(title)
    return out


def read_smi(path: str | os.PathLike, *, name: str | None = None, header: bool = False,
             limit: int | None = None) -> MoleculeSet:
    """A SMILES file: one ``SMILES [whitespace id]`` per line (blank lines skipped).

    Missing ids become ``"<stem>_<line number>"``.
    """
    path = Path(path)
    out = MoleculeSet(name or path.stem, str(path), [], [])
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if header and lineno == 1:
                continue
            if limit is not None and len(out) >= limit:
                break
            parts = line.split(maxsplit=1)
            if not parts:
                continue
            out.smiles.append(parts[0])
            out.names.append(parts[1].strip() if len(parts) > 1 else f"{path.stem}_{lineno}")
    return out


def cdk2(*, on_error: str = "record") -> MoleculeSet:
    """The 47 CDK2 ligands of RDKit's ``Contrib/Fastcluster/testdata/cdk2.sdf``."""
    path = Path(RDConfig.RDContribDir) / "Fastcluster" / "testdata" / "cdk2.sdf"
    return read_sdf_smiles(_existing(path, "cdk2.sdf"), name="cdk2", on_error=on_error)


def egfr(*, on_error: str = "record") -> MoleculeSet:
    """The 365 EGFR ligands of RDKit's ``Contrib/PBF/testData/egfr.sdf``."""
    path = Path(RDConfig.RDContribDir) / "PBF" / "testData" / "egfr.sdf"
    return read_sdf_smiles(_existing(path, "egfr.sdf"), name="egfr", on_error=on_error)


def nci_first_5k(*, limit: int | None = None) -> MoleculeSet:
    """The first 4999 NCI compounds of RDKit's ``Data/NCI/first_5K.smi`` (``SMILES<TAB>id``).

    Contains salts, charged species and metals: validate before use.
    """
    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    return read_smi(_existing(path, "first_5K.smi"), name="nci_first_5k", limit=limit)


def moses_data_dir() -> Path:
    """The folder of MOSES CSVs inside the installed ``molsets`` wheel (not imported)."""
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "MOSES SMILES ship in the 'molsets' wheel, which is not installed; install it with "
            "`pip install --no-deps molsets` (its dependencies are only needed for its models)")
    data = Path(list(spec.submodule_search_locations)[0]) / "dataset" / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"the installed 'moses' package has no data folder {data}; "
                                f"reinstall with `pip install --no-deps molsets`")
    return data


def moses(split: str = "test", *, limit: int | None = None) -> MoleculeSet:
    """MOSES SMILES (``split``: ``"train"``, ``"test"`` or ``"test_scaf"``), names
    ``moses_<split>_<row>``; ``limit`` reads only the first rows (train has 1.58M)."""
    if split not in MOSES_SPLITS:
        raise ValueError(f"MOSES split must be one of {tuple(MOSES_SPLITS)}, got {split!r}")
    path = moses_data_dir() / f"{MOSES_SPLITS[split]}.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"MOSES file {path} missing; reinstall molsets")
    out = MoleculeSet(f"moses_{split}", str(path), [], [])
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "SMILES" not in reader.fieldnames:
            raise ValueError(f"{path}: expected a 'SMILES' column, got {reader.fieldnames}")
        for row_i, row in enumerate(reader):
            if limit is not None and row_i >= limit:
                break
            out.smiles.append(row["SMILES"])
            out.names.append(f"moses_{split}_{row_i}")
    return out


SOURCES = {
    "cdk2": cdk2,
    "egfr": egfr,
    "nci_first_5k": nci_first_5k,
    "moses_train": lambda **kw: moses("train", **kw),
    "moses_test": lambda **kw: moses("test", **kw),
    "moses_test_scaf": lambda **kw: moses("test_scaf", **kw),
}


def load_source(name: str, **kwargs) -> MoleculeSet:
    """Load one of :data:`SOURCES` by name (keyword arguments go to its function)."""
    if name not in SOURCES:
        raise ValueError(f"unknown molecule source {name!r}; available: {sorted(SOURCES)}")
    return SOURCES[name](**kwargs)
