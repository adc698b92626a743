"""Targets with exact references shared by the sampler tests and their calibration script."""

import torch

import fkc
from fkc.experts import GaussianMixtureExpert
from fkc.experts.toy import diagonal_band, four_modes

VP = fkc.VPSDE()


def bimodal_1d():
    return GaussianMixtureExpert([0.3, 0.7], [[-1.5], [1.5]], [0.25, 0.4], VP)


def third_expert():
    """A broad 2-D mixture favouring the upper half plane."""
    return GaussianMixtureExpert([0.7, 0.3], [[0.0, 2.0], [0.0, -2.0]], [[3.0, 1.0], [3.0, 1.0]], VP)


def reweighted_four_modes():
    """The modes of :func:`four_modes` with reversed weights (a 'conditional' expert)."""
    return GaussianMixtureExpert([0.1, 0.2, 0.3, 0.4], [[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0],
                                                       [2.0, -2.0]], [0.4] * 4, VP)


def targets_2d():
    q1, q2, q3, qc = four_modes(VP), diagonal_band(VP), third_expert(), reweighted_four_modes()
    return {
        "product2": fkc.product(q1, q2),
        "product3": fkc.product(q1, q2, q3),
        "cfg2": fkc.cfg(q1, qc, 2.0),
        "cfg4": fkc.cfg(q1, qc, 4.0),
        "mixed": fkc.compose([(q1, 1.5), (q2, 0.8), (q3, -0.5)]),
    }


def regions_2d(x: torch.Tensor) -> torch.Tensor:
    """Quadrant masses ``(4,)`` of equally weighted points ``(n, 2)``."""
    sx, sy = x[:, 0] >= 0, x[:, 1] >= 0
    return torch.stack([(sx & sy), (~sx & sy), (~sx & ~sy), (sx & ~sy)]).double().mean(1)
