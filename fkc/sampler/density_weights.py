r"""Discrete-time SMC weights from log densities: exact for any time grid.

The FKC weights of :mod:`fkc.compose.corrector` integrate a continuous-time rate with the
trapezoidal rule; they are exact only as the step size goes to zero, and their rate contains
``g^2/2 (|S|^2 - sum_i b_i |s_i|^2)``, in which squared score errors of a learned model enter with
a positive sign. When every expert has a log density (``log q_{i,t}``, e.g. an energy-parameterised
network), the reverse SDE step can instead be weighted as a proposal of a discrete-time SMC
sampler (Del Moral, Doucet & Jasra 2006) with the targets ``pi_k = prod_i q_{i,t_k}^{b_i}`` of the
grid ``1 = t_0 > ... > t_K``:

    log G_{k+1}(x, x') = log pi_{k+1}(x') - log pi_k(x) + log L_k(x | x') - log M_k(x' | x),

* ``M_k(x' | x) = N(x'; x + [-f + (1 + a)/2 g^2 S](x, t_k) dtau_k, a g^2(t_k) dtau_k I)``: the
  Euler-Maruyama step the particles take (noise level ``a > 0``);
* ``L_k(x | x') = N(x; c_k x', a (sigma_k^2 - c_k^2 sigma_{k+1}^2) I)``, ``c_k = alpha_k /
  alpha_{k+1}``: the backward kernel, the forward noising transition from ``t_{k+1}`` to ``t_k``
  with its variance scaled by ``a`` (for ``a = 1`` the forward process itself; for the tempered
  noise ``a = 1/B`` the noising of a ``1/B``-narrower density, which is what ``pi_t`` locally is).

Both Gaussians live on the free subspace (``n_free`` dimensions; CoM-free coordinates), so their
normalisers count ``n_free``. Any positive ``L_k`` gives exact weights (its choice changes only
their variance): the weighted particles target ``pi_{k+1}`` after every step, whatever the step
size, and ``log Z`` estimates ``log int pi_K`` up to the experts' own normalisation (an energy
model's ``-E_theta`` has an unknown ``t``-dependent constant, so there ``log Z`` is relative).
Unlike the FKC rate, the weights never use ``|s|^2`` and need no consistency between the
network's scores at different ``t``: only that ``pi_K`` is the density the user wants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..compose.algebra import Composition


@dataclass(frozen=True)
class BackwardKernel:
    """``L_k(x | x') = N(x; scale x', var I)`` on the free subspace (one per grid step)."""

    scale: float
    var: float


def backward_kernels(composition: Composition, times: torch.Tensor, a: float) -> list[BackwardKernel]:
    """:class:`BackwardKernel` of every step ``t_k -> t_{k+1}`` of a decreasing grid ``(K + 1,)``.

    ``scale = alpha_k / alpha_{k+1}``, ``var = a (sigma_k^2 - scale^2 sigma_{k+1}^2)`` (float64).
    Raises if ``a <= 0`` (the probability-flow ODE has no transition density) or a variance is not
    positive (a grid that does not decrease).
    """
    if not a > 0:
        raise ValueError(f"density weights need a stochastic step (noise level a > 0), got a={a}; "
                         "the probability-flow ODE has no transition density")
    proc = composition.process
    t = times.to(torch.float64)
    log_alpha, sigma2 = proc.log_alpha(t), proc.sigma2(t)
    scale = torch.exp(log_alpha[:-1] - log_alpha[1:])
    var = a * (sigma2[:-1] - scale.square() * sigma2[1:])
    if not bool((var > 0).all()):
        k = int(torch.nonzero(var <= 0)[0])
        raise ValueError(f"backward kernel variance {float(var[k]):.3g} <= 0 at step {k} "
                         f"(t={float(t[k]):.6g} -> {float(t[k + 1]):.6g}); the grid must decrease")
    return [BackwardKernel(s, v) for s, v in zip(scale.tolist(), var.tolist(), strict=True)]


def _gaussian_log_prob(sq: torch.Tensor, var: float, n_free: int) -> torch.Tensor:
    """``log N`` of a residual with squared norm ``sq (n,)`` and variance ``var`` per dimension."""
    return -0.5 * sq / var - 0.5 * n_free * math.log(2.0 * math.pi * var)


def step_log_weight(x: torch.Tensor, x_new: torch.Tensor, z: torch.Tensor, log_p: torch.Tensor,
                    log_p_new: torch.Tensor, noise_var: float, kernel: BackwardKernel,
                    n_free: int) -> torch.Tensor:
    """``log G_{k+1}`` of the module docstring, ``(n,)`` float64.

    Args:
        x, x_new: ``(n, *event_shape)`` particles before and after the step (free subspace).
        z: ``(n, *event_shape)`` the standard normal noise of the step, projected on the free
            subspace (``x_new = mean + sqrt(noise_var) z``): ``log M`` is computed from ``z``
            directly, with no cancellation between ``x_new`` and the mean.
        log_p, log_p_new: ``(n,)`` ``log pi_k(x)`` and ``log pi_{k+1}(x_new)``.
        noise_var: ``a g^2(t_k) dtau_k``, the variance of M per dimension.
        kernel: the backward kernel of this step.
        n_free: free dimensions of one particle.
    """
    z_sq = z.flatten(1).to(torch.float64).square().sum(-1)
    resid = x.to(torch.float64) - kernel.scale * x_new.to(torch.float64)
    log_l = _gaussian_log_prob(resid.flatten(1).square().sum(-1), kernel.var, n_free)
    # log N(x_new; mean, v_M) with x_new - mean = sqrt(v_M) z
    log_m = -0.5 * z_sq - 0.5 * n_free * math.log(2.0 * math.pi * noise_var)
    return log_p_new.to(torch.float64) - log_p.to(torch.float64) + log_l - log_m
