"""The composition algebra: targets ``pi_t(x) = prod_i q_{i,t}(x)^{b_i}`` of experts.

All constructors return a :class:`Composition` (flattened: composing compositions multiplies
exponents, e.g. ``anneal(product(e1, e2), beta) = e1^beta e2^beta``):

* ``anneal(e, beta)``            ``q^beta``                       (beta > 0)
* ``product(e1, e2, ...)``       ``q1 q2 ...``
* ``geometric(e1, e2, gamma)``   ``q1^(1-gamma) q2^gamma``
* ``cfg(uncond, cond, w)``       ``q_u^(1-w) q_c^w`` (classifier-free guidance; w may exceed 1)
* ``compose([(e1, b1), ...])``   ``prod_i q_i^{b_i}`` (b_i may be negative; sum b_i > 0)

As in the FKC paper (Skreta et al. 2025), the target at every noise level is the product of the
experts' noised marginals, not the noised product. The drift, noise and weights that sample it
are in :mod:`fkc.compose.fkc`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from ..experts.base import Expert


class Composition(Expert):
    """``pi_t = prod_i q_{i,t}^{b_i}``: an (unnormalised) expert built from weighted experts.

    ``score = S = sum_i b_i s_i``; ``log_density = sum_i b_i log q_i`` when every expert has one.
    Attributes: ``terms`` (tuple of ``(expert, b)``), ``total`` (``B = sum_i b_i``).
    """

    def __init__(self, terms: Sequence[tuple[Expert, float]]):
        flat: list[tuple[Expert, float]] = []
        for item in terms:
            if not (isinstance(item, tuple | list) and len(item) == 2):
                raise ValueError(f"each term must be a pair (expert, exponent), got {item!r}")
            e, b = item
            if isinstance(b, torch.Tensor):
                b = b.item()
            if not isinstance(b, int | float) or isinstance(b, bool):
                raise ValueError(f"exponent must be a real number, got {b!r}")
            b = float(b)
            if not math.isfinite(b):
                raise ValueError(f"exponents must be finite, got {b}")
            if isinstance(e, Composition):
                flat.extend((ei, bi * b) for ei, bi in e.terms)
            elif isinstance(e, Expert):
                flat.append((e, b))
            else:
                raise ValueError(f"expected an Expert, got {type(e).__name__}")
        if not flat:
            raise ValueError("a composition needs at least one expert")
        process, shape = flat[0][0].process, tuple(flat[0][0].event_shape)
        for i, (e, _) in enumerate(flat[1:], start=1):
            if e.process != process:
                raise ValueError(
                    f"all experts must share one noise process: expert 0 has {process}, "
                    f"expert {i} has {e.process}"
                )
            if tuple(e.event_shape) != shape:
                raise ValueError(
                    f"all experts must share one event shape: expert 0 has {shape}, "
                    f"expert {i} has {tuple(e.event_shape)}"
                )
        total = sum(b for _, b in flat)
        if not total > 0:
            raise ValueError(
                f"the sum of exponents must be > 0, got {total:g} from {[b for _, b in flat]}"
            )
        self.terms: tuple[tuple[Expert, float], ...] = tuple(flat)
        self.total = float(total)
        self.process = process
        self.event_shape = shape

    @property
    def has_log_density(self) -> bool:
        return all(e.has_log_density for e, _ in self.terms)

    def scores(self, x: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
        """Every expert's score ``s_i(x, t)``, each ``(n, *event_shape)``."""
        return [e.score(x, t) for e, _ in self.terms]

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return sum(b * s for (_, b), s in zip(self.terms, self.scores(x, t), strict=True))

    def log_density(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self.has_log_density:
            missing = [type(e).__name__ for e, _ in self.terms if not e.has_log_density]
            raise NotImplementedError(f"experts without log_density: {missing}")
        return sum(b * e.log_density(x, t) for e, b in self.terms)

    def __repr__(self) -> str:
        inner = ", ".join(f"({e!r})^{b:g}" for e, b in self.terms)
        return f"Composition({inner})"


def _check_beta(name: str, value) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return v


def as_composition(target: Expert) -> Composition:
    """An expert as a one-term composition (a composition is returned unchanged)."""
    return target if isinstance(target, Composition) else Composition([(target, 1.0)])


def anneal(expert: Expert, beta: float) -> Composition:
    """``q^beta`` (annealing / temperature ``T_train / beta``); beta must be > 0."""
    return Composition([(expert, _check_beta("beta", beta))])


def product(*experts: Expert) -> Composition:
    """``q1 q2 ...`` (product of experts)."""
    if len(experts) == 1 and isinstance(experts[0], Iterable) and not isinstance(experts[0], Expert):
        experts = tuple(experts[0])
    return Composition([(e, 1.0) for e in experts])


def geometric(e1: Expert, e2: Expert, gamma: float) -> Composition:
    """``q1^(1-gamma) q2^gamma`` (geometric average; gamma in [0, 1] interpolates, other values
    extrapolate as in guidance)."""
    g = float(gamma)
    if not math.isfinite(g):
        raise ValueError(f"gamma must be finite, got {gamma}")
    return Composition([(e1, 1.0 - g), (e2, g)])


def cfg(uncond: Expert, cond: Expert, guidance: float) -> Composition:
    """Classifier-free guidance ``q_u^(1-w) q_c^w`` with ``w = guidance`` (w > 1 sharpens)."""
    w = float(guidance)
    if not math.isfinite(w):
        raise ValueError(f"guidance must be finite, got {guidance}")
    return Composition([(uncond, 1.0 - w), (cond, w)])


def compose(terms: Sequence[tuple[Expert, float]]) -> Composition:
    """General ``prod_i q_i^{b_i}``; individual b_i may be negative, ``sum_i b_i > 0``."""
    return Composition(list(terms))
