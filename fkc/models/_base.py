"""The interface every score network implements, and the shared input/output plumbing.

A backbone subclass implements only :meth:`ScoreNetwork._backbone` (message passing on a flat
batch); this base class does, once for all networks:

1. entry checks of shapes/dtypes/values (messages name the values);
2. CoM removal of the input, EDM input scaling ``x_in = c_in(t) x`` (per molecule);
3. invariant node embeddings ``h0 = atom(types, features) + time(tau) + condition(c)``;
4. message-passing edges: complete graph (``cutoff=None``) or radius graph on ``x_in`` plus bonds;
5. output: CoM removal and ``raw = c_skip x + c_out F`` (see :mod:`fkc.models._parameterization`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter

from fkc.sde.space import remove_com

from ._config import BackboneConfig
from ._embedding import AtomEmbedding, ConditionEmbedding, TimeEmbedding
from ._parameterization import AlphaSigmaProcess, edm_scalings, to_score
from .graph import FlatBatch, MolecularGraph, batch_fixed_graph, radius_graph


class Encoded:
    """Backbone outputs on a flat batch (internal record).

    x: ``(N, 3)`` CoM-free input positions; vec: ``(N, 3)`` CoM-free network vector output ``F``;
    inv: ``(N, n_invariant)`` rotation-invariant node features; c_skip, c_out: ``(N, 1)``;
    batch: ``(N,)``; num_graphs: G.
    """

    __slots__ = ("x", "vec", "inv", "c_skip", "c_out", "batch", "num_graphs", "sigma")

    def __init__(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self, k, v)


def map_chunks(fn, pos, t, condition, chunk_size: int | None) -> torch.Tensor:
    """Evaluate ``fn(pos, t, condition)`` on consecutive blocks of at most ``chunk_size``
    particles and concatenate along dim 0.

    pos: ``(n_particles, ...)``; t: ``(n_particles,)`` or scalar; condition: ``(n_particles, c)``,
    ``(c,)`` or ``None``. Particles are independent, so the result equals the unchunked call (up
    to float summation order); with classifier-free dropout in training mode the generator is
    consumed chunk by chunk. On CPU, chunks of ~1e4-3e4 message-passing edges (e.g. 5
    configurations of 55 atoms on a complete graph, 35 of 22 atoms) are several times faster than
    one large call (cache-resident intermediates) and bound the memory of inference; see
    ``benchmarks/RESULTS_models.md``.
    """
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    n = pos.shape[0]
    if chunk_size is None or n <= chunk_size:
        return fn(pos, t, condition)
    t = torch.as_tensor(t, device=pos.device)
    if t.dim() == 0:
        t = t.expand(n)
    if condition is not None and condition.dim() == 1:
        condition = condition.expand(n, -1)
    outs = []
    for i in range(0, n, chunk_size):  # loop over blocks, not particles
        c = None if condition is None else condition[i : i + chunk_size]
        outs.append(fn(pos[i : i + chunk_size], t[i : i + chunk_size], c))
    return torch.cat(outs)


def scatter_remove_com(v: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Subtract the per-molecule mean: v: ``(N, 3)``, batch: ``(N,)`` -> ``(N, 3)``."""
    return v - scatter(v, batch, dim=0, dim_size=num_graphs, reduce="mean")[batch]


class ScoreNetwork(nn.Module):
    """Base class of the score backbones.

    Call forms (both return the *raw* output in ``self.parameterization``, CoM-free):

    * ``model(pos, t, graph, condition=None)`` with ``pos: (n_particles, n_atoms, 3)``,
      ``t: (n_particles,)``, ``graph: MolecularGraph``, ``condition: (n_particles, cond_dim)``,
      ``(cond_dim,)`` (shared) or ``None``; returns ``(n_particles, n_atoms, 3)``.
    * ``model.forward_flat(pos, t, batch, atom_types, edge_index, bond_types, condition)`` with
      ``pos: (N_total, 3)``, ``t: (n_graphs,)``, ``batch: (N_total,)`` (non-decreasing),
      ``atom_types: (N_total,)``, bonds ``edge_index: (2, n_bonds)``/``bond_types: (n_bonds,)`` or
      ``None``, ``condition: (n_graphs, cond_dim)`` or ``None``; returns ``(N_total, 3)``.

    ``model.score(...)`` converts the raw output with :func:`fkc.models.to_score` (needs
    ``process``). ``generator`` (keyword) drives the classifier-free dropout in training mode.

    Attributes: ``config``, ``process``, ``parameterization``, ``parity_sensitive`` (True if the
    network can tell a molecule from its mirror image), ``n_invariant`` (width of the invariant
    node features used by :class:`fkc.models.EnergyScoreModel`).
    """

    parity_sensitive: bool = False
    n_invariant: int = 0

    def __init__(self, config: BackboneConfig, process: AlphaSigmaProcess | None, dim: int) -> None:
        super().__init__()
        if config.needs_process and process is None:
            raise ValueError(
                f"{type(self).__name__}: config has sigma_data={config.sigma_data!r} and "
                f"time_input={config.time_input!r}, which need a noise process with alpha(t) and "
                "sigma(t); pass process=..."
            )
        if process is not None and not isinstance(process, AlphaSigmaProcess):
            raise ValueError(
                f"process must have alpha(t) and sigma(t) methods, got {type(process).__name__}"
            )
        self.config = config
        self.process = process
        self.atom_embedding = AtomEmbedding(config.n_atom_types, config.atom_feature_dim, dim)
        self.time_embedding = TimeEmbedding(
            config.time_embedding, config.time_embedding_dim, dim, config.fourier_scale
        )
        self.condition_embedding = (
            ConditionEmbedding(config.cond_dim, dim, config.p_uncond)
            if config.cond_dim > 0
            else None
        )
        self.bond_embedding = (
            nn.Embedding(config.n_bond_types + 1, self.bond_dim)
            if config.n_bond_types > 0
            else None
        )

    # ---- properties ---------------------------------------------------------------------------
    bond_dim: int = 16

    @property
    def parameterization(self) -> str:
        return self.config.parameterization

    @property
    def cutoff(self) -> float | None:
        return None

    # ---- public call forms --------------------------------------------------------------------
    def forward(
        self,
        pos: torch.Tensor,
        t: torch.Tensor,
        graph: MolecularGraph,
        condition: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Raw output for particles sharing one molecular graph.

        pos: ``(n_particles, n_atoms, 3)``; t: ``(n_particles,)`` (or a scalar, broadcast);
        condition: ``(n_particles, cond_dim)``, ``(cond_dim,)`` or ``None``; chunk_size: evaluate
        at most this many particles at a time (see :func:`map_chunks`).
        Returns ``(n_particles, n_atoms, 3)``, CoM-free.
        """

        def run(pos, t, condition):
            flat, t, condition = self._flatten(pos, t, graph, condition)
            out = self._decode(self._encode(flat, t, condition, generator))
            return out.reshape(pos.shape)

        return map_chunks(run, pos, t, condition, chunk_size)

    def forward_flat(
        self,
        pos: torch.Tensor,
        t: torch.Tensor,
        batch: torch.Tensor,
        atom_types: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        bond_types: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
        *,
        atom_features: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Raw output for a flat batch of molecules of possibly different sizes.

        pos: ``(N_total, 3)``; t: ``(n_graphs,)``; batch: ``(N_total,)`` non-decreasing in
        ``[0, n_graphs)``; atom_types: ``(N_total,)``; edge_index: ``(2, n_bonds)`` global indices
        or ``None``; bond_types: ``(n_bonds,)`` or ``None``; condition: ``(n_graphs, cond_dim)`` or
        ``None``; atom_features: ``(N_total, atom_feature_dim)`` or ``None``.
        Returns ``(N_total, 3)``, CoM-free per molecule.
        """
        n_graphs = int(t.shape[0]) if t.dim() == 1 else 0  # a bad t is reported by _check_flat
        flat = FlatBatch(pos, batch, atom_types, edge_index, bond_types, atom_features, n_graphs)
        return self._decode(self._encode(flat, t, condition, generator))

    def forward_pyg(
        self,
        data,
        t: torch.Tensor,
        condition: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Raw output for a PyG ``Batch`` with fields ``pos``, ``batch``, ``atom_types`` and
        optionally ``edge_index``/``bond_types`` (bonds) and ``atom_features``.
        t: ``(data.num_graphs,)``. Returns ``(N_total, 3)``."""
        return self.forward_flat(
            data.pos,
            t,
            data.batch,
            data.atom_types,
            getattr(data, "edge_index", None),
            getattr(data, "bond_types", None),
            condition,
            atom_features=getattr(data, "atom_features", None),
            generator=generator,
        )

    def score(
        self,
        pos: torch.Tensor,
        t: torch.Tensor,
        graph: MolecularGraph,
        condition: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """``grad_x log p_t(x)``: the raw output converted by :func:`fkc.models.to_score`.

        Shapes as :meth:`forward`; ``pos`` is projected to CoM-free before the conversion.
        """
        if self.process is None and self.parameterization != "score":
            raise ValueError(
                f"score() with parameterization={self.parameterization!r} needs a process; "
                "construct the model with process=..."
            )
        raw = self(pos, t, graph, condition, generator=generator, chunk_size=chunk_size)
        t = self._broadcast_t(t, pos.shape[0], pos)
        return to_score(raw, remove_com(pos), t, self.process, self.parameterization)

    def invariant_features(
        self,
        flat: FlatBatch,
        t: torch.Tensor,
        condition: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation-invariant node features ``(N_total, n_invariant)`` and the per-graph
        ``sigma(t)`` (or ``None`` without a process) of a flat batch (used by energy heads)."""
        enc = self._encode(flat, t, condition, generator)
        return enc.inv, enc.sigma

    # ---- implementation -----------------------------------------------------------------------
    def _backbone(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        edge_index: torch.Tensor,
        edge_bond: torch.Tensor,
        batch: torch.Tensor,
        num_graphs: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Message passing on scaled CoM-free positions ``x: (N, 3)`` and node scalars
        ``h: (N, dim)`` over ``edge_index: (2, E)`` (source, target) with bond codes
        ``edge_bond: (E,)`` (0 = not bonded). Returns ``(vec (N, 3), inv (N, n_invariant))``."""
        raise NotImplementedError

    def _message_edges(
        self, x_in: torch.Tensor, flat: FlatBatch, num_graphs: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Message-passing edges ``(2, E)`` and their bond codes ``(E,)`` (0 = not bonded,
        ``1 + bond_type``): the radius graph of ``self.cutoff`` on ``x_in`` plus all bonds
        (complete graph for ``cutoff=None``). Backbones that attend over all pairs themselves
        override this."""
        cutoff = self.cutoff
        return radius_graph(
            x_in, flat.batch, num_graphs, math.inf if cutoff is None else cutoff,
            flat.edge_index, flat.bond_types,
        )

    @staticmethod
    def _broadcast_t(t, n: int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},) or be a scalar, got {tuple(t.shape)}")
        return t

    def _flatten(self, pos, t, graph, condition):
        if not isinstance(graph, MolecularGraph):
            raise ValueError(f"graph must be a MolecularGraph, got {type(graph).__name__}")
        if not isinstance(pos, torch.Tensor) or pos.dim() != 3 or pos.shape[-1] != 3:
            raise ValueError(
                "pos must have shape (n_particles, n_atoms, 3), got "
                f"{tuple(pos.shape) if isinstance(pos, torch.Tensor) else type(pos).__name__}"
            )
        n_particles = pos.shape[0]
        t = self._broadcast_t(t, n_particles, pos)
        if condition is not None and condition.dim() == 1:
            condition = condition.expand(n_particles, -1)
        return batch_fixed_graph(pos, graph), t, condition

    def _check_flat(self, flat: FlatBatch, t: torch.Tensor, condition) -> int:
        cfg = self.config
        pos, batch = flat.pos, flat.batch
        if pos.dim() != 2 or pos.shape[1] != 3 or not pos.is_floating_point():
            raise ValueError(
                f"pos must be a float tensor (N_total, 3), got shape {tuple(pos.shape)}, "
                f"dtype {pos.dtype}"
            )
        n = pos.shape[0]
        if t.dim() != 1:
            raise ValueError(f"t must have shape (n_graphs,), got {tuple(t.shape)}")
        g = t.shape[0]
        if batch.shape != (n,) or batch.dtype != torch.long:
            raise ValueError(
                f"batch must be a long tensor ({n},), got shape {tuple(batch.shape)}, "
                f"dtype {batch.dtype}"
            )
        if n > 0:
            if int(batch.min()) < 0 or int(batch.max()) >= g:
                raise ValueError(
                    f"batch values must lie in [0, n_graphs={g}) (n_graphs = len(t)), got range "
                    f"[{int(batch.min())}, {int(batch.max())}]"
                )
            if bool((batch[1:] < batch[:-1]).any()):
                raise ValueError(
                    "batch must be non-decreasing (atoms of one molecule contiguous, as in PyG)"
                )
        at = flat.atom_types
        if at.shape != (n,) or at.dtype != torch.long:
            raise ValueError(
                f"atom_types must be a long tensor ({n},), got shape {tuple(at.shape)}, "
                f"dtype {at.dtype}"
            )
        if n > 0 and (int(at.min()) < 0 or int(at.max()) >= cfg.n_atom_types):
            raise ValueError(
                f"atom_types must lie in [0, n_atom_types={cfg.n_atom_types}), got range "
                f"[{int(at.min())}, {int(at.max())}]"
            )
        if cfg.atom_feature_dim > 0:
            af = flat.atom_features
            if af is None or af.shape != (n, cfg.atom_feature_dim):
                raise ValueError(
                    f"atom_features of shape ({n}, {cfg.atom_feature_dim}) required "
                    f"(atom_feature_dim={cfg.atom_feature_dim}), got "
                    f"{None if af is None else tuple(af.shape)}"
                )
        elif flat.atom_features is not None:
            raise ValueError(
                f"atom_features given (shape {tuple(flat.atom_features.shape)}) but the network "
                "has atom_feature_dim=0"
            )
        ei, bt = flat.edge_index, flat.bond_types
        if (ei is None) != (bt is None):
            raise ValueError("edge_index and bond_types must be given together")
        if ei is not None and ei.numel() > 0:
            if cfg.n_bond_types == 0:
                raise ValueError(
                    f"bonds given ({ei.shape[1]} bonds) but the network has n_bond_types=0"
                )
            if (
                ei.dim() != 2
                or ei.shape[0] != 2
                or ei.dtype != torch.long
                or bt.shape != (ei.shape[1],)
            ):
                raise ValueError(
                    f"edge_index must be (2, n_bonds) long and bond_types (n_bonds,) long, got "
                    f"{tuple(ei.shape)} {ei.dtype} and {tuple(bt.shape)} {bt.dtype}"
                )
            if int(ei.min()) < 0 or int(ei.max()) >= n:
                raise ValueError(
                    f"edge_index values must lie in [0, N_total={n}), got "
                    f"[{int(ei.min())}, {int(ei.max())}]"
                )
            if int(bt.min()) < 0 or int(bt.max()) >= cfg.n_bond_types:
                raise ValueError(
                    f"bond_types must lie in [0, n_bond_types={cfg.n_bond_types}), got range "
                    f"[{int(bt.min())}, {int(bt.max())}]"
                )
            if bool((batch[ei[0]] != batch[ei[1]]).any()):
                raise ValueError("edge_index contains a bond between atoms of different molecules")
            if bool((ei[0] == ei[1]).any()):
                raise ValueError("edge_index contains a self-bond (i, i)")
        if cfg.cond_dim == 0:
            if condition is not None:
                raise ValueError(
                    f"condition given (shape {tuple(condition.shape)}) but the network has "
                    "cond_dim=0"
                )
        elif condition is not None and condition.shape != (g, cfg.cond_dim):
            raise ValueError(
                f"condition must have shape (n_graphs={g}, cond_dim={cfg.cond_dim}), got "
                f"{tuple(condition.shape)}"
            )
        return g

    def _encode(self, flat: FlatBatch, t, condition, generator) -> Encoded:
        cfg = self.config
        g = self._check_flat(flat, t, condition)
        pos, batch = flat.pos, flat.batch
        t = t.to(device=pos.device)
        x = scatter_remove_com(pos, batch, g)

        alpha = sigma = None
        if self.process is not None:
            alpha = self.process.alpha(t).to(pos.dtype)
            sigma = self.process.sigma(t).to(pos.dtype)
        if cfg.sigma_data is not None:
            c_in, c_skip, c_out = edm_scalings(alpha, sigma, cfg.sigma_data, cfg.parameterization)
        else:
            c_in = c_out = torch.ones(g, dtype=pos.dtype, device=pos.device)
            c_skip = torch.zeros_like(c_in)
        if cfg.time_input == "log_sigma":
            if bool((sigma <= 0).any()):
                bad = t[sigma <= 0]
                raise ValueError(
                    f"time_input='log_sigma' needs sigma(t) > 0, got sigma = 0 at "
                    f"t = {bad.tolist()[:5]}"
                )
            tau = torch.log(sigma) / 4
        else:
            tau = t.to(pos.dtype)
        # the network runs in its own precision (parameters' dtype); state math stays in pos.dtype
        net_dtype = self.atom_embedding.types.weight.dtype
        x_in = (x * c_in[batch, None]).to(net_dtype)

        h = self.atom_embedding(flat.atom_types, flat.atom_features)
        h = h + self.time_embedding(tau)[batch]
        if self.condition_embedding is not None:
            c, _ = self.condition_embedding(condition, g, generator)
            h = h + c[batch]

        edge_index, edge_bond = self._message_edges(x_in, flat, g)
        vec, inv = self._backbone(x_in, h, edge_index, edge_bond, batch, g)
        vec = scatter_remove_com(vec.to(pos.dtype), batch, g)
        return Encoded(
            x=x,
            vec=vec,
            inv=inv,
            c_skip=c_skip[batch, None],
            c_out=c_out[batch, None],
            batch=batch,
            num_graphs=g,
            sigma=sigma,
        )

    @staticmethod
    def _decode(enc: Encoded) -> torch.Tensor:
        return enc.c_skip * enc.x + enc.c_out * enc.vec

    def extra_repr(self) -> str:
        return (
            f"parameterization={self.parameterization!r}, parity_sensitive={self.parity_sensitive}"
        )
