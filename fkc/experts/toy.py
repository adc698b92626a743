"""Built-in 2-D Gaussian-mixture experts used by ``fkc demo`` and the notebooks."""

from __future__ import annotations

from ..sde import VPSDE, NoiseProcess
from .gaussian_mixture import GaussianMixtureExpert


def four_modes(process: NoiseProcess | None = None) -> GaussianMixtureExpert:
    """Four unequal modes at ``(+-2, +-2)`` with weights 0.4, 0.3, 0.2, 0.1 and variance 0.4."""
    return GaussianMixtureExpert(
        weights=[0.4, 0.3, 0.2, 0.1],
        means=[[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]],
        variances=[0.4, 0.4, 0.4, 0.4],
        process=process or VPSDE(),
    )


def diagonal_band(process: NoiseProcess | None = None) -> GaussianMixtureExpert:
    """Two broad isotropic modes (variance 1.5) on the diagonal ``y = x`` (they overlap two of
    :func:`four_modes`)."""
    return GaussianMixtureExpert(
        weights=[0.5, 0.5],
        means=[[1.5, 1.5], [-1.5, -1.5]],
        variances=[[1.5, 1.5], [1.5, 1.5]],
        process=process or VPSDE(),
    )
