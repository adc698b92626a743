"""Experts: score models for one noise process (see :mod:`fkc.experts.base`)."""

from .base import Expert
from .gaussian_mixture import GaussianMixtureExpert
from .score_model import ExpertContext, ScoreModelExpert

__all__ = ["Expert", "GaussianMixtureExpert"]
