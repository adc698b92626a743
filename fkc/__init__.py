"""fkc: Feynman-Kac corrected sampling of compositions of diffusion models.

Conventions: diffusion time ``t in [0, 1]`` (0 = data, 1 = noise); forward SDE
``dx = f(x, t) dt + g(t) dW``; sampling runs from ``t = 1`` to ``t = 0``.
"""

from .compose import Composition, anneal, cfg, compose, geometric, product
from .experts import Expert, GaussianMixtureExpert
from .sampler import SampleResult, TemperingResult, TorsionSet, sample, temper
from .sde import VESDE, VPSDE, NoiseProcess

__version__ = "0.1.0"

__all__ = [
    "VPSDE", "VESDE", "NoiseProcess", "Expert", "GaussianMixtureExpert", "Composition",
    "anneal", "product", "geometric", "cfg", "compose", "sample", "SampleResult",
    "temper", "TemperingResult", "TorsionSet",
]
