"""Molecular systems with known energies, and ground-truth samplers for them.

Public API:
    System, LennardJones, DoubleWell, HarmonicCluster, get_system, pair_factor
    interatomic_distances, pair_indices
    PTConfig, PTResult, parallel_tempering, compare_runs
    diagnostics (module): integrated_autocorr_time, effective_sample_size, gelman_rubin, ...
    reference (module): generate_reference, load_reference (``python -m fkc.systems.reference``)
    testing (module): helpers to check energies/forces of your own systems
"""

from fkc.systems import diagnostics
from fkc.systems._base import PAIR_CONVENTIONS, System, pair_factor
from fkc.systems._double_well import DoubleWell
from fkc.systems._geometry import interatomic_distances, pair_indices
from fkc.systems._harmonic import HarmonicCluster
from fkc.systems._lennard_jones import LennardJones
from fkc.systems._pt import PTConfig, PTResult, compare_runs, parallel_tempering
from fkc.systems._registry import get_system

__all__ = [
    "PAIR_CONVENTIONS",
    "DoubleWell",
    "HarmonicCluster",
    "LennardJones",
    "PTConfig",
    "PTResult",
    "System",
    "compare_runs",
    "diagnostics",
    "get_system",
    "interatomic_distances",
    "pair_factor",
    "pair_indices",
    "parallel_tempering",
]
