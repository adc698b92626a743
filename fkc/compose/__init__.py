"""Composition algebra and the Feynman-Kac corrector for compositions of experts."""

from .algebra import Composition, anneal, as_composition, cfg, compose, geometric, product
from .corrector import (
    Coefficients,
    coefficients,
    log_weight_rate,
    noise_level,
    noise_std,
    reverse_drift,
    score_terms,
    tweedie_denoise,
)

__all__ = [
    "Composition", "anneal", "as_composition", "cfg", "compose", "geometric", "product",
    "Coefficients", "coefficients", "log_weight_rate", "noise_level", "reverse_drift", "noise_std", "score_terms",
    "tweedie_denoise",
]
