"""Molecule datasets: parsing and validation, scaffold splits, offline sources, GEOM and QM9.

Public API:
    Failure (per-molecule failure record)
    smiles: SUPPORTED_ELEMENTS, MoleculePolicy, mol_from_smiles, as_mol, validate_mol,
        parse_molecules, embed_etkdg, embed_molecules, EmbeddingError
    splits: murcko_scaffold, scaffold_split, ScaffoldSplit
    sources: MoleculeSet, SOURCES, load_source, cdk2, egfr, nci_first_5k, moses, read_smi,
        read_sdf_smiles
    geom (opt-in pickles: trust_pickles=True): load_geom, load_geom_pickle, read_geom_summary,
        GeomMolecule, GeomDataset
    qm9: load_gdb9 (gdb9.sdf + gdb9.sdf.csv), load_qm9pack, qm9pack_csv_paths, QM9Molecule,
        QM9Dataset
"""

from fkc.datasets._records import Failure
from fkc.datasets.geom import (
    GeomDataset,
    GeomMolecule,
    load_geom,
    load_geom_pickle,
    read_geom_summary,
)
from fkc.datasets.qm9 import QM9Dataset, QM9Molecule, load_gdb9, load_qm9pack, qm9pack_csv_paths
from fkc.datasets.smiles import (
    SUPPORTED_ELEMENTS,
    EmbeddingError,
    MoleculePolicy,
    as_mol,
    embed_etkdg,
    embed_molecules,
    mol_from_smiles,
    parse_molecules,
    validate_mol,
)
from fkc.datasets.sources import (
    SOURCES,
    MoleculeSet,
    cdk2,
    egfr,
    load_source,
    moses,
    nci_first_5k,
    read_sdf_smiles,
    read_smi,
)
from fkc.datasets.splits import ScaffoldSplit, murcko_scaffold, scaffold_split

__all__ = [
    "Failure",
    "SUPPORTED_ELEMENTS",
    "EmbeddingError",
    "MoleculePolicy",
    "as_mol",
    "embed_etkdg",
    "embed_molecules",
    "mol_from_smiles",
    "parse_molecules",
    "validate_mol",
    "ScaffoldSplit",
    "murcko_scaffold",
    "scaffold_split",
    "SOURCES",
    "MoleculeSet",
    "cdk2",
    "egfr",
    "load_source",
    "moses",
    "nci_first_5k",
    "read_sdf_smiles",
    "read_smi",
    "GeomDataset",
    "GeomMolecule",
    "load_geom",
    "load_geom_pickle",
    "read_geom_summary",
    "QM9Dataset",
    "QM9Molecule",
    "load_gdb9",
    "load_qm9pack",
    "qm9pack_csv_paths",
]
