"""Sample-quality metrics for molecular systems.

Convention: ``W2`` is the square root of the optimal-transport cost with squared distance (the
FKC/DEM anchor code logs the squared value under the same name).

Public API:
    wasserstein_1d, energy_w1, energy_w2, distance_w2, histogram_tv, distance_tv, pooled_distances
    kabsch, aligned_squared_distance, equivariant_cost_matrix, equivariant_w2, point_cloud_w2
    evaluate_samples, plot_histograms
"""

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
    "aligned_squared_distance",
    "distance_tv",
    "distance_w2",
    "energy_w1",
    "energy_w2",
    "equivariant_cost_matrix",
    "equivariant_w2",
    "evaluate_samples",
    "histogram_tv",
    "kabsch",
    "plot_histograms",
    "point_cloud_w2",
    "pooled_distances",
    "wasserstein_1d",
]
