"""Experts backed by trained score networks (:mod:`fkc.models`), loaded from checkpoints.

``ScoreModelExpert.from_checkpoint(path)`` rebuilds the network and its noise process from a
checkpoint (:mod:`fkc.checkpoint`) and implements the :class:`~fkc.experts.Expert` protocol for
one molecule:

* ``event_shape = (n_atoms, 3)``; the process is the checkpoint's with ``com_free=True``;
* ``score(x, t)``: x ``(n, n_atoms, 3)``, t ``(n,)`` -> ``(n, n_atoms, 3)``, CoM-free: the network's
  raw output converted by :func:`fkc.models.to_score` (eps: ``-raw / sigma``, denoiser:
  ``(alpha raw - x) / sigma^2``, score: identity), evaluated in chunks of ``chunk_size``
  particles to bound memory, on the device of ``x`` (the network follows its inputs), returned in
  ``x``'s dtype (the network runs in its own precision);
* for an :class:`~fkc.models.EnergyScoreModel`: ``has_log_density = True`` and
  ``log_density(x, t) = -E_theta(x, t)``, i.e. ``log q_t(x)`` up to a ``t``-dependent constant;
* conditional networks (``cond_dim > 0``) give conditional and unconditional experts from one
  checkpoint: ``expert.condition(c)`` and ``expert.unconditional()`` share the network and the
  process, so ``fkc.cfg(expert.unconditional(), expert.condition(c), w)`` composes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..checkpoint import Checkpoint, load_checkpoint
from ..sde import NoiseProcess, remove_com
from .base import Expert

if TYPE_CHECKING:
    from ..models import MolecularGraph


def _models():
    """``fkc.models``, imported on first use (torch_geometric takes seconds to import, and
    ``import fkc`` should not pay for it)."""
    from .. import models

    return models

__all__ = ["ExpertContext", "ScoreModelExpert", "default_chunk_size"]

#: message-passing edges per chunk: ~1.6e4 keeps CPU intermediates cache-resident and is several
#: times faster than one large call (``benchmarks/RESULTS_models.md``)
CHUNK_EDGES = 16384


def default_chunk_size(n_atoms: int) -> int:
    """Particles per chunk for a complete graph of ``n_atoms``: ``CHUNK_EDGES // (n (n - 1))``
    (at least 1), e.g. 105 for 13 atoms, 35 for 22, 5 for 55."""
    return max(1, CHUNK_EDGES // max(1, n_atoms * (n_atoms - 1)))


@dataclass(frozen=True)
class ExpertContext:
    """What a molecular expert is conditioned on: the molecule's graph and an optional global
    condition vector ``(cond_dim,)`` (for conditional networks)."""

    graph: MolecularGraph
    condition: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.graph, _models().MolecularGraph):
            raise ValueError(f"graph must be a MolecularGraph, got {type(self.graph).__name__}")
        if self.condition is not None:
            c = self.condition
            if not isinstance(c, torch.Tensor) or c.dim() != 1 or not c.is_floating_point():
                raise ValueError(
                    f"condition must be a 1-d float tensor (cond_dim,), got {c!r}"
                )


def _graph_from_metadata(meta: dict[str, Any]) -> MolecularGraph | None:
    g = meta.get("graph")
    if not isinstance(g, dict) or "atom_types" not in g:
        return None

    def tensor(key, dtype):
        v = g.get(key)
        return None if v is None else torch.tensor(v, dtype=dtype)

    return _models().MolecularGraph(
        atom_types=tensor("atom_types", torch.long),
        edge_index=tensor("edge_index", torch.long),
        bond_types=tensor("bond_types", torch.long),
        atom_features=tensor("atom_features", torch.get_default_dtype()),
    )


class ScoreModelExpert(Expert):
    """A network's score for one molecule (see the module docstring).

    Args:
        model: an :mod:`fkc.models` network (``EGNN``, ``TensorProductNet``,
            ``EnergyScoreModel``); put in eval mode.
        process: the noise process it was trained with (``com_free`` is forced to True).
        context: the molecule (:class:`ExpertContext` or a bare :class:`MolecularGraph`).
        metadata: the checkpoint's metadata (``training_temperature``, ``system`` ...).
        chunk_size: particles per network call; ``"auto"`` (:func:`default_chunk_size`) or
            ``None`` (one call for all particles).

    Attributes: ``model``, ``process``, ``event_shape``, ``graph``, ``condition_vector``,
    ``metadata``, ``chunk_size``, ``is_conditional``.
    """

    def __init__(
        self,
        model: nn.Module,
        process: NoiseProcess,
        context: ExpertContext | MolecularGraph,
        *,
        metadata: dict[str, Any] | None = None,
        chunk_size: int | str | None = "auto",
    ) -> None:
        if isinstance(context, _models().MolecularGraph):
            context = ExpertContext(context)
        if not isinstance(context, ExpertContext):
            raise ValueError(
                f"context must be an ExpertContext or a MolecularGraph, got {type(context).__name__}"
            )
        if not isinstance(process, NoiseProcess):
            raise ValueError(f"process must be a NoiseProcess, got {type(process).__name__}")
        if not process.com_free:
            process = _with_com_free(process)
        self.model = model.eval()
        self.process = process
        self.graph = context.graph
        self.event_shape = (context.graph.n_atoms, 3)
        self.metadata = dict(metadata or {})
        cfg = model.config
        backbone = getattr(cfg, "backbone", cfg)
        self._cond_dim = int(getattr(backbone, "cond_dim", 0))
        n_types = int(getattr(backbone, "n_atom_types", 1))
        if int(self.graph.atom_types.max()) >= n_types:
            raise ValueError(
                f"the graph has atom type {int(self.graph.atom_types.max())} but the network "
                f"knows n_atom_types={n_types}"
            )
        c = context.condition
        if c is not None:
            if self._cond_dim == 0:
                raise ValueError("a condition vector was given but the network is unconditional "
                                 "(cond_dim=0)")
            if c.shape != (self._cond_dim,):
                raise ValueError(
                    f"condition must have shape ({self._cond_dim},), got {tuple(c.shape)}"
                )
        self.condition_vector = c
        if chunk_size == "auto":
            chunk_size = default_chunk_size(self.graph.n_atoms)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive int, 'auto' or None, got {chunk_size!r}")
        self.chunk_size = chunk_size
        self._graphs: dict[torch.device, MolecularGraph] = {}
        # energy models: (x, t, their versions, log density) of the last score call, so that
        # log_density at the same tensors (a MALA test right after the proposal's score) is free
        self._last_log_density = None

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike | Checkpoint,
        context: ExpertContext | MolecularGraph | None = None,
        *,
        device: torch.device | str | None = None,
        use_ema: bool = True,
        chunk_size: int | str | None = "auto",
    ) -> ScoreModelExpert:
        """Rebuild the expert from a checkpoint file alone.

        context: the molecule; ``None`` uses the graph stored at training time (point-cloud
            data such as LJ clusters: ``n_atoms`` identical atoms), and fails for networks
            trained on many molecules.
        device: where to put the network (default CPU; it moves to the device of the inputs on
            first use anyway). use_ema: load the EMA weights (default) or the trained ones.
        """
        ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        where = ckpt.path or "<checkpoint>"
        model = ckpt.build_model(use_ema=use_ema, device=device,
                                 process=_with_com_free(ckpt.process))
        if context is None:
            graph = _graph_from_metadata(ckpt.metadata)
            if graph is None:
                raise ValueError(
                    f"{where}: the checkpoint stores no default molecule (trained on many "
                    "molecules?); pass context=MolecularGraph(...) or ExpertContext(...)"
                )
            context = ExpertContext(graph)
        return cls(model, _with_com_free(ckpt.process), context, metadata=ckpt.metadata,
                   chunk_size=chunk_size)

    def _derived(self, condition: torch.Tensor | None) -> ScoreModelExpert:
        out = ScoreModelExpert(self.model, self.process, ExpertContext(self.graph, condition),
                               metadata=self.metadata, chunk_size=self.chunk_size)
        return out

    @property
    def is_conditional(self) -> bool:
        """True when this expert evaluates the network with a condition vector."""
        return self.condition_vector is not None

    def condition(self, vector) -> ScoreModelExpert:
        """The conditional expert ``q_t(x | c)`` for ``vector: (cond_dim,)`` (shares the network)."""
        if self._cond_dim == 0:
            raise ValueError("this network is unconditional (cond_dim=0); cannot condition it")
        v = torch.as_tensor(vector, dtype=torch.get_default_dtype()).reshape(-1)
        return self._derived(v)

    def unconditional(self) -> ScoreModelExpert:
        """The unconditional expert (the network's null condition; shares the network)."""
        return self._derived(None)

    # ---- the expert protocol ----------------------------------------------------------------
    @property
    def has_log_density(self) -> bool:
        return isinstance(self.model, _models().EnergyScoreModel)

    def _prepare(self, x: torch.Tensor, t: torch.Tensor):
        self.check_input(x)
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
        n = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},), got {tuple(t.shape)}")
        dev = x.device
        if next(self.model.parameters()).device != dev:
            self.model.to(dev)
            self._graphs.clear()
        if dev not in self._graphs:
            self._graphs[dev] = self.graph.to(dev)
        cond = None
        if self.condition_vector is not None:
            cond = self.condition_vector.to(device=dev, dtype=x.dtype)
        return remove_com(x), t, self._graphs[dev], cond

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``grad_x log q_t(x)``: x ``(n, n_atoms, 3)``, t ``(n,)`` -> ``(n, n_atoms, 3)``,
        CoM-free, in ``x``'s dtype and device."""
        x_arg, t_arg = x, t
        x, t, graph, cond = self._prepare(x, t)
        with torch.no_grad():
            if self.has_log_density:
                e, s = self.model.energy_and_score(x, t, graph, cond, chunk_size=self.chunk_size)
                self._last_log_density = (x_arg, t_arg, _version(x_arg), _version(t_arg),
                                          (-e).to(x.dtype))
            else:
                raw = self.model(x, t, graph, cond, chunk_size=self.chunk_size)
                s = _models().to_score(raw, x, t, self.process, self.model.parameterization)
        return remove_com(s.to(x.dtype)).detach()

    def log_density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``-E_theta(x, t)`` (``log q_t(x)`` up to a ``t``-dependent constant): ``(n,)``."""
        if not self.has_log_density:
            raise NotImplementedError(
                f"{type(self.model).__name__} is not an energy model; log_density needs an "
                "EnergyScoreModel"
            )
        last = self._last_log_density
        if (last is not None and last[0] is x and last[1] is t and last[2] == _version(x)
                and last[3] == _version(t)):
            return last[4]
        x, t, graph, cond = self._prepare(x, t)
        with torch.no_grad():
            return self.model.log_density(x, t, graph, cond,
                                          chunk_size=self.chunk_size).to(x.dtype)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        cond = "" if self.condition_vector is None else f", condition={self.condition_vector.tolist()}"
        return f"ScoreModelExpert({name}, n_atoms={self.event_shape[0]}{cond})"


def _version(v) -> int | None:
    """In-place modification counter of a tensor (None for other values)."""
    return v._version if isinstance(v, torch.Tensor) else None


def _with_com_free(process: NoiseProcess) -> NoiseProcess:
    if process.com_free:
        return process
    import dataclasses

    return dataclasses.replace(process, com_free=True)
