r"""Denoising score matching (Vincent 2011; Song et al. 2021) for CoM-free molecules.

For a molecule ``x_0`` with ``n`` atoms (``n_free = 3 (n - 1)`` free dimensions), a time ``t`` and
CoM-free noise ``eps`` (standard normal on the free subspace),

    x_t = alpha(t) x_0 + sigma(t) eps,       grad log q_t(x_t | x_0) = -eps / sigma(t),

and the network's raw output is converted to a score ``s_theta`` by :func:`fkc.models.to_score`.
The per-molecule loss is

    l(x_0, t, eps) = lambda(t) / n_free * || s_theta(x_t, t) + eps / sigma(t) ||^2,

and the training objective is ``E_t E_{x_0} E_eps l`` with ``t ~ U[t_min, 1]`` (or the mixture of
:func:`sample_times`, which reweights the objective towards small noise) and molecules averaged
with equal weight (whatever their size). Weightings ``lambda``:

* ``"eps"``: ``lambda = sigma^2``. Then ``l = ||sigma s_theta + eps||^2 / n_free``; for the
  eps-parameterisation (``s_theta = -eps_theta / sigma``) this is the familiar
  ``||eps_theta(x_t, t) - eps||^2 / n_free`` (1 for ``eps_theta = 0``).
* ``"edm"`` (Karras et al. 2022, rewritten for ``x_t = alpha x_0 + sigma eps``):
  ``lambda = sigma^2 (alpha^2 sigma_d^2 + sigma^2) / (alpha^2 sigma_d^2)``, which equals EDM's
  ``lambda(sigma) ||D - x_0||^2`` and, for the denoiser parameterisation with EDM scaling, the
  unit-variance target ``||F - F_target||^2``.

The score is only evaluated on the free subspace: ``eps`` and ``x_0`` are CoM-free and the
networks' outputs are CoM-free, so the squared norm counts exactly ``n_free`` dimensions.

Energy matching (energy models only, :func:`energy_residual`). An energy model has
``s_theta = -grad_x E_theta`` and so ``log q_t(x) = -E_theta(x, t) + const(t)``. When the data
are Boltzmann samples ``p(x) ∝ exp(-U(x) / kT)`` with known potential energies ``U_i``, the
residual

    r_i = E_theta(x0_i, t0) - U_i / kT          (nats; E_theta in nats, U and kT in one unit)

is the same constant ``log Z_theta - log Z`` for every molecule if ``q_{t0} = p``, which holds
as ``t0 -> 0``. The batch term ``Var_i(r_i) = mean_i (r_i - mean_j r_j)^2`` (the constant is
free) is added to the denoising loss with a weight. It needs one forward pass of ``E_theta``
at the clean data and first derivatives in ``theta`` only.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter

from ..models import to_score
from ..sde import NoiseProcess
from ._data import GraphBatch

__all__ = [
    "denoising_loss",
    "energy_matching_loss",
    "energy_residual",
    "loss_weight",
    "sample_noise",
    "sample_times",
]


def loss_weight(process: NoiseProcess, t: torch.Tensor, weighting: str,
                sigma_data: float | None = None) -> torch.Tensor:
    """``lambda(t)`` of the module docstring; t: ``(G,)`` -> ``(G,)`` (dtype of t)."""
    sigma2 = process.sigma2(t)
    if weighting == "eps":
        return sigma2
    if weighting == "edm":
        if sigma_data is None:
            raise ValueError("weighting='edm' needs sigma_data")
        a2 = torch.exp(2 * process.log_alpha(t))
        return sigma2 * (a2 * sigma_data**2 + sigma2) / (a2 * sigma_data**2)
    raise ValueError(f"weighting must be 'eps' or 'edm', got {weighting!r}")


def _stratified_unit(n: int, generator: torch.Generator) -> torch.Tensor:
    """``(perm(i) + u) / n``: one uniform offset, a random permutation (float64, in [0, 1))."""
    u0 = torch.rand(1, generator=generator, dtype=torch.float64)
    perm = torch.randperm(n, generator=generator)
    return (perm.to(torch.float64) + u0) / n


def log_noise_to_signal(process: NoiseProcess, t: torch.Tensor) -> torch.Tensor:
    """``log(sigma(t) / alpha(t))``, increasing in ``t`` (float64 in, float64 out)."""
    return 0.5 * torch.log(process.sigma2(t)) - process.log_alpha(t)


def time_of_log_nsr(process: NoiseProcess, target: torch.Tensor, t_lo: float,
                    t_hi: float = 1.0, iters: int = 60) -> torch.Tensor:
    """Invert :func:`log_noise_to_signal` on ``[t_lo, t_hi]`` by bisection (``(n,)`` float64;
    60 halvings resolve t to ~1e-18, below float64 spacing)."""
    lo = torch.full_like(target, t_lo)
    hi = torch.full_like(target, t_hi)
    for _ in range(iters):  # bisection steps, vectorised over the batch
        mid = 0.5 * (lo + hi)
        below = log_noise_to_signal(process, mid) < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def sample_times(n: int, t_min: float, how: str, generator: torch.Generator,
                 process: NoiseProcess | None = None) -> torch.Tensor:
    """``(n,)`` float64 times in ``[t_min, 1]``, drawn on the generator's device (CPU).

    * ``"uniform"``: i.i.d. ``U[t_min, 1]``;
    * ``"stratified"``: ``t_min + (1 - t_min)(perm(i) + u)/n`` with one ``u ~ U[0, 1)`` and a
      random permutation (marginal ``U[t_min, 1]``, lower variance);
    * ``"mixed"`` (needs ``process``): ``ceil(n/2)`` times from an ``n``-point ``"stratified"``
      draw (its first entries, i.e. a random half of the strata), the other ``floor(n/2)``
      stratified in ``lambda = log(sigma(t)/alpha(t))`` between ``lambda(t_min)`` and
      ``lambda(1)`` (log-uniform noise-to-signal ratio), then shuffled. The second half puts
      far more samples at small noise, where the local geometry (bond lengths, chirality) is
      learned: for the VP linear schedule only ~2 % of ``U[0.001, 1]`` lies below
      ``sigma = 0.1``, against ~25 % of the log-uniform half.
    """
    if how == "uniform":
        u = torch.rand(n, generator=generator, dtype=torch.float64)
    elif how in ("stratified", "mixed"):
        u = _stratified_unit(n, generator)
    else:
        raise ValueError(f"t_sampling must be 'uniform', 'stratified' or 'mixed', got {how!r}")
    t = t_min + (1.0 - t_min) * u
    if how == "mixed":
        if process is None:
            raise ValueError("t_sampling='mixed' needs the noise process (process=...)")
        n_log = n // 2
        if n_log > 0:
            ends = log_noise_to_signal(process, torch.tensor([t_min, 1.0], dtype=torch.float64))
            lam = ends[0] + (ends[1] - ends[0]) * _stratified_unit(n_log, generator)
            t_log = time_of_log_nsr(process, lam, t_min).clamp(t_min, 1.0)
            t = torch.cat([t[: n - n_log], t_log])[torch.randperm(n, generator=generator)]
    return t


def sample_noise(batch: GraphBatch, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise ``(N, 3)`` projected to zero centre of mass per molecule (drawn on
    CPU in the dtype of ``batch.pos``)."""
    eps = torch.randn(batch.pos.shape, generator=generator, dtype=batch.pos.dtype)
    mean = scatter(eps, batch.batch.cpu(), dim=0, dim_size=batch.num_graphs, reduce="mean")
    return eps - mean[batch.batch.cpu()]


def denoising_loss(
    model: nn.Module,
    process: NoiseProcess,
    batch: GraphBatch,
    t: torch.Tensor,
    eps: torch.Tensor,
    *,
    weighting: str = "eps",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-molecule denoising score-matching loss ``l`` (module docstring): ``(G,)``.

    model: an :mod:`fkc.models` network (``forward_flat``; raw output in
    ``model.parameterization``); batch: clean molecules (on the model's device); t: ``(G,)``
    times; eps: ``(N, 3)`` CoM-free noise; generator: the model's classifier-free dropout
    generator (training mode). ``t`` and ``eps`` are moved to ``batch.pos``'s device and dtype.
    """
    pos = batch.pos
    dtype, device = pos.dtype, pos.device
    t64 = t.to(device=device, dtype=torch.float64)
    eps = eps.to(device=device, dtype=dtype)
    b = batch.batch
    alpha = process.alpha(t64).to(dtype)
    sigma = process.sigma(t64).to(dtype)
    x_t = alpha[b, None] * pos + sigma[b, None] * eps
    t_net = t64.to(dtype)
    raw = model.forward_flat(
        x_t, t_net, b, batch.atom_types, batch.edge_index, batch.bond_types, batch.condition,
        atom_features=batch.atom_features, generator=generator,
    )
    score = to_score(raw, x_t, t_net[b], process, model.parameterization)
    resid = score + eps / sigma[b, None]
    sq = scatter((resid * resid).sum(-1), b, dim=0, dim_size=batch.num_graphs, reduce="sum")
    sigma_data = getattr(getattr(model.config, "backbone", model.config), "sigma_data", None)
    lam = loss_weight(process, t64, weighting, sigma_data).to(dtype)
    n_free = 3 * (batch.n_atoms.to(device) - 1)
    return lam * sq / n_free.to(dtype)


def energy_residual(
    model: nn.Module,
    batch: GraphBatch,
    t0: float,
    kT: float,
) -> torch.Tensor:
    """Per-molecule residual ``r_i = E_theta(x0_i, t0) - U_i / kT`` in nats (module docstring):
    ``(G,)``, float64 (``batch.energy``'s dtype).

    model: an energy model (``energy_flat``, e.g. :class:`fkc.models.EnergyScoreModel`), with
    the sign convention ``log q_t(x) = -E_theta(x, t) + const(t)``; batch: clean, CoM-free
    molecules (on the model's device) with ``batch.energy = U (G,)``; t0: the time in
    ``(0, 1)``; kT: ``k_B T`` of the data in the unit of ``U`` (> 0). The energy is evaluated
    without classifier-free dropout (the model is put in eval mode for the call, then restored):
    ``U_i`` belongs to the molecule with its condition. Differentiable in the parameters.
    """
    if batch.energy is None:
        raise ValueError("energy_residual needs batch.energy (per-molecule potential energies)")
    if not (isinstance(kT, (int, float)) and math.isfinite(kT) and kT > 0):
        raise ValueError(f"kT must be a finite number > 0, got {kT!r}")
    pos = batch.pos
    t = torch.full((batch.num_graphs,), float(t0), dtype=pos.dtype, device=pos.device)
    was_training = model.training
    model.eval()
    try:
        e = model.energy_flat(
            pos, t, batch.batch, batch.atom_types, batch.edge_index, batch.bond_types,
            batch.condition, atom_features=batch.atom_features,
        )
    finally:
        model.train(was_training)
    u = batch.energy
    return e.to(u.dtype) - u / kT


def energy_matching_loss(residual: torch.Tensor) -> torch.Tensor:
    """``mean_i (r_i - mean_j r_j)^2`` of the residuals ``(G,)`` of :func:`energy_residual`:
    a scalar in nats^2 (the batch variance, so the free constant ``log Z`` does not count)."""
    if residual.dim() != 1 or residual.shape[0] < 2:
        raise ValueError(
            f"the energy-matching loss needs residuals of shape (G >= 2,), got "
            f"{tuple(residual.shape)}"
        )
    return (residual - residual.mean()).square().mean()
