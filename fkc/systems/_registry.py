"""Look up systems by short name (``"lj13"``, ``"dw4"``, ``"harmonic4x3"``)."""

from __future__ import annotations

import re

from fkc.systems._base import System
from fkc.systems._double_well import DoubleWell
from fkc.systems._harmonic import HarmonicCluster
from fkc.systems._lennard_jones import LennardJones

_PATTERNS = (
    (re.compile(r"lj(\d+)"), lambda m: {"n_atoms": int(m[1])}, LennardJones),
    (re.compile(r"dw(\d+)"), lambda m: {"n_atoms": int(m[1])}, DoubleWell),
    (
        re.compile(r"harmonic(\d+)x(\d+)"),
        lambda m: {"n_atoms": int(m[1]), "n_dim": int(m[2])},
        HarmonicCluster,
    ),
)


def get_system(name: str, **params) -> System:
    """Build a system from its name plus field overrides.

    ``"lj<n>"`` -> :class:`LennardJones` (3-D), ``"dw<n>"`` -> :class:`DoubleWell` (2-D),
    ``"harmonic<n>x<d>"`` -> :class:`HarmonicCluster`. ``params`` are passed to the dataclass
    (e.g. ``temperature=2.0, pair_convention="unordered"``); unknown fields raise ``TypeError``;
    fields implied by the name (``n_atoms``, ``n_dim``) may be repeated only with the same value.
    """
    for pattern, fields, cls in _PATTERNS:
        m = pattern.fullmatch(name.lower())
        if m:
            implied = fields(m)
            clash = {
                k: (v, params[k]) for k, v in implied.items() if k in params and params[k] != v
            }
            if clash:
                raise ValueError(f"system name {name!r} conflicts with parameters {clash}")
            return cls(**{**implied, **params})
    raise ValueError(f"unknown system {name!r}; expected 'lj<n>', 'dw<n>' or 'harmonic<n>x<d>'")
