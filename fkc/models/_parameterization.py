r"""What a network predicts, and how that becomes a score.

Noising convention (as in :mod:`fkc.sde`): ``x_t = alpha(t) x_0 + sigma(t) eps`` with
``eps ~ N(0, I)``, ``t = 0`` data, ``t = 1`` noise. The score of the marginal is
``s(x, t) = grad_x log p_t(x)``. With Tweedie's formula ``E[x_0 | x_t] = (x_t + sigma^2 s) / alpha``
and ``E[eps | x_t] = -sigma s``, the three parameterisations convert to the score as

    eps:       s = -eps_hat / sigma(t)
    denoiser:  s = (alpha(t) D(x_t) - x_t) / sigma(t)^2
    score:     s = s_hat                                   (identity)

These formulas live only in :func:`to_score`.

EDM-style pre-conditioning (Karras et al. 2022, rewritten for ``x_t = alpha x_0 + sigma eps``; with
``x_hat = x_t / alpha`` and ``sigma_hat = sigma / alpha`` it is EDM's table 1). Let

    s_t^2 = alpha^2 sigma_data^2 + sigma^2          (the variance of x_t for data of std sigma_data)

then the network ``F`` sees ``c_in x_t`` with ``c_in = 1 / s_t`` (unit variance at every t), and the
raw output is ``c_skip x_t + c_out F``:

    eps:       c_skip = 0,                          c_out = 1
    denoiser:  c_skip = alpha sigma_data^2 / s_t^2,  c_out = sigma sigma_data / s_t
    score:     c_skip = 0,                          c_out = 1 / s_t

(for the denoiser this makes ``F``'s regression target unit-variance at every t; for the score,
``1/s_t`` is the magnitude of the score of Gaussian data of std ``sigma_data``). Without
``sigma_data`` all scalings are the identity (``c_in = 1, c_skip = 0, c_out = 1``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ._config import PARAMETERIZATIONS


@runtime_checkable
class AlphaSigmaProcess(Protocol):
    """Anything with ``alpha(t)`` and ``sigma(t)`` (tensor in, same-shape tensor out)."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    def sigma(self, t: torch.Tensor) -> torch.Tensor: ...


def _check_parameterization(parameterization: str) -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )


def _broadcast_time(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Append singleton axes so ``v: t.shape`` broadcasts against ``like: t.shape + (...)``."""
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim()))


def to_score(
    raw: torch.Tensor,
    x: torch.Tensor,
    t: torch.Tensor,
    process: AlphaSigmaProcess,
    parameterization: str,
) -> torch.Tensor:
    """Convert a network's raw output to the score ``grad_x log p_t(x)``.

    raw, x: ``(n_particles, n_atoms, 3)`` (or flat ``(N_total, 3)``); ``x`` is the noisy state the
        network was evaluated at (CoM-free for CoM-free processes).
    t: ``(n_particles,)`` (or per-atom ``(N_total,)`` for the flat layout): a prefix of
        ``raw.shape``.
    parameterization: ``"eps"``: ``-raw / sigma``; ``"denoiser"``: ``(alpha raw - x) / sigma^2``;
        ``"score"``: ``raw``. ``sigma(t)`` must be positive for eps/denoiser.
    """
    _check_parameterization(parameterization)
    if raw.shape != x.shape:
        raise ValueError(
            f"raw and x must have the same shape, got {tuple(raw.shape)} and {tuple(x.shape)}"
        )
    if tuple(t.shape) != tuple(raw.shape[: t.dim()]):
        raise ValueError(
            f"t must have shape {tuple(raw.shape[:1])} (a prefix of raw.shape={tuple(raw.shape)}), "
            f"got {tuple(t.shape)}"
        )
    if parameterization == "score":
        return raw
    sigma = _broadcast_time(process.sigma(t), raw).to(raw.dtype)
    if parameterization == "eps":
        return -raw / sigma
    alpha = _broadcast_time(process.alpha(t), raw).to(raw.dtype)
    return (alpha * raw - x) / sigma**2


def edm_scalings(
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    sigma_data: float,
    parameterization: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM pre-conditioning coefficients ``(c_in, c_skip, c_out)``, each of ``alpha``'s shape.

    alpha, sigma: ``(n,)`` values of the schedule at the batch's times. See the module docstring
    for the formulas.
    """
    _check_parameterization(parameterization)
    s2 = alpha**2 * sigma_data**2 + sigma**2
    s = torch.sqrt(s2)
    c_in = 1.0 / s
    zero = torch.zeros_like(s)
    if parameterization == "eps":
        return c_in, zero, torch.ones_like(s)
    if parameterization == "denoiser":
        return c_in, alpha * sigma_data**2 / s2, sigma * sigma_data / s
    return c_in, zero, 1.0 / s
