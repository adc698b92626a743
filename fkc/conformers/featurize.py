"""The molecular graph of a drug-like molecule as network input (atoms, bonds, features).

A conformer model is conditioned on the chemical graph *with hydrogens*. Every atom gets

- a type: its element's index in :data:`ELEMENTS` (``n_atom_types = 10``);
- features ``(n_atoms, ATOM_FEATURE_DIM)``: degree one-hot (0..5), aromatic, hybridisation
  one-hot (sp, sp2, sp3; others all zero), formal charge one-hot (-1, 0, +1), in a ring, number
  of attached hydrogens one-hot (0..3), CIP label one-hot (R, S) and the atom's CIP rank scaled
  to [0, 1] within the molecule.

CIP labels and ranks are the only graph features that say which mirror image a stereocentre
must take: ``R``/``S`` fixes the handedness of the centre's neighbours ordered by CIP rank, so a
chirality-aware (SE(3), not E(3)) network can learn it from these two inputs.

Bonds are typed single/double/triple/aromatic (:data:`BOND_TYPES`); both directions are listed.
"""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem

from fkc.datasets.smiles import SUPPORTED_ELEMENTS, mol_label

ELEMENTS: tuple[str, ...] = SUPPORTED_ELEMENTS
BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE,
              Chem.BondType.AROMATIC)
_HYBRID = (Chem.HybridizationType.SP, Chem.HybridizationType.SP2, Chem.HybridizationType.SP3)
_CHARGES = (-1, 0, 1)
ATOM_FEATURE_DIM = 6 + 1 + 3 + 3 + 1 + 4 + 2 + 1
N_ATOM_TYPES = len(ELEMENTS)
N_BOND_TYPES = len(BOND_TYPES)


def _one_hot(value, choices) -> list[float]:
    return [1.0 if value == c else 0.0 for c in choices]


def atom_arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """``(atom_types (n_atoms,) int64, atom_features (n_atoms, ATOM_FEATURE_DIM) float32)``.

    ``mol`` must carry explicit hydrogens; raises ``ValueError`` naming the molecule for an
    unsupported element, a formal charge outside [-1, 1] or implicit hydrogens.
    """
    label = mol_label(mol)
    implicit = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumImplicitHs() > 0]
    if implicit:
        raise ValueError(f"molecule {label!r} has implicit hydrogens on atom(s) {implicit[:5]}; "
                         "the conformer model needs explicit hydrogens (Chem.AddHs)")
    m = Chem.Mol(mol)
    Chem.AssignStereochemistry(m, cleanIt=True, force=True)
    ranks = np.array([int(a.GetProp("_CIPRank")) if a.HasProp("_CIPRank") else 0
                      for a in m.GetAtoms()], dtype=np.float64)
    ranks = ranks / max(1.0, ranks.max())
    types, feats = [], []
    for a, r in zip(m.GetAtoms(), ranks, strict=True):
        sym = a.GetSymbol()
        if sym not in ELEMENTS:
            raise ValueError(f"molecule {label!r}: element {sym} (atom {a.GetIdx()}) is not "
                             f"supported; supported: {', '.join(ELEMENTS)}")
        q = a.GetFormalCharge()
        if q not in _CHARGES:
            raise ValueError(f"molecule {label!r}: formal charge {q:+d} on atom {a.GetIdx()} "
                             "is outside the supported range [-1, +1]")
        cip = a.GetProp("_CIPCode") if a.HasProp("_CIPCode") else ""
        types.append(ELEMENTS.index(sym))
        feats.append(
            _one_hot(min(a.GetDegree(), 5), range(6)) + [float(a.GetIsAromatic())]
            + _one_hot(a.GetHybridization(), _HYBRID) + _one_hot(q, _CHARGES)
            + [float(a.IsInRing())] + _one_hot(min(a.GetTotalNumHs(), 3), range(4))
            + _one_hot(cip, ("R", "S")) + [float(r)]
        )
    return np.asarray(types, np.int64), np.asarray(feats, np.float32)


def bond_arrays(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """``(edge_index (2, 2 n_bonds) int64, bond_types (2 n_bonds,) int64)``, both directions."""
    rows, types = [], []
    for b in mol.GetBonds():
        bt = b.GetBondType()
        if bt not in BOND_TYPES:
            raise ValueError(f"molecule {mol_label(mol)!r}: bond {b.GetIdx()} has unsupported "
                             f"type {bt}")
        i, j, k = b.GetBeginAtomIdx(), b.GetEndAtomIdx(), BOND_TYPES.index(bt)
        rows += [(i, j), (j, i)]
        types += [k, k]
    ei = np.asarray(rows, np.int64).reshape(-1, 2).T.copy()
    return ei, np.asarray(types, np.int64)


def mol_graph(mol: Chem.Mol, *, dtype: torch.dtype = torch.float32):
    """The :class:`fkc.models.MolecularGraph` of ``mol`` (explicit hydrogens)."""
    from fkc.models.graph import MolecularGraph

    types, feats = atom_arrays(mol)
    ei, bt = bond_arrays(mol)
    return MolecularGraph(torch.from_numpy(types), torch.from_numpy(ei), torch.from_numpy(bt),
                          torch.from_numpy(feats).to(dtype))
