"""Typed, eagerly validated, JSON-serialisable network configurations.

Every config is a frozen, keyword-only dataclass with a class-level ``name`` (the registry key).
``to_dict()`` returns plain JSON types and includes ``"name"``; ``from_dict()`` rejects unknown keys
and a wrong ``"name"``. Validation happens in ``__post_init__`` and raises ``ValueError`` naming the
field and the offending value.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

PARAMETERIZATIONS = ("eps", "denoiser", "score")
TIME_EMBEDDINGS = ("fourier", "sinusoidal")
TIME_INPUTS = ("t", "log_sigma")


class ConfigBase:
    """Mixin: dict round trip and validation helpers for config dataclasses."""

    name: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, ConfigBase) else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__}.from_dict expects a dict, got {type(d).__name__}")
        d = dict(d)
        name = d.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"{cls.__name__}.from_dict: name must be {cls.name!r}, got {name!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown keys {unknown}; allowed keys are {sorted(known)}"
            )
        return cls(**cls._convert_nested(d))

    @classmethod
    def _convert_nested(cls, d: dict[str, Any]) -> dict[str, Any]:
        return d

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- validation helpers ---------------------------------------------------------------
    def _check_int(self, field: str, lo: int) -> None:
        v = getattr(self, field)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{type(self).__name__}.{field} must be an int >= {lo}, got {v!r}")

    def _check_float(
        self,
        field: str,
        lo: float,
        *,
        inclusive: bool = False,
        hi: float | None = None,
        allow_none: bool = False,
    ) -> None:
        v = getattr(self, field)
        if v is None and allow_none:
            return
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v >= lo if inclusive else v > lo) and (hi is None or v <= hi)
        if not ok:
            rng = f"{'>=' if inclusive else '>'} {lo}" + (f" and <= {hi}" if hi is not None else "")
            none = " or None" if allow_none else ""
            raise ValueError(
                f"{type(self).__name__}.{field} must be a finite number {rng}{none}, got {v!r}"
            )

    def _check_choice(self, field: str, choices: tuple) -> None:
        v = getattr(self, field)
        if v not in choices:
            raise ValueError(f"{type(self).__name__}.{field} must be one of {choices}, got {v!r}")

    def _check_bool(self, field: str) -> None:
        v = getattr(self, field)
        if not isinstance(v, bool):
            raise ValueError(f"{type(self).__name__}.{field} must be a bool, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class BackboneConfig(ConfigBase):
    """Fields shared by all score backbones.

    n_atom_types: number of integer atom types (embedding table size).
    atom_feature_dim: width of optional float per-atom features (0: none).
    n_bond_types: number of bond types (0: the network ignores bonds and rejects graphs with bonds).
    cond_dim: width of the global condition vector (0: unconditional network).
    p_uncond: classifier-free dropout probability: in training mode each molecule's condition is
        replaced by the learned null embedding with this probability.
    time_embedding: ``"fourier"`` (random Gaussian frequencies, std ``fourier_scale``) or
        ``"sinusoidal"`` (transformer frequencies of ``1000 * tau``).
    time_input: ``tau = t`` or ``tau = log(sigma(t)) / 4`` (EDM's c_noise; needs a process).
    time_embedding_dim: number of sin/cos features.
    parameterization: what the network outputs, ``"eps"``, ``"denoiser"`` or ``"score"``
        (see :func:`fkc.models.to_score`).
    sigma_data: data standard deviation for EDM input/output scaling (needs a process);
        ``None`` disables the scaling (``c_in = 1``, raw output = network output).
    avg_num_neighbors: constant normaliser of summed messages (``1/sqrt`` for the tensor-product
        network, ``1/`` for EGNN); a constant keeps the network smooth across a cutoff.
    """

    n_atom_types: int = 10
    atom_feature_dim: int = 0
    n_bond_types: int = 0
    cond_dim: int = 0
    p_uncond: float = 0.1
    time_embedding: str = "fourier"
    time_input: str = "t"
    time_embedding_dim: int = 32
    fourier_scale: float = 16.0
    parameterization: str = "eps"
    sigma_data: float | None = None
    avg_num_neighbors: float = 10.0

    def __post_init__(self) -> None:
        self._check_int("n_atom_types", 1)
        self._check_int("atom_feature_dim", 0)
        self._check_int("n_bond_types", 0)
        self._check_int("cond_dim", 0)
        self._check_float("p_uncond", 0.0, inclusive=True, hi=1.0)
        self._check_choice("time_embedding", TIME_EMBEDDINGS)
        self._check_choice("time_input", TIME_INPUTS)
        self._check_int("time_embedding_dim", 2)
        if self.time_embedding_dim % 2:
            raise ValueError(
                f"{type(self).__name__}.time_embedding_dim must be even (sin and cos pairs), "
                f"got {self.time_embedding_dim}"
            )
        self._check_float("fourier_scale", 0.0)
        self._check_choice("parameterization", PARAMETERIZATIONS)
        self._check_float("sigma_data", 0.0, allow_none=True)
        self._check_float("avg_num_neighbors", 0.0)

    @property
    def needs_process(self) -> bool:
        """True when the forward pass evaluates ``alpha(t)``/``sigma(t)``."""
        return self.sigma_data is not None or self.time_input == "log_sigma"
