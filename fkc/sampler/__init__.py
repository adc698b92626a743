"""The FKC diffusion sampler (:func:`sample`)."""

from .diffusion import DiffusionFKModel, SampleResult, sample, time_grid
from .tempering import TemperingFKModel, TemperingResult, temper, tempering_schedule

__all__ = ["DiffusionFKModel", "SampleResult", "TemperingFKModel", "TemperingResult", "sample",
           "temper", "tempering_schedule", "time_grid"]
