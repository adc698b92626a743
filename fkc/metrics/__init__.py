"""Sample-quality metrics for molecular systems.

Convention: ``W2`` is the square root of the optimal-transport cost with squared distance (the
FKC/DEM anchor code logs the squared value under the same name).

Public API:
    wasserstein_1d, energy_w1, energy_w2, distance_w2, histogram_tv, distance_tv, pooled_distances
    kabsch, aligned_squared_distance, equivariant_cost_matrix, equivariant_w2, point_cloud_w2
    evaluate_samples, plot_histograms
    alanine dipeptide: phi_psi, wrap_angle, torus_w2, ramachandran_histogram, ramachandran_kl,
    ramachandran_js, ramachandran_free_energy_plot, assign_basins, basin_populations, BASIN_NAMES,
    chirality_fraction, reflect_to_l, bond_stretch_fraction, evaluate_aldp
"""

from fkc.metrics._dihedrals import (
    BASIN_NAMES,
    assign_basins,
    basin_populations,
    bond_stretch_fraction,
    chirality_fraction,
    evaluate_aldp,
    phi_psi,
    ramachandran_free_energy_plot,
    ramachandran_histogram,
    ramachandran_js,
    ramachandran_kl,
    reflect_to_l,
    torus_w2,
    wrap_angle,
)
from fkc.metrics._evaluate import evaluate_samples, plot_histograms
from fkc.metrics._point_clouds import (
    aligned_squared_distance,
    equivariant_cost_matrix,
    equivariant_w2,
    kabsch,
    point_cloud_w2,
)
from fkc.metrics._wasserstein import (
    distance_tv,
    distance_w2,
    energy_w1,
    energy_w2,
    histogram_tv,
    pooled_distances,
    wasserstein_1d,
)

__all__ = [
    "BASIN_NAMES",
    "aligned_squared_distance",
    "assign_basins",
    "basin_populations",
    "bond_stretch_fraction",
    "chirality_fraction",
    "reflect_to_l",
    "distance_tv",
    "distance_w2",
    "energy_w1",
    "energy_w2",
    "equivariant_cost_matrix",
    "equivariant_w2",
    "evaluate_aldp",
    "evaluate_samples",
    "histogram_tv",
    "kabsch",
    "phi_psi",
    "plot_histograms",
    "point_cloud_w2",
    "pooled_distances",
    "ramachandran_free_energy_plot",
    "ramachandran_histogram",
    "ramachandran_js",
    "ramachandran_kl",
    "torus_w2",
    "wasserstein_1d",
    "wrap_angle",
]
