"""Random molecular graphs for tests."""

from __future__ import annotations

import torch

from fkc.models.graph import MolecularGraph


def random_molecular_graph(
    n_atoms: int,
    *,
    n_atom_types: int,
    n_bond_types: int = 0,
    n_extra_bonds: int = 0,
    atom_feature_dim: int = 0,
    generator: torch.Generator | None = None,
) -> MolecularGraph:
    """A random connected molecular graph.

    Atom types uniform in ``[0, n_atom_types)``; if ``n_bond_types > 0``, bonds form a random tree
    (atom ``k`` bonds to a uniform earlier atom) plus up to ``n_extra_bonds`` random extra pairs
    (duplicates of tree bonds are dropped), with uniform bond types; ``atom_feature_dim > 0`` adds
    Gaussian float64 atom features. Returns a :class:`fkc.models.MolecularGraph`.
    """
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be >= 1, got {n_atoms}")
    types = torch.randint(0, n_atom_types, (n_atoms,), generator=generator)
    feats = (
        torch.randn(n_atoms, atom_feature_dim, generator=generator, dtype=torch.float64)
        if atom_feature_dim > 0
        else None
    )
    if n_bond_types == 0 or n_atoms < 2:
        return MolecularGraph(types, atom_features=feats)
    k = torch.arange(1, n_atoms)
    parent = (torch.rand(n_atoms - 1, generator=generator, dtype=torch.float64) * k).long()
    src, dst = [k], [parent]
    if n_extra_bonds > 0:
        a = torch.randint(0, n_atoms, (n_extra_bonds,), generator=generator)
        b = torch.randint(0, n_atoms, (n_extra_bonds,), generator=generator)
        src.append(a)
        dst.append(b)
    ei = torch.stack([torch.cat(src), torch.cat(dst)])
    ei = ei[:, ei[0] != ei[1]]
    key = torch.minimum(ei[0], ei[1]) * n_atoms + torch.maximum(ei[0], ei[1])
    key = torch.unique(key)
    ei = torch.stack([key // n_atoms, key % n_atoms])
    bt = torch.randint(0, n_bond_types, (ei.shape[1],), generator=generator)
    return MolecularGraph(types, ei, bt, feats)
