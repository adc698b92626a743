r"""A force field's Boltzmann density as an expert, for paths at a fixed small time.

For a potential ``U`` (e.g. OpenMM) at temperature ``T``:

    log p(x) = -U(s x) / kT   (+ const),      grad_x log p(x) = s F(s x) / kT,   F = -grad U,

with ``s`` the length scale from the expert's coordinates to the force field's (0.1 for a model in
angstrom and a force field in nm). This is the *clean* (``t = 0``) density, not its noised version
``p_t``: :func:`fkc.temper` runs a path at one small time ``t`` from a diffusion model's
``q_t^beta`` to it, so that the final particles are samples of ``p`` itself (the model's error
removed by the weights, as in the importance reweighting of Boltzmann generators, Noé et al. 2019).
The diffusion samplers need ``p_t`` at every ``t`` and must not use it: the expert raises for
``t > max_t``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..sde import NoiseProcess
from .base import Expert
from .score_model import _version


class BoltzmannExpert(Expert):
    """``exp(-U / kT)`` of a force field (module docstring).

    Args:
        energy_and_forces: ``x -> (U (n,), F (n, *event_shape))`` for ``x: (n, *event_shape)``
            float64 numpy in the force field's length unit (e.g.
            ``fkc.systems.AlanineDipeptide().energy_and_forces``: kJ/mol, kJ/mol/nm).
        kT: ``k_B T`` in the energy unit of ``U``, > 0.
        process: the noise process of the experts it is composed with (its space's projection
            is applied to the score).
        event_shape: e.g. ``(22, 3)``.
        length_scale: force-field length per unit of ``x``, > 0.
        max_t: largest diffusion time at which it may be evaluated (it ignores ``t``).
    """

    def __init__(self, energy_and_forces: Callable, kT: float, process: NoiseProcess,
                 event_shape: tuple[int, ...], length_scale: float = 1.0, max_t: float = 0.01):
        if not (np.isfinite(kT) and kT > 0):
            raise ValueError(f"kT must be finite and > 0, got {kT!r}")
        if not (np.isfinite(length_scale) and length_scale > 0):
            raise ValueError(f"length_scale must be finite and > 0, got {length_scale!r}")
        self.energy_and_forces = energy_and_forces
        self.kT, self.length_scale, self.max_t = float(kT), float(length_scale), float(max_t)
        self.process = process
        self.event_shape = tuple(event_shape)
        process.space.check_event_shape(self.event_shape)
        # one force-field call gives both: score and log_density at the same x share it
        self._last: tuple | None = None

    @property
    def has_log_density(self) -> bool:
        return True

    def _evaluate(self, x: torch.Tensor, t: torch.Tensor):
        if t.numel() and float(t.max()) > self.max_t:
            raise ValueError(f"BoltzmannExpert is the t = 0 density; evaluated at t = "
                             f"{float(t.max()):g} > max_t = {self.max_t:g} (use it in paths at a "
                             "fixed small time, fkc.temper)")
        last = self._last
        if last is not None and last[0] is x and last[1] == _version(x):
            return last[2], last[3]
        self.check_input(x)
        pos = x.detach().to("cpu", torch.float64).numpy() * self.length_scale
        u, f = self.energy_and_forces(pos)
        u = torch.as_tensor(np.asarray(u, dtype=np.float64), device=x.device)
        f = torch.as_tensor(np.asarray(f, dtype=np.float64), device=x.device)
        if u.shape != (x.shape[0],) or tuple(f.shape) != tuple(x.shape):
            raise ValueError(f"energy_and_forces returned shapes {tuple(u.shape)} and "
                             f"{tuple(f.shape)} for x of shape {tuple(x.shape)}")
        self._last = (x, _version(x), u, f)
        return u, f

    def log_density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``-U(s x) / kT``: ``(n,)`` float64."""
        u, _ = self._evaluate(x, t)
        return -u / self.kT

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``s F(s x) / kT`` (projected): ``(n, *event_shape)`` in x's dtype."""
        _, f = self._evaluate(x, t)
        return self.process.space.project((f * (self.length_scale / self.kT)).to(x.dtype))

    def __repr__(self) -> str:
        return (f"BoltzmannExpert(kT={self.kT:g}, length_scale={self.length_scale:g}, "
                f"event_shape={self.event_shape})")
