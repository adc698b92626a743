"""GEOM conformer ensembles (Axelrod & Gómez-Bombarelli, Sci. Data 9, 185 (2022)).

Reads the published ``rdkit_folder`` layout (``rdkit_folder.tar.gz`` untarred)::

    rdkit_folder/summary_drugs.json     {smiles: {"pickle_path": "drugs/<name>.pickle",
                                                   "charge", "totalconfs", "uniqueconfs", ...}}
    rdkit_folder/summary_qm9.json       the same for GEOM-QM9
    rdkit_folder/drugs/<name>.pickle    one pickled dict per molecule

A molecule pickle is ``{"smiles": str, "conformers": [conf, ...], "totalconfs", "uniqueconfs",
"temperature", "lowestenergy", "poplowestpct", "ensembleenergy", "ensembleentropy",
"ensemblefreeenergy", "charge", ...}``; each ``conf`` is ``{"rd_mol": rdkit Mol with one
conformer and explicit hydrogens, "boltzmannweight": float, "totalenergy": float (Hartree,
GFN2-xTB), "relativeenergy": float (kcal/mol), "degeneracy": int, "conformerweights": [...],
"geom_id": int, "set": int}``. Summary entries without ``pickle_path`` exist in the published
files; they become failure records.

.. warning::
    The per-molecule files are Python pickles, and unpickling can execute code. They are read
    only when the caller passes ``trust_pickles=True`` for files from a source they trust (the
    official GEOM archive). Even then, a restricted unpickler refuses any global other than
    ``rdkit.Chem.rdchem.Mol`` and a few numpy/builtin reconstructors; such a file becomes a
    failure record naming the refused global.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem

from fkc.datasets._records import Failure, check_on_error

DATASETS = ("drugs", "qm9")
REQUIRED_MOL_KEYS = ("conformers",)
REQUIRED_CONF_KEYS = ("rd_mol", "boltzmannweight", "totalenergy")
_SCALAR_KEYS = ("totalconfs", "uniqueconfs", "temperature", "lowestenergy", "poplowestpct",
                "ensembleenergy", "ensembleentropy", "ensemblefreeenergy", "charge")

_ALLOWED_GLOBALS = frozenset({
    ("rdkit.Chem.rdchem", "Mol"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles
    ("builtins", "set"), ("builtins", "frozenset"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (not an RDKit Mol or "
                                         f"a numpy/builtin value)")
        return super().find_class(module, name)


_TRUST_MSG = ("GEOM molecule files are pickles, which can run code when loaded; pass "
              "trust_pickles=True only for files from a trusted source (the official GEOM "
              "rdkit_folder archive)")


@dataclass
class GeomMolecule:
    """One GEOM molecule with its kept conformers (``n_confs`` of them, ``n_atoms`` atoms).

    ``mol``: RDKit Mol with explicit hydrogens and conformers ``0..n_confs-1``;
    ``positions``: ``(n_confs, n_atoms, 3)`` float64, angstrom; ``atomic_numbers``: ``(n_atoms,)``;
    ``boltzmann_weights``: ``(n_confs,)`` as published (they sum to about 1 over all published
    conformers, less if some were dropped; not renormalised); ``total_energies``: ``(n_confs,)``
    Hartree (GFN2-xTB); ``relative_energies``: ``(n_confs,)`` kcal/mol (NaN if absent);
    ``degeneracies``/``geom_ids``: ``(n_confs,)`` int64 (-1 if absent); ``properties``: the
    molecule-level scalars of the pickle (``totalconfs``, ``temperature`` in K, ``charge``, ...);
    ``dropped``: one message per published conformer that was not kept, with the reason.
    """

    key: str
    smiles: str
    mol: Chem.Mol
    positions: np.ndarray
    atomic_numbers: np.ndarray
    boltzmann_weights: np.ndarray
    total_energies: np.ndarray
    relative_energies: np.ndarray
    degeneracies: np.ndarray
    geom_ids: np.ndarray
    properties: dict
    dropped: list[str]
    source: str


@dataclass
class GeomDataset:
    """Loaded molecules plus one :class:`Failure` per summary entry that could not be loaded."""

    molecules: list[GeomMolecule]
    failures: list[Failure] = field(default_factory=list)


def read_geom_summary(path: str | os.PathLike) -> dict[str, dict]:
    """The summary JSON (``summary_drugs.json``): ``{smiles: {"pickle_path": ..., ...}}``."""
    with open(path, encoding="utf-8") as f:
        summary = json.load(f)
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by SMILES, "
                         f"got {type(summary).__name__}")
    return summary


def _graph(mol: Chem.Mol) -> tuple[tuple[int, ...], frozenset]:
    z = tuple(a.GetAtomicNum() for a in mol.GetAtoms())
    bonds = frozenset((min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
                       max(b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in mol.GetBonds())
    return z, bonds


def geom_molecule_from_dict(data: object, *, key: str, source: str = "",
                            max_conformers: int | None = None) -> GeomMolecule:
    """Build a :class:`GeomMolecule` from an unpickled GEOM dict; ``ValueError`` if malformed.

    Conformers are kept in file order; one whose ``rd_mol`` is missing, has no 3-D conformer,
    non-finite coordinates, or whose elements or bonds differ from the first kept conformer
    (GEOM has a few isomerised geometries) is dropped and listed in ``dropped``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a dict, got {type(data).__name__}")
    missing = [k for k in REQUIRED_MOL_KEYS if k not in data]
    if missing:
        raise ValueError(f"missing key(s) {missing}; keys present: {sorted(map(str, data))}")
    confs = data["conformers"]
    if not isinstance(confs, list) or not confs:
        raise ValueError("'conformers' is empty or not a list")
    kept, dropped = [], []
    ref = None
    for i, conf in enumerate(confs):
        if not isinstance(conf, dict):
            dropped.append(f"conformer {i}: not a dict ({type(conf).__name__})")
            continue
        miss = [k for k in REQUIRED_CONF_KEYS if k not in conf]
        if miss:
            dropped.append(f"conformer {i}: missing key(s) {miss}")
            continue
        m = conf["rd_mol"]
        if not isinstance(m, Chem.Mol) or m.GetNumConformers() == 0:
            dropped.append(f"conformer {i}: 'rd_mol' is not an RDKit Mol with a conformer")
            continue
        pos = m.GetConformer().GetPositions()
        if not np.all(np.isfinite(pos)):
            dropped.append(f"conformer {i}: non-finite coordinates")
            continue
        if ref is None:
            ref = _graph(m)
        elif _graph(m) != ref:
            dropped.append(f"conformer {i}: atoms or bonds differ from the first kept conformer")
            continue
        kept.append((conf, m, pos))
        if max_conformers is not None and len(kept) >= max_conformers:
            break
    if not kept:
        raise ValueError(f"no usable conformer among {len(confs)}: {'; '.join(dropped[:3])}")
    mol = Chem.Mol(kept[0][1])
    mol.RemoveAllConformers()
    for _, m, _ in kept:
        mol.AddConformer(Chem.Conformer(m.GetConformer()), assignId=True)

    def col(name: str, default: float, dtype) -> np.ndarray:
        return np.asarray([c.get(name, default) for c, _, _ in kept], dtype=dtype)

    try:
        columns = dict(boltzmann_weights=col("boltzmannweight", np.nan, np.float64),
                       total_energies=col("totalenergy", np.nan, np.float64),
                       relative_energies=col("relativeenergy", np.nan, np.float64),
                       degeneracies=col("degeneracy", -1, np.int64),
                       geom_ids=col("geom_id", -1, np.int64))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"non-numeric conformer value (boltzmannweight, totalenergy, "
                         f"relativeenergy, degeneracy or geom_id): {exc}") from None
    return GeomMolecule(
        key=key, smiles=str(data.get("smiles", key)), mol=mol,
        positions=np.stack([p for _, _, p in kept]).astype(np.float64),
        atomic_numbers=np.asarray(ref[0], dtype=np.int64), **columns,
        properties={k: data[k] for k in _SCALAR_KEYS if k in data},
        dropped=dropped, source=source)


def load_geom_pickle(path: str | os.PathLike, *, trust_pickles: bool = False,
                     key: str | None = None, max_conformers: int | None = None) -> GeomMolecule:
    """Load one GEOM molecule pickle (see the module warning; requires ``trust_pickles=True``).

    Raises ``ValueError`` for an unreadable, corrupt or malformed file, naming the path.
    """
    if trust_pickles is not True:
        raise ValueError(_TRUST_MSG)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f).load()
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
            IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot unpickle: {type(exc).__name__}: {exc}") from None
    try:
        return geom_molecule_from_dict(data, key=key or path.stem, source=str(path),
                                       max_conformers=max_conformers)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_geom(rdkit_folder: str | os.PathLike, dataset: str = "drugs", *,
              trust_pickles: bool = False, smiles: list[str] | None = None,
              limit: int | None = None, max_conformers: int | None = None,
              on_error: str = "record") -> GeomDataset:
    """Load GEOM molecules listed in ``<rdkit_folder>/summary_<dataset>.json``.

    ``trust_pickles`` must be ``True`` (see the module warning). ``smiles``: only these summary
    keys (a key absent from the summary is a failure), in that order; else all, in file order.
    ``limit``: at most this many summary entries. ``max_conformers``: keep the first conformers
    of each molecule (GEOM lists them by increasing energy). ``on_error="record"`` turns a bad
    entry (no ``pickle_path``, missing or corrupt file, missing keys, path outside the folder)
    into a :class:`Failure`; ``"raise"`` raises ``ValueError`` at the first one.
    """
    if trust_pickles is not True:
        raise ValueError(_TRUST_MSG)
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    check_on_error(on_error)
    root = Path(rdkit_folder)
    summary = read_geom_summary(root / f"summary_{dataset}.json")
    keys = list(summary) if smiles is None else list(smiles)
    if limit is not None:
        keys = keys[:limit]
    out = GeomDataset([], [])
    root_resolved = root.resolve()
    for i, key in enumerate(keys):
        try:
            entry = summary.get(key)
            if entry is None:
                raise ValueError("not in the summary file")
            rel = entry.get("pickle_path") if isinstance(entry, dict) else None
            if not rel:
                raise ValueError("summary entry has no 'pickle_path' (GEOM lists some molecules "
                                 "without conformer files)")
            path = (root / rel).resolve()
            if root_resolved not in path.parents:
                raise ValueError(f"pickle_path {rel!r} points outside {root}")
            out.molecules.append(load_geom_pickle(path, trust_pickles=True, key=key,
                                                  max_conformers=max_conformers))
        except ValueError as exc:
            if on_error == "raise":
                raise ValueError(f"GEOM {dataset} entry {i} ({key!r}): {exc}") from None
            out.failures.append(Failure(i, key, str(exc), where=f"summary_{dataset}.json"))
    return out
