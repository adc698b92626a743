"""The expert protocol: a diffusion model's score for one noise process.

An expert represents the family of noised densities ``q_t`` (``t in [0, 1]``, ``t = 0`` data)
of one forward :class:`~fkc.sde.NoiseProcess` and provides

* ``score(x, t) = grad_x log q_t(x)``: x ``(n, *event_shape)``, t ``(n,)`` → ``(n, *event_shape)``;
* optionally ``log_density(x, t) = log q_t(x)`` (up to a t-independent constant for energy
  models; exact for analytic experts) → ``(n,)``; ``has_log_density`` says whether it exists.

Scores of experts on a CoM-free space are CoM-free.
"""

from __future__ import annotations

import abc

import torch

from ..sde import NoiseProcess


class Expert(abc.ABC):
    """Base class of experts. Subclasses set ``process`` and ``event_shape`` and implement
    :meth:`score` (and :meth:`log_density` when ``has_log_density`` is true)."""

    process: NoiseProcess
    event_shape: tuple[int, ...]

    @abc.abstractmethod
    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``grad_x log q_t(x)``; x: ``(n, *event_shape)``, t: ``(n,)`` → ``(n, *event_shape)``."""

    @property
    def has_log_density(self) -> bool:
        return False

    def log_density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``log q_t(x)``: x ``(n, *event_shape)``, t ``(n,)`` → ``(n,)``."""
        raise NotImplementedError(f"{type(self).__name__} does not provide log_density")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` has shape ``(n, *event_shape)``."""
        if tuple(x.shape[1:]) != tuple(self.event_shape) or x.dim() != len(self.event_shape) + 1:
            raise ValueError(
                f"{type(self).__name__} expects x of shape (n, {', '.join(map(str, self.event_shape))})"
                f", got {tuple(x.shape)}"
            )
