"""The ``System`` contract shared by all molecular systems with a known energy.

A system is a Boltzmann density on point clouds ``x: (..., n_atoms, n_dim)``,

    p_T(x) ∝ exp(-E(x) / T),

with temperature ``T`` in energy units (``k_B = 1``). All energies here are invariant under global
translations, so ``p_T`` is not normalisable on ``R^{n_atoms * n_dim}``; it is a proper density
(w.r.t. Lebesgue measure) on the zero-centre-of-mass subspace ``{x : sum_i x_i = 0}`` of dimension
``n_free = (n_atoms - 1) * n_dim``. That restriction is the stationary distribution of the
ground-truth samplers in :mod:`fkc.systems._pt` and of the reference data sets.

Torch methods follow the dtype and device of their input and accept any leading batch shape.
A system also exposes Numba kernels (``numba_kernels``) so the parallel-tempering sampler can run
without Python in the loop; the tests check that both paths agree.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

PairConvention = Literal["ordered", "unordered"]
PAIR_CONVENTIONS: tuple[str, ...] = ("ordered", "unordered")


def pair_factor(convention: str) -> float:
    """Multiplier of the sum over unordered pairs ``i < j``.

    ``"unordered"``: ``sum_{i<j} phi(r_ij)`` (factor 1, bgflow's convention).
    ``"ordered"``: ``sum_{i != j} phi(r_ij) = 2 sum_{i<j} phi(r_ij)`` (factor 2, the FKC/DEM code).
    """
    if convention == "ordered":
        return 2.0
    if convention == "unordered":
        return 1.0
    raise ValueError(f"pair_convention must be one of {PAIR_CONVENTIONS}, got {convention!r}")


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_finite(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class System(ABC):
    """Boltzmann density ``exp(-E(x) / T)`` on point clouds ``(n_atoms, n_dim)``.

    Subclasses define ``energy`` (and usually an analytic ``force``), ``name`` and the Numba
    kernels. Fields are validated eagerly in ``__post_init__``.

    Attributes:
        n_atoms: number of particles (``>= 2``).
        n_dim: spatial dimension of each particle (``>= 1``).
        temperature: ``T > 0`` in energy units; ``log_prob = -E / T``.
    """

    n_atoms: int
    n_dim: int
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.n_atoms, int) or self.n_atoms < 2:
            raise ValueError(f"n_atoms must be an int >= 2, got {self.n_atoms!r}")
        if not isinstance(self.n_dim, int) or self.n_dim < 1:
            raise ValueError(f"n_dim must be an int >= 1, got {self.n_dim!r}")
        _check_positive("temperature", self.temperature)
        self._validate()

    def _validate(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Subclass hook for validating extra fields."""

    # ------------------------------------------------------------------ description
    @property
    @abstractmethod
    def name(self) -> str:
        """Short identifier, e.g. ``"lj13"``, ``"dw4"``."""

    @property
    def event_shape(self) -> tuple[int, int]:
        """``(n_atoms, n_dim)``."""
        return (self.n_atoms, self.n_dim)

    @property
    def n_free(self) -> int:
        """Dimension of the zero-centre-of-mass subspace, ``(n_atoms - 1) * n_dim``."""
        return (self.n_atoms - 1) * self.n_dim

    @property
    def beta(self) -> float:
        """Inverse temperature ``1 / T``."""
        return 1.0 / self.temperature

    def with_temperature(self, temperature: float) -> System:
        """The same system at another temperature (a new, validated object)."""
        return replace(self, temperature=temperature)

    def parameters(self) -> dict[str, float | int | str]:
        """All fields as a plain dict (for metadata files)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    # ------------------------------------------------------------------ torch path
    def check_shape(self, x: torch.Tensor, what: str = "x") -> None:
        """Raise unless ``x`` has shape ``(..., n_atoms, n_dim)``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or tuple(x.shape[-2:]) != self.event_shape:
            raise ValueError(
                f"{what} must have shape (..., n_atoms={self.n_atoms}, n_dim={self.n_dim}) for "
                f"{self.name}, got {tuple(x.shape)}"
            )

    @abstractmethod
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy ``E(x)``. x: ``(..., n_atoms, n_dim)``; returns ``(...)``."""

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """Force ``-grad_x E(x)`` (autograd fallback; subclasses may override analytically).

        x: ``(..., n_atoms, n_dim)``; returns ``(..., n_atoms, n_dim)``.
        """
        self.check_shape(x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(xg).sum(), xg)
        return -grad

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log density ``-E(x) / T``; x: ``(..., n_atoms, n_dim)`` -> ``(...)``."""
        return -self.energy(x) / self.temperature

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``grad_x log p_T(x) = force(x) / T``; shape of ``x``."""
        return self.force(x) / self.temperature

    # ------------------------------------------------------------------ numba path
    @abstractmethod
    def numba_kernels(self) -> tuple[Callable, Callable, np.ndarray]:
        """``(energy_fn, delta_fn, params)`` for the Numba samplers.

        ``energy_fn(x, params) -> float`` with ``x: (n_atoms, n_dim)`` float64 gives ``E(x)``.
        ``delta_fn(x, i, dx, params) -> float`` gives ``E(x') - E(x)`` where ``x'`` moves atom
        ``i`` by ``dx: (n_dim,)``. ``params`` is a float64 array.
        """

    def initial_positions(self, rng: np.random.Generator) -> np.ndarray:
        """A starting configuration ``(n_atoms, n_dim)`` float64 with zero centre of mass.

        Default: independent standard normal coordinates, recentred.
        """
        x = rng.standard_normal(self.event_shape)
        return x - x.mean(axis=0, keepdims=True)
