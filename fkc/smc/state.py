"""Particle states as nested containers of tensors ("pytrees") whose leading dim is the particle.

A state is a ``torch.Tensor`` of shape ``(n_particles, ...)``, or a (named)tuple, list, dict or
dataclass instance whose leaves are such tensors. Other leaves (numbers, strings, None, 0-d
tensors) are shared by all particles and kept as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch

State = Any  # torch.Tensor | tuple | list | dict | dataclass of those

__all__ = ["State", "take", "tensor_leaves"]


def _map(fn: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    if isinstance(state, torch.Tensor):
        return fn(state) if state.ndim > 0 else state
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        changes = {
            f.name: _map(fn, getattr(state, f.name)) for f in dataclasses.fields(state) if f.init
        }
        return dataclasses.replace(state, **changes)
    if isinstance(state, tuple):
        items = [_map(fn, s) for s in state]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    if isinstance(state, list):
        return [_map(fn, s) for s in state]
    if isinstance(state, dict):
        return type(state)((k, _map(fn, v)) for k, v in state.items())
    return state


def tensor_leaves(state: State, path: str = "state") -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(path, tensor)`` for every tensor leaf with at least one dim; paths read like
    ``state['x'][0]``."""
    if isinstance(state, torch.Tensor):
        if state.ndim > 0:
            yield path, state
    elif dataclasses.is_dataclass(state) and not isinstance(state, type):
        for f in dataclasses.fields(state):
            yield from tensor_leaves(getattr(state, f.name), f"{path}.{f.name}")
    elif isinstance(state, (tuple, list)):
        for i, s in enumerate(state):
            yield from tensor_leaves(s, f"{path}[{i}]")
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from tensor_leaves(v, f"{path}[{k!r}]")


def take(state: State, ancestors: torch.Tensor) -> State:
    """Select particles: every tensor leaf ``x: (n, ...)`` becomes ``x[ancestors]: (n_out, ...)``.

    ancestors: ``(n_out,)`` int64 (moved to each leaf's device). Containers are rebuilt with the
    same type (dataclasses via ``dataclasses.replace``); non-tensor and 0-d tensor leaves are kept.
    """
    cache: dict[torch.device, torch.Tensor] = {}

    def gather(x: torch.Tensor) -> torch.Tensor:
        idx = cache.get(x.device)
        if idx is None:
            idx = cache[x.device] = ancestors.to(x.device)
        return x.index_select(0, idx)

    return _map(gather, state)
