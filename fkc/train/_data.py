"""Training data: configurations of one molecule, or records of many molecules, and the flat
(PyG-style) batches the networks train on.

Both datasets return a :class:`GraphBatch` for a tensor of sample indices, built with vectorised
index arithmetic (no Python loop over molecules). Positions are centred (zero centre of mass per
molecule) when a dataset is built, in float64, then stored in the requested dtype.

Data order is a pure function of ``(seed, step)`` (:class:`EpochSampler`): epoch ``e`` visits the
samples in the order ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``; step ``k``
takes positions ``k B ... (k + 1) B - 1`` of the concatenated epochs. Resuming at step ``k``
therefore needs no saved sampler state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..models import MolecularGraph

__all__ = [
    "EpochSampler",
    "GraphBatch",
    "MoleculeDataset",
    "MoleculeRecord",
    "PointCloudDataset",
    "derive_seed",
]


def derive_seed(seed: int, *tags: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and tags (``numpy.random.SeedSequence``), so that the
    streams for weight init, data order, noise and dropout are independent."""
    ints = [int(seed)] + [
        int.from_bytes(t.encode(), "little") % (2**32) if isinstance(t, str) else int(t)
        for t in tags
    ]
    return int(np.random.SeedSequence(ints).generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class GraphBatch:
    """A flat batch of ``G`` molecules with ``N`` atoms in total.

    pos: ``(N, 3)`` CoM-free per molecule; batch: ``(N,)`` long, non-decreasing graph index;
    atom_types: ``(N,)`` long; edge_index: ``(2, n_bonds)`` global atom indices or None;
    bond_types: ``(n_bonds,)`` or None; atom_features: ``(N, f)`` or None; condition:
    ``(G, cond_dim)`` or None; n_atoms: ``(G,)`` long atoms per molecule; energy: ``(G,)``
    float64 potential energy per molecule (the data's unit) or None.
    """

    pos: torch.Tensor
    batch: torch.Tensor
    atom_types: torch.Tensor
    n_atoms: torch.Tensor
    edge_index: torch.Tensor | None = None
    bond_types: torch.Tensor | None = None
    atom_features: torch.Tensor | None = None
    condition: torch.Tensor | None = None
    energy: torch.Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return int(self.n_atoms.shape[0])

    def to(self, device: torch.device | str) -> GraphBatch:
        """All tensors moved to ``device`` (``energy`` stays float64, except on MPS, which has no
        float64: float32 there)."""
        device = torch.device(device)
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and f.name == "energy" and device.type == "mps":
                v = v.to(torch.float32)
            kw[f.name] = None if v is None else v.to(device, non_blocking=True)
        return GraphBatch(**kw)


_GRAPH_KEYS = ("atom_types", "edge_index", "bond_types", "atom_features")


def _graph_from_arrays(path: Path, arrays: dict[str, np.ndarray], n_atoms: int) -> MolecularGraph:
    """The :class:`MolecularGraph` stored in a point-cloud file (validated, errors name the file)."""
    if "atom_types" not in arrays:
        raise ValueError(f"{path}: graph arrays {sorted(arrays)} given without 'atom_types'")
    at = arrays["atom_types"]
    if at.ndim != 1 or at.shape[0] != n_atoms or not np.issubdtype(at.dtype, np.integer):
        raise ValueError(
            f"{path}: atom_types must be integers of shape ({n_atoms},), got {at.dtype} "
            f"{tuple(at.shape)}"
        )

    def t(k, dtype):
        return None if k not in arrays else torch.as_tensor(arrays[k]).to(dtype)

    try:
        return MolecularGraph(
            t("atom_types", torch.long), t("edge_index", torch.long), t("bond_types", torch.long),
            t("atom_features", torch.float64),
        )
    except ValueError as e:
        raise ValueError(f"{path}: invalid stored graph: {e}") from e


def _center(x: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x64 = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return (x64 - x64.mean(dim=-2, keepdim=True)).to(dtype)


def _check_finite(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(-1).nonzero()[:5, 0].tolist()
        raise ValueError(f"{name} has non-finite values (first bad samples: {bad})")


class PointCloudDataset:
    """``n`` configurations of one molecule (e.g. an LJ cluster), sharing one graph.

    x: ``(n, n_atoms, 3)`` positions (centred on load); graph: the :class:`MolecularGraph`
    (default: ``n_atoms`` atoms of type 0, no bonds); condition: ``(n, cond_dim)`` or None;
    energy: ``(n,)`` potential energy of each configuration (stored float64, finite) or None;
    metadata: a JSON dict describing the data (file, temperature ...); dtype: storage dtype
    (of positions and conditions).
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        graph: MolecularGraph | None = None,
        condition: np.ndarray | torch.Tensor | None = None,
        *,
        energy: np.ndarray | torch.Tensor | None = None,
        metadata: dict | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        xt = torch.as_tensor(np.asarray(x))
        if xt.dim() != 3 or xt.shape[-1] != 3 or xt.shape[0] < 1 or xt.shape[1] < 2:
            raise ValueError(
                f"point clouds must have shape (n >= 1, n_atoms >= 2, 3), got {tuple(xt.shape)}"
            )
        n, n_atoms, _ = xt.shape
        self.x = _center(xt, dtype)
        _check_finite("positions", self.x)
        if graph is None:
            graph = MolecularGraph(torch.zeros(n_atoms, dtype=torch.long))
        if not isinstance(graph, MolecularGraph) or graph.n_atoms != n_atoms:
            raise ValueError(
                f"graph must be a MolecularGraph with n_atoms={n_atoms}, got {graph!r}"
            )
        self.graph = graph
        self.condition = None
        if condition is not None:
            c = torch.as_tensor(np.asarray(condition)).to(dtype)
            if c.dim() == 1:
                c = c[:, None]
            if c.shape[0] != n or c.dim() != 2:
                raise ValueError(
                    f"condition must have shape ({n}, cond_dim), got {tuple(c.shape)}"
                )
            _check_finite("condition", c)
            self.condition = c
        self.energy = None
        if energy is not None:
            e = torch.as_tensor(np.asarray(energy)).to(torch.float64)
            if e.shape != (n,):
                raise ValueError(f"energy must have shape ({n},), got {tuple(e.shape)}")
            _check_finite("energy", e)
            self.energy = e
        self.metadata = dict(metadata or {})

    @classmethod
    def from_npz(
        cls,
        path: str | os.PathLike,
        *,
        key: str = "x",
        atom_types: Sequence[int] | None = None,
        condition_key: str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PointCloudDataset:
        """Load ``key`` ``(n, n_atoms, 3)`` (and ``condition_key``) from an ``.npz``. A scalar
        ``temperature`` array, if present, is recorded in :attr:`metadata`; an ``energy (n,)``
        array (potential energy per configuration), if present, becomes :attr:`energy` (float64;
        it must be finite).

        The molecule's graph is read from the file when it holds ``atom_types (n_atoms,)`` and
        optionally ``edge_index (2, n_bonds)`` + ``bond_types (n_bonds,)`` and ``atom_features
        (n_atoms, f)`` (as written by :func:`fkc.systems.aldp_training_set`); ``atom_types`` given
        here as well must then be equal to the file's."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
        with np.load(path, allow_pickle=False) as f:
            if key not in f.files:
                raise ValueError(f"{path}: no array {key!r}; arrays: {sorted(f.files)}")
            x = f[key]
            cond = None
            if condition_key is not None:
                if condition_key not in f.files:
                    raise ValueError(
                        f"{path}: no condition array {condition_key!r}; arrays: {sorted(f.files)}"
                    )
                cond = f[condition_key]
            meta: dict = {"file": str(path), "n_samples": int(x.shape[0])}
            if "temperature" in f.files and f["temperature"].size == 1:
                meta["temperature"] = float(f["temperature"])
            stored = {k: f[k] for k in _GRAPH_KEYS if k in f.files}
            energy = f["energy"] if "energy" in f.files else None
        graph = None
        if stored:
            graph = _graph_from_arrays(path, stored, x.shape[1])
            if atom_types is not None and list(atom_types) != graph.atom_types.tolist():
                raise ValueError(
                    f"atom_types {list(atom_types)} differ from the atom_types stored in {path} "
                    f"({graph.atom_types.tolist()}); give them in one place"
                )
        elif atom_types is not None:
            if len(atom_types) != x.shape[1]:
                raise ValueError(
                    f"atom_types has {len(atom_types)} entries but {path} has "
                    f"n_atoms={x.shape[1]}"
                )
            graph = MolecularGraph(torch.tensor(list(atom_types), dtype=torch.long))
        try:
            return cls(x, graph, cond, energy=energy, metadata=meta, dtype=dtype)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.x.shape[1]

    @property
    def cond_dim(self) -> int:
        return 0 if self.condition is None else self.condition.shape[1]

    def subset(self, idx: torch.Tensor) -> PointCloudDataset:
        out = object.__new__(PointCloudDataset)
        out.x = self.x[idx]
        out.graph = self.graph
        out.condition = None if self.condition is None else self.condition[idx]
        out.energy = None if self.energy is None else self.energy[idx]
        out.metadata = dict(self.metadata, n_samples=int(out.x.shape[0]))
        return out

    def batch(self, idx: torch.Tensor) -> GraphBatch:
        """Molecules ``idx: (G,)`` as a flat batch (vectorised; particle ``b`` occupies rows
        ``b n_atoms ... (b + 1) n_atoms - 1``)."""
        g, n = idx.shape[0], self.n_atoms
        gr = self.graph
        edge_index = bond_types = None
        if gr.edge_index is not None and gr.n_bonds > 0:
            offsets = (torch.arange(g) * n).repeat_interleave(gr.n_bonds)
            edge_index = gr.edge_index.repeat(1, g) + offsets
            bond_types = gr.bond_types.repeat(g)
        feats = None
        if gr.atom_features is not None:
            feats = gr.atom_features.to(self.x.dtype).repeat(g, 1)
        return GraphBatch(
            pos=self.x[idx].reshape(g * n, 3),
            batch=torch.arange(g).repeat_interleave(n),
            atom_types=gr.atom_types.repeat(g),
            n_atoms=torch.full((g,), n, dtype=torch.long),
            edge_index=edge_index,
            bond_types=bond_types,
            atom_features=feats,
            condition=None if self.condition is None else self.condition[idx],
            energy=None if self.energy is None else self.energy[idx],
        )


@dataclass(frozen=True)
class MoleculeRecord:
    """One molecule: pos ``(n_atoms, 3)``, atom_types ``(n_atoms,)`` long, bonds
    ``edge_index (2, n_bonds)`` (local atom indices) and ``bond_types (n_bonds,)`` or None,
    optional ``atom_features (n_atoms, f)`` and ``condition (cond_dim,)``."""

    pos: torch.Tensor
    atom_types: torch.Tensor
    edge_index: torch.Tensor | None = None
    bond_types: torch.Tensor | None = None
    atom_features: torch.Tensor | None = None
    condition: torch.Tensor | None = None


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(counts.shape[0] + 1, dtype=torch.long)
    out[1:] = torch.cumsum(counts, 0)
    return out


def _gather_segments(ptr: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of segments ``idx`` of a segmented array with pointers ``ptr``.

    Returns ``(rows (total,), counts (G,))``: ``rows`` lists the rows of segment ``idx[0]``, then
    of ``idx[1]``, ...
    """
    counts = ptr[idx + 1] - ptr[idx]
    total = int(counts.sum())
    starts = ptr[idx].repeat_interleave(counts, output_size=total)
    new_starts = _exclusive_cumsum(counts)[:-1].repeat_interleave(counts, output_size=total)
    return starts + torch.arange(total) - new_starts, counts


class MoleculeDataset:
    """Records of molecules of different sizes, stored as concatenated flat arrays.

    Arrays: ``pos (N_total, 3)``, ``atom_types (N_total,)``, ``atom_ptr (n_mol + 1,)``; bonds
    ``edge_index (2, B_total)`` with *local* atom indices, ``bond_types (B_total,)``,
    ``bond_ptr (n_mol + 1,)``; optional ``atom_features (N_total, f)`` and
    ``condition (n_mol, cond_dim)``. Build from records (``MoleculeDataset(records)``) or an
    ``.npz`` with these arrays (:meth:`save_npz` / :meth:`from_npz`). Potential energies are not
    kept (``energy`` is None; its batches carry none), so energy matching needs point clouds.
    """

    energy = None

    _ARRAYS = ("pos", "atom_types", "atom_ptr", "edge_index", "bond_types", "bond_ptr",
               "atom_features", "condition")

    def __init__(
        self,
        records: Sequence[MoleculeRecord],
        *,
        metadata: dict | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if len(records) == 0:
            raise ValueError("a MoleculeDataset needs at least one record")
        pos, types, ei, bt, feats, conds, n_atoms, n_bonds = [], [], [], [], [], [], [], []
        for i, r in enumerate(records):
            if not isinstance(r, MoleculeRecord):
                raise ValueError(f"record {i} must be a MoleculeRecord, got {type(r).__name__}")
            p = torch.as_tensor(r.pos)
            if p.dim() != 2 or p.shape[1] != 3 or p.shape[0] < 2:
                raise ValueError(
                    f"record {i}: pos must have shape (n_atoms >= 2, 3), got {tuple(p.shape)}"
                )
            try:  # validates types, bonds and features against each other
                MolecularGraph(torch.as_tensor(r.atom_types), r.edge_index, r.bond_types,
                               r.atom_features)
            except ValueError as e:
                raise ValueError(f"record {i}: {e}") from e
            if r.atom_types.shape != (p.shape[0],):
                raise ValueError(
                    f"record {i}: atom_types must have shape ({p.shape[0]},), got "
                    f"{tuple(r.atom_types.shape)}"
                )
            pos.append(p)
            types.append(r.atom_types)
            n_atoms.append(p.shape[0])
            n_bonds.append(0 if r.edge_index is None else r.edge_index.shape[1])
            if r.edge_index is not None:
                ei.append(r.edge_index)
                bt.append(r.bond_types)
            feats.append(r.atom_features)
            conds.append(r.condition)
        for name, vals in (("atom_features", feats), ("condition", conds)):
            if any(v is None for v in vals) and not all(v is None for v in vals):
                raise ValueError(f"{name} must be given for all records or for none")
        arrays = {
            "pos": torch.cat([_center(p, torch.float64) for p in pos]),
            "atom_types": torch.cat(types),
            "atom_ptr": _exclusive_cumsum(torch.tensor(n_atoms)),
            "edge_index": torch.cat(ei, 1) if ei else torch.zeros(2, 0, dtype=torch.long),
            "bond_types": torch.cat(bt) if bt else torch.zeros(0, dtype=torch.long),
            "bond_ptr": _exclusive_cumsum(torch.tensor(n_bonds)),
            "atom_features": None if feats[0] is None else torch.cat(feats),
            "condition": None if conds[0] is None else torch.stack(
                [torch.as_tensor(c).reshape(-1) for c in conds]),
        }
        self._set_arrays(arrays, metadata, dtype)

    def _set_arrays(self, a: dict, metadata: dict | None, dtype: torch.dtype) -> None:
        self.pos = a["pos"].to(dtype)
        _check_finite("positions", self.pos)
        self.atom_types = a["atom_types"].long()
        self.atom_ptr = a["atom_ptr"].long()
        self.edge_index = a["edge_index"].long()
        self.bond_types = a["bond_types"].long()
        self.bond_ptr = a["bond_ptr"].long()
        self.atom_features = None if a["atom_features"] is None else a["atom_features"].to(dtype)
        self.condition = None if a["condition"] is None else a["condition"].to(dtype)
        self.metadata = dict(metadata or {})
        n_mol = self.atom_ptr.shape[0] - 1
        if self.bond_ptr.shape[0] != n_mol + 1:
            raise ValueError(f"bond_ptr must have {n_mol + 1} entries, got {self.bond_ptr.shape[0]}")
        if self.condition is not None and self.condition.shape[0] != n_mol:
            raise ValueError(f"condition must have {n_mol} rows, got {self.condition.shape[0]}")

    @classmethod
    def from_npz(cls, path: str | os.PathLike, *, dtype: torch.dtype = torch.float32,
                 ) -> MoleculeDataset:
        """Load the arrays written by :meth:`save_npz` (recentring every molecule)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
        with np.load(path, allow_pickle=False) as f:
            missing = {"pos", "atom_types", "atom_ptr"} - set(f.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)} of a molecule dataset")
            a = {k: (torch.as_tensor(f[k]) if k in f.files else None) for k in cls._ARRAYS}
            meta = json.loads(str(f["metadata"])) if "metadata" in f.files else {}
        n_mol = a["atom_ptr"].shape[0] - 1
        if a["edge_index"] is None:
            a["edge_index"] = torch.zeros(2, 0, dtype=torch.long)
            a["bond_types"] = torch.zeros(0, dtype=torch.long)
            a["bond_ptr"] = torch.zeros(n_mol + 1, dtype=torch.long)
        out = object.__new__(cls)
        try:
            pos = a["pos"].to(torch.float64)
            batch = torch.arange(n_mol).repeat_interleave(a["atom_ptr"].diff())
            mean = torch.zeros(n_mol, 3, dtype=torch.float64).index_add_(0, batch, pos)
            a["pos"] = pos - (mean / a["atom_ptr"].diff()[:, None])[batch]
            out._set_arrays(a, dict(meta, file=str(path)), dtype)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: {e}") from e
        return out

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write the flat arrays (and JSON metadata) to ``path``."""
        arrays = {k: getattr(self, k).numpy() for k in self._ARRAYS if getattr(self, k) is not None}
        np.savez(path, metadata=json.dumps(self.metadata), **arrays)

    def __len__(self) -> int:
        return self.atom_ptr.shape[0] - 1

    @property
    def cond_dim(self) -> int:
        return 0 if self.condition is None else self.condition.shape[1]

    @property
    def n_atoms(self) -> torch.Tensor:
        """Atoms per molecule ``(n_mol,)``."""
        return self.atom_ptr.diff()

    def subset(self, idx: torch.Tensor) -> MoleculeDataset:
        b = self.batch(idx)
        out = object.__new__(MoleculeDataset)
        local = None
        if b.edge_index is not None:
            start = _exclusive_cumsum(b.n_atoms)[:-1]
            nb = self.bond_ptr[idx + 1] - self.bond_ptr[idx]
            local = b.edge_index - start.repeat_interleave(nb)
        out._set_arrays({
            "pos": b.pos, "atom_types": b.atom_types, "atom_ptr": _exclusive_cumsum(b.n_atoms),
            "edge_index": local if local is not None else torch.zeros(2, 0, dtype=torch.long),
            "bond_types": b.bond_types if b.bond_types is not None else torch.zeros(
                0, dtype=torch.long),
            "bond_ptr": _exclusive_cumsum(self.bond_ptr[idx + 1] - self.bond_ptr[idx]),
            "atom_features": b.atom_features, "condition": b.condition,
        }, dict(self.metadata, n_samples=int(idx.shape[0])), self.pos.dtype)
        return out

    def batch(self, idx: torch.Tensor) -> GraphBatch:
        """Molecules ``idx: (G,)`` as a flat batch; bonds get global indices."""
        rows, counts = _gather_segments(self.atom_ptr, idx)
        g = idx.shape[0]
        edge_index = bond_types = None
        if self.edge_index.shape[1] > 0:
            brows, bcounts = _gather_segments(self.bond_ptr, idx)
            if brows.numel():
                offsets = _exclusive_cumsum(counts)[:-1].repeat_interleave(bcounts)
                edge_index = self.edge_index[:, brows] + offsets
                bond_types = self.bond_types[brows]
        return GraphBatch(
            pos=self.pos[rows],
            batch=torch.arange(g).repeat_interleave(counts),
            atom_types=self.atom_types[rows],
            n_atoms=counts,
            edge_index=edge_index,
            bond_types=bond_types,
            atom_features=None if self.atom_features is None else self.atom_features[rows],
            condition=None if self.condition is None else self.condition[idx],
        )


class EpochSampler:
    """Batches of indices as a pure function of ``(seed, step)`` (see the module docstring).

    ``sampler.indices(step) -> (batch_size,)`` long. Within an epoch every sample is visited once.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        pos = step * self.batch_size + torch.arange(self.batch_size)
        epoch, within = pos // self.n, pos % self.n
        out = torch.empty(self.batch_size, dtype=torch.long)
        for e in torch.unique(epoch).tolist():
            m = epoch == e
            out[m] = self.permutation(e)[within[m]]
        return out
