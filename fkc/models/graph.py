"""Molecular graphs and the flat (PyG-style) batch the networks run on.

Two ways to feed a network:

* **fixed graph** (sampling): ``pos: (n_particles, n_atoms, 3)`` plus one :class:`MolecularGraph`
  shared by all particles. :func:`batch_fixed_graph` turns this into a flat batch without Python
  loops over particles.
* **flat batch** (training, mixed molecule sizes): ``pos: (N_total, 3)``, ``batch: (N_total,)``
  (graph index of every atom, non-decreasing as in PyG), ``atom_types: (N_total,)``, bonds
  ``edge_index: (2, n_bonds_total)`` with global atom indices and ``bond_types: (n_bonds_total,)``.

Bonds are undirected: give each bond once (either direction) or twice (both directions, same type).
Message-passing edges are built separately (:func:`complete_graph`, :func:`radius_graph`) in plain
torch: every pair of atoms in the same molecule is enumerated, so memory is
``O(sum_g n_g^2)``; this suits molecules up to a few hundred atoms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "MolecularGraph",
    "FlatBatch",
    "batch_fixed_graph",
    "complete_graph",
    "radius_graph",
    "bond_lookup",
]


@dataclass(frozen=True)
class MolecularGraph:
    """The chemical graph of one molecule, shared by all particles of a sampler.

    atom_types: ``(n_atoms,)`` long, values in ``[0, n_atom_types)``.
    edge_index: ``(2, n_bonds)`` long bond list (atom indices in ``[0, n_atoms)``) or ``None``.
    bond_types: ``(n_bonds,)`` long, values in ``[0, n_bond_types)``, or ``None`` (required when
        ``edge_index`` is given).
    atom_features: optional ``(n_atoms, atom_feature_dim)`` float per-atom features (charges,
        ...), used in addition to the atom types by networks with ``atom_feature_dim > 0``.
    """

    atom_types: torch.Tensor
    edge_index: torch.Tensor | None = None
    bond_types: torch.Tensor | None = None
    atom_features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        at = self.atom_types
        if not isinstance(at, torch.Tensor) or at.dim() != 1 or at.dtype != torch.long:
            raise ValueError(
                f"atom_types must be a 1-d long tensor (n_atoms,), got {_describe(at)}"
            )
        n = at.shape[0]
        if n < 1:
            raise ValueError("a MolecularGraph needs at least one atom, got n_atoms=0")
        if (self.edge_index is None) != (self.bond_types is None):
            raise ValueError(
                "edge_index and bond_types must be given together, got edge_index="
                f"{_describe(self.edge_index)} and bond_types={_describe(self.bond_types)}"
            )
        if self.edge_index is not None:
            ei, bt = self.edge_index, self.bond_types
            if ei.dtype != torch.long or ei.dim() != 2 or ei.shape[0] != 2:
                raise ValueError(
                    f"edge_index must be a (2, n_bonds) long tensor, got {_describe(ei)}"
                )
            if bt.dtype != torch.long or bt.shape != (ei.shape[1],):
                raise ValueError(
                    f"bond_types must be a ({ei.shape[1]},) long tensor to match edge_index, "
                    f"got {_describe(bt)}"
                )
            if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
                raise ValueError(
                    f"edge_index values must lie in [0, {n}) for n_atoms={n}, got range "
                    f"[{int(ei.min())}, {int(ei.max())}]"
                )
            if bool((ei[0] == ei[1]).any()):
                bad = int((ei[0] == ei[1]).nonzero()[0, 0])
                raise ValueError(
                    f"edge_index contains a self-bond at column {bad}: atom {int(ei[0, bad])}"
                )
        if self.atom_features is not None:
            af = self.atom_features
            if af.dim() != 2 or af.shape[0] != n or not af.is_floating_point():
                raise ValueError(
                    f"atom_features must be a float tensor ({n}, atom_feature_dim), got "
                    f"{_describe(af)}"
                )

    @property
    def n_atoms(self) -> int:
        return self.atom_types.shape[0]

    @property
    def n_bonds(self) -> int:
        return 0 if self.edge_index is None else self.edge_index.shape[1]

    def permute(self, perm: torch.Tensor) -> MolecularGraph:
        """Relabel atoms: new atom ``k`` is old atom ``perm[k]``.

        perm: ``(n_atoms,)`` long permutation. Atom types/features are gathered, bond endpoints are
        mapped through the inverse permutation, so ``pos[..., perm, :]`` with the returned graph
        describes the same molecule.
        """
        n = self.n_atoms
        if perm.shape != (n,) or not torch.equal(
            torch.sort(perm).values, torch.arange(n, device=perm.device)
        ):
            raise ValueError(f"perm must be a permutation of range({n}), got {_describe(perm)}")
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(n, device=perm.device)
        return MolecularGraph(
            atom_types=self.atom_types[perm],
            edge_index=None if self.edge_index is None else inv[self.edge_index],
            bond_types=self.bond_types,
            atom_features=None if self.atom_features is None else self.atom_features[perm],
        )

    def to(self, device: torch.device | str) -> MolecularGraph:
        def mv(x):
            return None if x is None else x.to(device)

        return MolecularGraph(
            mv(self.atom_types), mv(self.edge_index), mv(self.bond_types), mv(self.atom_features)
        )


@dataclass(frozen=True)
class FlatBatch:
    """A flat batch of molecules (PyG layout).

    pos: ``(N_total, 3)``; batch: ``(N_total,)`` non-decreasing graph index; atom_types:
    ``(N_total,)``; edge_index: ``(2, n_bonds_total)`` global bond list or ``None``; bond_types:
    ``(n_bonds_total,)`` or ``None``; atom_features: ``(N_total, f)`` or ``None``; num_graphs: G.
    """

    pos: torch.Tensor
    batch: torch.Tensor
    atom_types: torch.Tensor
    edge_index: torch.Tensor | None
    bond_types: torch.Tensor | None
    atom_features: torch.Tensor | None
    num_graphs: int


def batch_fixed_graph(pos: torch.Tensor, graph: MolecularGraph) -> FlatBatch:
    """Flatten ``pos: (n_particles, n_atoms, 3)`` sharing one ``graph`` into a :class:`FlatBatch`.

    Vectorised (no loop over particles): particle ``b`` occupies rows
    ``b*n_atoms ... (b+1)*n_atoms-1`` of the flat arrays, and bond ``(i, j)`` of particle ``b``
    becomes ``(i + b*n_atoms, j + b*n_atoms)``.
    """
    if pos.dim() != 3 or pos.shape[-1] != 3:
        raise ValueError(f"pos must have shape (n_particles, n_atoms, 3), got {tuple(pos.shape)}")
    b, n, _ = pos.shape
    if n != graph.n_atoms:
        raise ValueError(
            f"pos has n_atoms={n} but the graph has n_atoms={graph.n_atoms} "
            f"(pos shape {tuple(pos.shape)})"
        )
    device = pos.device
    batch = torch.arange(b, device=device).repeat_interleave(n)
    atom_types = graph.atom_types.to(device).repeat(b)
    edge_index = bond_types = None
    if graph.edge_index is not None and graph.n_bonds > 0:
        offsets = (torch.arange(b, device=device) * n).repeat_interleave(graph.n_bonds)
        edge_index = graph.edge_index.to(device).repeat(1, b) + offsets
        bond_types = graph.bond_types.to(device).repeat(b)
    atom_features = None
    if graph.atom_features is not None:
        atom_features = graph.atom_features.to(device=device, dtype=pos.dtype).repeat(b, 1)
    return FlatBatch(
        pos=pos.reshape(b * n, 3),
        batch=batch,
        atom_types=atom_types,
        edge_index=edge_index,
        bond_types=bond_types,
        atom_features=atom_features,
        num_graphs=b,
    )


def complete_graph(batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """All ordered pairs ``(j -> i)``, ``i != j``, of atoms in the same molecule.

    batch: ``(N_total,)`` non-decreasing graph index. Returns ``edge_index: (2, E)`` with
    ``E = sum_g n_g (n_g - 1)``, row 0 the source ``j`` and row 1 the target ``i`` (PyG's
    ``source_to_target`` flow). Built with ``repeat_interleave`` arithmetic, no Python loop.
    """
    device = batch.device
    counts = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
    ptr[1:] = torch.cumsum(counts, 0)
    n2 = counts * counts
    pair_ptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
    pair_ptr[1:] = torch.cumsum(n2, 0)
    total = int(pair_ptr[-1])
    gid = torch.repeat_interleave(torch.arange(num_graphs, device=device), n2, output_size=total)
    k = torch.arange(total, device=device) - pair_ptr[gid]
    n = counts[gid]
    i = torch.div(k, n, rounding_mode="floor")
    j = k - i * n
    keep = i != j
    base = ptr[gid]
    return torch.stack([(base + j)[keep], (base + i)[keep]])


def bond_lookup(
    edge_index: torch.Tensor,
    bond_index: torch.Tensor | None,
    bond_types: torch.Tensor | None,
    num_nodes: int,
) -> torch.Tensor:
    """Bond type of every message edge: ``0`` = not bonded, ``1 + bond_type`` = bonded.

    edge_index: ``(2, E)`` message edges; bond_index: ``(2, n_bonds)`` (undirected, each bond in
    either direction); bond_types: ``(n_bonds,)``. Returns ``(E,)`` long. Uses a sorted key table
    and ``searchsorted`` (``O(E log n_bonds)``), no dense adjacency matrix.
    """
    out = torch.zeros(edge_index.shape[1], dtype=torch.long, device=edge_index.device)
    if bond_index is None or bond_index.shape[1] == 0 or edge_index.shape[1] == 0:
        return out
    both = torch.cat([bond_index, bond_index.flip(0)], dim=1)
    keys = both[0] * num_nodes + both[1]
    vals = torch.cat([bond_types, bond_types]) + 1
    keys, order = torch.sort(keys)
    vals = vals[order]
    q = edge_index[0] * num_nodes + edge_index[1]
    pos = torch.searchsorted(keys, q).clamp_(max=keys.numel() - 1)  # index clamp, not a value clamp
    hit = keys[pos] == q
    out[hit] = vals[pos[hit]]
    return out


def radius_graph(
    pos: torch.Tensor,
    batch: torch.Tensor,
    num_graphs: int,
    cutoff: float,
    bond_index: torch.Tensor | None = None,
    bond_types: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs within ``cutoff`` in the same molecule, plus all bonded pairs.

    pos: ``(N_total, 3)``; batch: ``(N_total,)``. Returns ``(edge_index (2, E), edge_bond (E,))``
    with ``edge_bond`` as in :func:`bond_lookup`. Bonded pairs are kept whatever their distance,
    so the edge set changes only for non-bonded pairs crossing the cutoff (networks damp those
    edges with a smooth envelope). ``cutoff = inf`` gives the complete graph.
    """
    edge_index = complete_graph(batch, num_graphs)
    bond = bond_lookup(edge_index, bond_index, bond_types, pos.shape[0])
    if cutoff != float("inf"):
        d = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
        keep = (d < cutoff) | (bond > 0)
        edge_index, bond = edge_index[:, keep], bond[keep]
    return edge_index, bond


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
    return repr(x)
