"""The FKC diffusion sampler (:func:`sample`)."""

from .diffusion import DiffusionFKModel, SampleResult, sample, time_grid
from .tempering import TemperingFKModel, TemperingResult, temper, tempering_schedule
from .torsion_moves import TorsionSet, torsion_moves

__all__ = ["DiffusionFKModel", "SampleResult", "TemperingFKModel", "TemperingResult", "TorsionSet",
           "sample", "temper", "tempering_schedule", "time_grid", "torsion_moves"]
