"""Generic Sequential Monte Carlo for Feynman-Kac models.

* :mod:`~fkc.smc.resampling`: resampling schemes, pure functions ``(log_weights, generator) ->
  ancestors`` with numba (CPU) and torch (any device) backends that agree bit for bit on CPU.
* :mod:`~fkc.smc.weights`: log-space float64 weights (normalisation, ESS, log mean).
* :mod:`~fkc.smc.engine`: the Feynman-Kac model interface and the SMC algorithm.
* :mod:`~fkc.smc.state`: particle states as nested containers of tensors (``take``).
* :mod:`~fkc.smc.testing`: statistical checks of resampling schemes, for users' own schemes too.
"""

from .engine import SMC, AllParticlesDiedError, FeynmanKacModel, SMCResult
from .resampling import (
    RESAMPLERS,
    Resampler,
    get_resampler,
    multinomial,
    residual,
    stratified,
    systematic,
)
from .state import State, take
from .weights import Weights, ess, normalize

__all__ = [
    "RESAMPLERS",
    "SMC",
    "AllParticlesDiedError",
    "FeynmanKacModel",
    "Resampler",
    "SMCResult",
    "State",
    "Weights",
    "ess",
    "get_resampler",
    "multinomial",
    "normalize",
    "residual",
    "stratified",
    "systematic",
    "take",
]
