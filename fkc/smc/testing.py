"""Statistical checks of resampling schemes, shipped so users can test their own schemes.

Example::

    counts = offspring_counts(my_scheme, log_weights, n_draws=20_000, generator=g)
    z = unbiasedness_z(counts, log_weights)
    assert z.abs().max() < 5  # each |z_i| is approximately |N(0, 1)| for an unbiased scheme
"""

from __future__ import annotations

import math

import torch

from .resampling import Resampler
from .weights import Weights

__all__ = ["offspring_counts", "unbiasedness_z"]


def offspring_counts(
    resampler: Resampler,
    log_weights: torch.Tensor,
    n_draws: int,
    generator: torch.Generator,
    n_out: int | None = None,
    **kwargs,
) -> torch.Tensor:
    """Offspring counts ``N_i = #{j : A_j = i}`` of ``n_draws`` independent resamplings.

    log_weights: ``(n,)``. Returns ``(n_draws, n)`` int64; each row sums to ``n_out`` (default n).
    ``kwargs`` are passed to the resampler (e.g. ``backend="torch"``).
    """
    n = log_weights.shape[0]
    if n_out is not None:
        kwargs["n_out"] = n_out
    rows = [
        torch.bincount(resampler(log_weights, generator, **kwargs).cpu(), minlength=n)
        for _ in range(n_draws)
    ]
    return torch.stack(rows)


def unbiasedness_z(counts: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """z-scores of the mean offspring counts against their expectation ``n_out W_i``.

    counts: ``(n_draws, n)`` from :func:`offspring_counts`; log_weights: ``(n,)``.
    ``z_i = (mean_i - n_out W_i) / (sd_i / sqrt(n_draws))`` with the sample standard deviation
    ``sd_i``; for an unbiased scheme each ``z_i`` is approximately N(0, 1) (CLT). Where
    ``sd_i = 0`` (e.g. a zero-weight particle, or systematic resampling with ``n_out W_i`` an
    integer) the count is deterministic and ``z_i`` is 0 if it equals the expectation up to
    1e-9, else inf. Returns ``(n,)`` float64.
    """
    counts = counts.to(torch.float64)
    n_draws = counts.shape[0]
    n_out = float(counts[0].sum())
    expected = n_out * Weights(log_weights.cpu()).W
    mean = counts.mean(0)
    sd = counts.std(0, correction=1)
    diff = mean - expected
    z = diff / (sd / math.sqrt(n_draws))
    degenerate = sd == 0
    z[degenerate & (diff.abs() <= 1e-9)] = 0.0
    z[degenerate & (diff.abs() > 1e-9)] = math.inf
    return z
