"""The FKC diffusion sampler (:func:`sample`)."""

from .diffusion import DiffusionFKModel, SampleResult, sample, time_grid

__all__ = ["DiffusionFKModel", "SampleResult", "sample", "time_grid"]
