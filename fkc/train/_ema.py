"""Exponential moving average of a network's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """``theta_ema <- d_k theta_ema + (1 - d_k) theta`` after every optimiser step ``k``.

    ``d_k = decay`` or, with ``warmup``, ``min(decay, (1 + k) / (10 + k))`` (so early weights are
    forgotten quickly). Buffers are copied. ``ema.module`` is a frozen copy of the network in eval
    mode, usable directly (validation, sampling).
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.module = copy.deepcopy(model).eval()
        # the original's state keys: a copy can hold extra constants (see update) that are not
        # part of the network's weights and must not reach checkpoints
        self._keys = tuple(model.state_dict().keys())
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """Decay used for the update after optimiser step ``step`` (1-based)."""
        if self.warmup:
            return min(self.decay, (1.0 + step) / (10.0 + step))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        for pe, p in zip(self.module.parameters(), model.parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - d)
        # by name: a deep copy of e3nn's fx-compiled tensor products can hold extra constant
        # buffers (``_tensor_constant*``), so the two buffer lists need not align position-wise
        ema_buffers = dict(self.module.named_buffers())
        for name, b in model.named_buffers():
            ema_buffers[name].copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights under the original network's state keys."""
        sd = self.module.state_dict()
        return {k: sd[k] for k in self._keys}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.module.load_state_dict(state, strict=False)
        missing = sorted(set(missing) - (set(self.module.state_dict()) - set(self._keys)))
        if missing or unexpected:
            raise KeyError(f"EMA state does not match the network: missing {missing}, "
                           f"unexpected {sorted(unexpected)}")
