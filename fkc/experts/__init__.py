"""Experts: score models for one noise process (see :mod:`fkc.experts.base`)."""

from .base import Expert
from .gaussian_mixture import GaussianMixtureExpert
from .score_model import ExpertContext, ScoreModelExpert  # noqa: F401 (public API)

__all__ = ["Expert", "GaussianMixtureExpert"]
