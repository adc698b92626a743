"""Gaussian noise processes (forward SDEs) for score-based diffusion.

Conventions (used everywhere in fkc)
------------------------------------
* Diffusion time ``t in [0, 1]``: ``t = 0`` is data, ``t = 1`` is noise. Sampling runs from
  ``t = 1`` to ``t = 0``.
* Forward SDE ``dx = f(x, t) dt + g(t) dW`` with a linear drift ``f(x, t) = (d log alpha / dt) x``.
* Marginals ``q_t(x | x_0) = N(x; alpha(t) x_0, sigma(t)^2 I)``.

Every process here is fixed by the pair ``(alpha(t), sigma(t))``; the drift and diffusion follow
from it in exactly one place (:meth:`NoiseProcess.g2`):

    f(x, t) = (d log alpha/dt) x,        g(t)^2 = d sigma^2/dt - 2 (d log alpha/dt) sigma^2,

which makes the SDE's marginals exactly ``alpha x_0 + sigma eps`` for ``t > 0`` (if ``sigma(0) > 0``,
as for the VE process, the "data" density at ``t = 0`` is the data convolved with
``N(0, sigma(0)^2)``). The divergence of the drift over the free dimensions is
``div f = n_free * d log alpha/dt``.

Time arguments ``t`` are tensors (any shape; results broadcast to it) in the dtype of the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .space import CoMFreeSpace, EuclideanSpace

Space = EuclideanSpace | CoMFreeSpace


def _as_tensor(t, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        return t
    if like is not None:
        return torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return torch.as_tensor(t, dtype=torch.float64)


@dataclass(frozen=True)
class NoiseProcess:
    """Base class: subclasses define ``log_alpha``, ``dlog_alpha``, ``sigma2``, ``dsigma2``
    and ``prior_std``. Instances are frozen dataclasses, so two processes with equal parameters
    compare equal (experts are composable only when their processes are equal)."""

    com_free: bool = field(default=False, kw_only=True)

    # ---- schedule (subclasses) -------------------------------------------------------------
    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dlog_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """d log alpha / dt."""
        raise NotImplementedError

    def sigma2(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dsigma2(self, t: torch.Tensor) -> torch.Tensor:
        """d sigma^2 / dt."""
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """Standard deviation of the (isotropic Gaussian) prior at ``t = 1``."""
        raise NotImplementedError

    # ---- derived quantities (one place each) ---------------------------------------------
    @property
    def space(self) -> Space:
        return CoMFreeSpace() if self.com_free else EuclideanSpace()

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(_as_tensor(t)))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.sigma2(_as_tensor(t)))

    def f(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward drift ``f(x, t) = (d log alpha/dt) x``; x: ``(n, *event_shape)``, t: ``(n,)``."""
        return _expand(self.dlog_alpha(t), x) * x

    def g2(self, t: torch.Tensor) -> torch.Tensor:
        """Squared diffusion ``g^2 = d sigma^2/dt - 2 (d log alpha/dt) sigma^2``."""
        t = _as_tensor(t)
        return self.dsigma2(t) - 2.0 * self.dlog_alpha(t) * self.sigma2(t)

    def div_f(self, t: torch.Tensor, event_shape: tuple[int, ...]) -> torch.Tensor:
        """Divergence of the drift over the free dimensions: ``n_free * d log alpha/dt``."""
        return self.space.n_free(tuple(event_shape)) * self.dlog_alpha(_as_tensor(t))

    # ---- prior and marginals ---------------------------------------------------------------
    def sample_prior(
        self,
        n: int,
        event_shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        precision: float = 1.0,
    ) -> torch.Tensor:
        """Draw ``(n, *event_shape)`` from ``N(0, prior_std^2 / precision)`` on the free subspace.

        ``precision = B = sum_i b_i`` gives the prior of a composition prod_i p^{b_i}.
        """
        eps = torch.randn((n, *event_shape), generator=generator, dtype=dtype, device=device)
        return self.space.project(eps) * (self.prior_std / math.sqrt(precision))

    def prior_log_prob(self, x: torch.Tensor, precision: float = 1.0) -> torch.Tensor:
        """Log density of :meth:`sample_prior` (w.r.t. Lebesgue measure on the free subspace).

        x: ``(n, *event_shape)`` → ``(n,)``.
        """
        var = self.prior_std**2 / precision
        n_free = self.space.n_free(tuple(x.shape[1:]))
        sq = x.flatten(1).square().sum(-1)
        return -0.5 * sq / var - 0.5 * n_free * math.log(2 * math.pi * var)

    def marginal(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``x_t ~ q_t(. | x_0)``. x0: ``(n, *event_shape)``, t: ``(n,)``.

        Returns ``(x_t, eps)`` with ``x_t = alpha(t) x_0 + sigma(t) eps`` (eps projected on the
        free subspace).
        """
        t = _as_tensor(t, x0)
        eps = self.space.project(
            torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        )
        return _expand(self.alpha(t), x0) * x0 + _expand(self.sigma(t), x0) * eps, eps

    def marginal_log_prob(self, x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``log q_t(x | x_0)`` on the free subspace; x, x0: ``(n, *event_shape)`` → ``(n,)``."""
        t = _as_tensor(t, x)
        var = self.sigma2(t)
        n_free = self.space.n_free(tuple(x.shape[1:]))
        sq = (x - _expand(self.alpha(t), x) * x0).flatten(1).square().sum(-1)
        return -0.5 * sq / var - 0.5 * n_free * torch.log(2 * math.pi * var)


def _expand(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-particle quantity ``(n,)`` (or a scalar) against ``x: (n, ...)``."""
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device)
    return a.reshape(a.shape + (1,) * (x.dim() - a.dim())) if a.dim() > 0 else a


@dataclass(frozen=True)
class VPSDE(NoiseProcess):
    """Variance-preserving process: ``f = -beta(t) x / 2``, ``g^2 = beta(t)``,
    ``sigma^2 = 1 - alpha^2``, prior ``N(0, I)``.

    Schedules:
    * ``"linear"``: ``beta(t) = beta_min + t (beta_max - beta_min)``,
      ``log alpha = -(beta_min t + (beta_max - beta_min) t^2 / 2) / 2`` (Song et al. 2021).
    * ``"cosine"`` (Nichol & Dhariwal 2021): ``alpha(t) = cos(phi(t)) / cos(phi(0))`` with
      ``phi(t) = pi/2 (t * tau + s)/(1 + s)``; ``tau < 1`` is chosen so that ``alpha(1) = 0.01``,
      which keeps ``beta(t) = -2 d log alpha/dt`` finite at ``t = 1``. ``beta_min``/``beta_max``
      do not apply to it and must be left at their defaults.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    schedule: str = "linear"
    cosine_s: float = 0.008

    def __post_init__(self):
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        if self.schedule == "linear":
            if not (math.isfinite(self.beta_min) and math.isfinite(self.beta_max)):
                raise ValueError(f"beta_min, beta_max must be finite, got {self.beta_min}, {self.beta_max}")
            if not 0 < self.beta_min <= self.beta_max:
                raise ValueError(
                    f"need 0 < beta_min <= beta_max, got beta_min={self.beta_min}, beta_max={self.beta_max}"
                )
        else:
            if (self.beta_min, self.beta_max) != (0.1, 20.0):
                raise ValueError(
                    "beta_min/beta_max do not apply to the cosine schedule; got "
                    f"beta_min={self.beta_min}, beta_max={self.beta_max}"
                )
            if not 0 <= self.cosine_s < 1:
                raise ValueError(f"cosine_s must be in [0, 1), got {self.cosine_s}")

    # cosine helpers
    @property
    def _cos_tau(self) -> float:
        s = self.cosine_s
        phi0 = 0.5 * math.pi * s / (1 + s)
        phi1 = math.acos(0.01 * math.cos(phi0))
        return (phi1 * 2 / math.pi * (1 + s) - s)

    def _phi(self, t):
        s = self.cosine_s
        return 0.5 * math.pi * (t * self._cos_tau + s) / (1 + s)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``beta(t) = g(t)^2 = -2 d log alpha/dt``."""
        return -2.0 * self.dlog_alpha(t)

    def log_alpha(self, t):
        t = _as_tensor(t)
        if self.schedule == "linear":
            return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)
        phi0 = self._phi(0.0)
        return torch.log(torch.cos(self._phi(t))) - math.log(math.cos(phi0))

    def dlog_alpha(self, t):
        t = _as_tensor(t)
        if self.schedule == "linear":
            return -0.5 * (self.beta_min + (self.beta_max - self.beta_min) * t)
        dphi = 0.5 * math.pi * self._cos_tau / (1 + self.cosine_s)
        return -torch.tan(self._phi(t)) * dphi

    def sigma2(self, t):
        # clamp: log alpha(0) may round to +1e-17 for the cosine schedule
        return (-torch.expm1(2.0 * self.log_alpha(t))).clamp_min(0.0)

    def dsigma2(self, t):
        t = _as_tensor(t)
        return -2.0 * torch.exp(2.0 * self.log_alpha(t)) * self.dlog_alpha(t)

    @property
    def prior_std(self) -> float:
        return 1.0


@dataclass(frozen=True)
class VESDE(NoiseProcess):
    """Variance-exploding process: ``f = 0``, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``,
    ``g^2 = d sigma^2/dt = 2 sigma^2 log(sigma_max/sigma_min)``, prior ``N(0, sigma_max^2 I)``.

    ``q_0`` is the data convolved with ``N(0, sigma_min^2)`` (take ``sigma_min`` small).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self):
        if not (math.isfinite(self.sigma_min) and math.isfinite(self.sigma_max)):
            raise ValueError(f"sigma_min, sigma_max must be finite, got {self.sigma_min}, {self.sigma_max}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, sigma_max={self.sigma_max}"
            )

    def log_alpha(self, t):
        return torch.zeros_like(_as_tensor(t))

    def dlog_alpha(self, t):
        return torch.zeros_like(_as_tensor(t))

    def sigma2(self, t):
        t = _as_tensor(t)
        return self.sigma_min**2 * torch.exp(2.0 * t * math.log(self.sigma_max / self.sigma_min))

    def dsigma2(self, t):
        return 2.0 * math.log(self.sigma_max / self.sigma_min) * self.sigma2(t)

    @property
    def prior_std(self) -> float:
        return self.sigma_max
