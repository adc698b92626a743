"""Molecular systems with known energies, and ground-truth samplers for them.

Public API:
    System, LennardJones, DoubleWell, HarmonicCluster, get_system, pair_factor
    interatomic_distances, pair_indices
    PTConfig, PTResult, parallel_tempering, compare_runs
    diagnostics (module): integrated_autocorr_time, effective_sample_size, gelman_rubin, ...
    reference (module): generate_reference, load_reference (``python -m fkc.systems.reference``)
    AlanineDipeptide (OpenMM energies/forces; needs ``pip install -e '.[md]'``), MOLAR_GAS_CONSTANT
    MDConfig, MDData, run_md, load_md, subsample_md, benchmark_md, write_sha256sums, write_topology_pdb
    aldp_training_set, aldp_training_set_from_samples (annealing ladder), aldp_graph_arrays, to_nm,
    samples_in_nm, save_trajectory (angstrom training
    files with the molecular graph; samples back to nm and to DCD/PDB)
    aldp_md (module): the alanine-dipeptide MD data recipe (``python -m fkc.systems.aldp_md``)
    testing (module): helpers to check energies/forces of your own systems
"""

from fkc.systems import diagnostics
from fkc.systems._aldp import MOLAR_GAS_CONSTANT, AlanineDipeptide
from fkc.systems._aldp_data import (
    aldp_graph_arrays,
    aldp_training_set,
    aldp_training_set_from_samples,
    samples_in_nm,
    save_trajectory,
    to_nm,
)
from fkc.systems._base import PAIR_CONVENTIONS, System, pair_factor
from fkc.systems._double_well import DoubleWell
from fkc.systems._geometry import interatomic_distances, pair_indices
from fkc.systems._harmonic import HarmonicCluster
from fkc.systems._lennard_jones import LennardJones
from fkc.systems._md import (
    MDConfig,
    MDData,
    benchmark_md,
    load_md,
    run_md,
    subsample_md,
    write_sha256sums,
    write_topology_pdb,
)
from fkc.systems._pt import PTConfig, PTResult, compare_runs, parallel_tempering
from fkc.systems._registry import get_system

__all__ = [
    "MOLAR_GAS_CONSTANT",
    "PAIR_CONVENTIONS",
    "AlanineDipeptide",
    "DoubleWell",
    "HarmonicCluster",
    "LennardJones",
    "MDConfig",
    "MDData",
    "PTConfig",
    "PTResult",
    "System",
    "aldp_graph_arrays",
    "aldp_training_set",
    "aldp_training_set_from_samples",
    "benchmark_md",
    "compare_runs",
    "diagnostics",
    "get_system",
    "interatomic_distances",
    "load_md",
    "pair_factor",
    "pair_indices",
    "parallel_tempering",
    "run_md",
    "samples_in_nm",
    "save_trajectory",
    "subsample_md",
    "to_nm",
    "write_sha256sums",
    "write_topology_pdb",
]
