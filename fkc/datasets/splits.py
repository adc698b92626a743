"""Deterministic Bemis–Murcko scaffold splits (MoleculeNet / DeepChem convention).

Molecules are grouped by the canonical SMILES of their Bemis–Murcko scaffold (ring systems plus
the linkers between them, side chains removed; Bemis & Murcko 1996), computed on the heavy-atom
graph without stereochemistry. By default the scaffold is the *plain* one (atom and bond types
kept, as in DeepChem's ``ScaffoldSplitter``); ``generic=True`` uses the generic framework (all
atoms carbon, all bonds single), which merges e.g. benzene and pyridine scaffolds. Acyclic
molecules have the empty scaffold ``""`` and form one group.

Groups are then assigned whole, so no scaffold is shared between splits:

* ``order="largest_first"`` (default, MoleculeNet): groups sorted by (size, first index) in
  descending order; each group goes to train if train stays within ``fractions[0] * n``, else to
  validation if train + validation stay within ``(fractions[0] + fractions[1]) * n``, else to
  test. Deterministic; ``seed`` is not used. Rare scaffolds end up in validation and test.
* ``order="random"``: the same greedy filling over the groups in a seeded random order
  (``numpy.random.default_rng(seed)``), for repeated splits with different seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold

ORDERS = ("largest_first", "random")


def murcko_scaffold(mol_or_smiles: str | Chem.Mol, *, generic: bool = False) -> str:
    """Canonical SMILES of the Bemis–Murcko scaffold (``""`` for an acyclic molecule).

    Only parsing is checked here (no element or charge policy): a split is a bookkeeping step.
    """
    if isinstance(mol_or_smiles, str):
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(mol_or_smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            raise ValueError(f"invalid or empty SMILES {mol_or_smiles!r}")
    else:
        mol = Chem.RemoveHs(mol_or_smiles)
    core = MurckoScaffold.GetScaffoldForMol(mol)
    if generic and core.GetNumAtoms() > 0:
        core = MurckoScaffold.MakeScaffoldGeneric(core)
    return Chem.MolToSmiles(core, isomericSmiles=False) if core.GetNumAtoms() > 0 else ""


@dataclass(frozen=True)
class ScaffoldSplit:
    """Index arrays (int64, ascending) into the input list, and each molecule's scaffold."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    scaffolds: tuple[str, ...]


def scaffold_split(smiles: Sequence[str | Chem.Mol],
                   fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0, *,
                   generic: bool = False, order: str = "largest_first") -> ScaffoldSplit:
    """Split molecules into train/validation/test by scaffold (see the module docstring).

    ``smiles``: ``n`` SMILES strings or RDKit Mols. An entry that cannot be parsed raises
    ``ValueError`` naming its index (filter with :func:`~fkc.datasets.parse_molecules` first).
    Returns a :class:`ScaffoldSplit`; every index is in exactly one split.
    """
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, "
                         f"got {fractions}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    scaffolds = []
    for i, item in enumerate(smiles):
        try:
            scaffolds.append(murcko_scaffold(item, generic=generic))
        except ValueError as exc:
            raise ValueError(f"scaffold_split: molecule {i}: {exc}") from None
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scaffolds):
        groups.setdefault(s, []).append(i)
    sets = list(groups.values())
    if order == "largest_first":
        sets.sort(key=lambda g: (len(g), g[0]), reverse=True)
    else:
        sets = [sets[k] for k in np.random.default_rng(seed).permutation(len(sets))]
    n = len(scaffolds)
    train_cut, valid_cut = fr[0] * n, (fr[0] + fr[1]) * n
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for g in sets:
        if len(train) + len(g) <= train_cut:
            train += g
        elif len(train) + len(valid) + len(g) <= valid_cut:
            valid += g
        else:
            test += g

    def arr(x: list[int]) -> np.ndarray:
        return np.sort(np.asarray(x, dtype=np.int64))

    return ScaffoldSplit(arr(train), arr(valid), arr(test), tuple(scaffolds))
