r"""Denoising score matching (Vincent 2011; Song et al. 2021) for CoM-free molecules.

For a molecule ``x_0`` with ``n`` atoms (``n_free = 3 (n - 1)`` free dimensions), a time ``t`` and
CoM-free noise ``eps`` (standard normal on the free subspace),

    x_t = alpha(t) x_0 + sigma(t) eps,       grad log q_t(x_t | x_0) = -eps / sigma(t),

and the network's raw output is converted to a score ``s_theta`` by :func:`fkc.models.to_score`.
The per-molecule loss is

    l(x_0, t, eps) = lambda(t) / n_free * || s_theta(x_t, t) + eps / sigma(t) ||^2,

and the training objective is ``E_t E_{x_0} E_eps l`` with ``t ~ U[t_min, 1]`` and molecules
averaged with equal weight (whatever their size). Weightings ``lambda``:

* ``"eps"``: ``lambda = sigma^2``. Then ``l = ||sigma s_theta + eps||^2 / n_free``; for the
  eps-parameterisation (``s_theta = -eps_theta / sigma``) this is the familiar
  ``||eps_theta(x_t, t) - eps||^2 / n_free`` (1 for ``eps_theta = 0``).
* ``"edm"`` (Karras et al. 2022, rewritten for ``x_t = alpha x_0 + sigma eps``):
  ``lambda = sigma^2 (alpha^2 sigma_d^2 + sigma^2) / (alpha^2 sigma_d^2)``, which equals EDM's
  ``lambda(sigma) ||D - x_0||^2`` and, for the denoiser parameterisation with EDM scaling, the
  unit-variance target ``||F - F_target||^2``.

The score is only evaluated on the free subspace: ``eps`` and ``x_0`` are CoM-free and the
networks' outputs are CoM-free, so the squared norm counts exactly ``n_free`` dimensions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from ..models import to_score
from ..sde import NoiseProcess
from ._data import GraphBatch

__all__ = ["denoising_loss", "loss_weight", "sample_times", "sample_noise"]


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


def sample_times(n: int, t_min: float, how: str, generator: torch.Generator) -> torch.Tensor:
    """``(n,)`` float64 times with marginal ``U[t_min, 1]``: ``"uniform"`` (i.i.d.) or
    ``"stratified"`` (``t_min + (1 - t_min)(perm(i) + u)/n`` with one ``u ~ U[0, 1)`` and a random
    permutation). Drawn on the generator's device (CPU for the trainer)."""
    if how == "uniform":
        u = torch.rand(n, generator=generator, dtype=torch.float64)
    elif how == "stratified":
        u0 = torch.rand(1, generator=generator, dtype=torch.float64)
        perm = torch.randperm(n, generator=generator)
        u = (perm.to(torch.float64) + u0) / n
    else:
        raise ValueError(f"t_sampling must be 'uniform' or 'stratified', got {how!r}")
    return t_min + (1.0 - t_min) * u


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
