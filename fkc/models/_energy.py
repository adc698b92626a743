r"""Energy-parameterised score: ``s_theta(x, t) = -grad_x E_theta(x, t)``.

``E_theta(x, t) = scale(t) * sum_i MLP(inv_i(x, t))`` with ``inv_i`` the rotation-invariant node
features of a backbone (EGNN's ``h``, the tensor-product network's scalar channels, the frame
transformer's tokens) and ``scale(t) = 1`` or ``1 / sigma(t)`` (``sigma_scaling=True``: then
``grad_x (sigma E)`` plays the role of the eps-prediction, which keeps the readout O(1) at small
noise).

``edm_preconditioning=True`` (needs the backbone's ``sigma_data`` and process) is EDM's denoiser
pre-conditioning (Karras et al. 2022) written as an energy, for ``x_t = alpha x_0 + sigma eps``:

    E(x, t) = |x|^2 / (2 s^2) - (alpha sigma_d / sigma) psi(c_in x, t),
    s^2 = alpha^2 sigma_d^2 + sigma^2,  c_in = 1 / s,  psi = sum_i MLP(inv_i),

whose score ``-grad E = -x / s^2 + alpha sigma_d / (sigma s) grad_y psi`` is exactly the score of
the EDM denoiser ``D = c_skip x + c_out F`` with ``F = grad_y psi``: the first term is the score
of Gaussian data with variance ``sigma_d^2`` (the exact answer at large noise), and with the EDM
loss weighting the target of ``F`` has unit variance at every noise level. The readout's last
layer starts at zero, so an untrained model is that Gaussian.

Because the score is an exact gradient, the model also offers a log density up to a
``t``-dependent constant, ``log p_t(x) = -E_theta(x, t) + const(t)``, which Feynman-Kac weights of
annealed/product experts can use (Thornton et al., "Composition and control with distilled
energy diffusion models and sequential Monte Carlo", AISTATS 2025; PITA, arXiv:2506.16471).
The energy inherits the backbone's symmetry: invariant under rotations, translations and atom
permutations; under reflections too unless the backbone is ``parity_sensitive``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.utils import scatter

from fkc.sde.space import remove_com

from ._base import ScoreNetwork, map_chunks, scatter_remove_com
from ._config import BackboneConfig, ConfigBase
from .graph import FlatBatch, MolecularGraph


@dataclass(frozen=True, kw_only=True)
class EnergyConfig(ConfigBase):
    """Energy model: a backbone config plus the readout.

    backbone: :class:`EGNNConfig`, :class:`TensorProductConfig` or :class:`FrameTransformerConfig`
    (or its dict form in ``from_dict``); readout_hidden: width of the 2-layer invariant readout MLP; sigma_scaling:
    ``E = E_raw / sigma(t)`` (needs the backbone's process); edm_preconditioning: the EDM form of
    the module docstring (needs the backbone's process and ``sigma_data``; excludes
    ``sigma_scaling``).
    """

    name = "energy"

    backbone: BackboneConfig
    readout_hidden: int = 64
    sigma_scaling: bool = False
    edm_preconditioning: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, BackboneConfig):
            raise ValueError(
                "EnergyConfig.backbone must be a backbone config (EGNNConfig, "
                "TensorProductConfig), "
                f"got {type(self.backbone).__name__}"
            )
        self._check_int("readout_hidden", 1)
        self._check_bool("sigma_scaling")
        self._check_bool("edm_preconditioning")
        if self.edm_preconditioning and self.sigma_scaling:
            raise ValueError("EnergyConfig: choose one of sigma_scaling and edm_preconditioning")
        if self.edm_preconditioning and getattr(self.backbone, "sigma_data", None) is None:
            raise ValueError(
                "EnergyConfig.edm_preconditioning needs the backbone's sigma_data, got None"
            )

    @classmethod
    def _convert_nested(cls, d):
        from ._registry import config_from_dict

        d = dict(d)
        if isinstance(d.get("backbone"), dict):
            d["backbone"] = config_from_dict(d["backbone"])
        return d


class EnergyScoreModel(nn.Module):
    """Score as the negative gradient of a learned invariant energy.

    ``EnergyScoreModel(backbone, readout_hidden=64, sigma_scaling=False)``; ``backbone`` is a
    :class:`ScoreNetwork` (its vector head is unused). The process, if any, is the backbone's.

    * ``energy(pos (n_particles, n_atoms, 3), t (n_particles,), graph, condition)``
      ``-> (n_particles,)``
    * ``log_density(...) = -energy(...)`` (up to a constant in ``x``)
    * ``energy_and_score(...) -> ((n_particles,), (n_particles, n_atoms, 3))``: both from one
      forward/backward pass (what MALA needs)
    * ``score(..., create_graph=None) -> (n_particles, n_atoms, 3)``: ``-grad_x E`` by autograd;
      ``create_graph`` defaults to ``self.training`` (so a score-matching loss can be
      back-propagated). ``forward`` is ``score`` (``parameterization = "score"``).
    * flat forms ``energy_flat``/``forward_flat`` with the arguments of
      :meth:`ScoreNetwork.forward_flat`; ``energy_flat`` returns ``(n_graphs,)``.
    """

    parameterization = "score"

    def __init__(
        self,
        backbone: ScoreNetwork,
        readout_hidden: int = 64,
        sigma_scaling: bool = False,
        edm_preconditioning: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, ScoreNetwork):
            raise ValueError(
                "backbone must be a ScoreNetwork (EGNN, TensorProductNet, FrameTransformer), got "
                f"{type(backbone).__name__}"
            )
        # validates readout_hidden / sigma_scaling eagerly
        self._energy_config = EnergyConfig(
            backbone=backbone.config,
            readout_hidden=readout_hidden,
            sigma_scaling=sigma_scaling,
            edm_preconditioning=edm_preconditioning,
        )
        if (sigma_scaling or edm_preconditioning) and backbone.process is None:
            what = "sigma_scaling" if sigma_scaling else "edm_preconditioning"
            raise ValueError(f"{what}=True needs a backbone constructed with a process")
        self.backbone = backbone
        self.readout = nn.Sequential(
            nn.Linear(backbone.n_invariant, readout_hidden),
            nn.SiLU(),
            nn.Linear(readout_hidden, readout_hidden),
            nn.SiLU(),
            nn.Linear(readout_hidden, 1),
        )
        if edm_preconditioning:  # start at the Gaussian (module docstring)
            nn.init.zeros_(self.readout[-1].weight)
            nn.init.zeros_(self.readout[-1].bias)

    @property
    def config(self) -> EnergyConfig:
        return self._energy_config

    @property
    def process(self):
        return self.backbone.process

    @property
    def parity_sensitive(self) -> bool:
        return self.backbone.parity_sensitive

    # ---- energies -----------------------------------------------------------------------------
    def _energy(self, flat: FlatBatch, t, condition, generator) -> torch.Tensor:
        inv, sigma = self.backbone.invariant_features(flat, t, condition, generator)
        e_atom = self.readout(inv).squeeze(-1).to(flat.pos.dtype)
        e = scatter(e_atom, flat.batch, dim=0, dim_size=flat.num_graphs, reduce="sum")
        cfg = self.config
        if (cfg.sigma_scaling or cfg.edm_preconditioning) and bool((sigma <= 0).any()):
            what = "sigma_scaling" if cfg.sigma_scaling else "edm_preconditioning"
            raise ValueError(
                f"{what}=True needs sigma(t) > 0, got sigma = 0 at t = {t[sigma <= 0].tolist()[:5]}"
            )
        if cfg.sigma_scaling:
            e = e / sigma
        elif cfg.edm_preconditioning:
            t = t.to(device=flat.pos.device)
            alpha = self.process.alpha(t).to(e.dtype)
            sigma = sigma.to(e.dtype)
            sd = self.backbone.config.sigma_data
            x = scatter_remove_com(flat.pos, flat.batch, flat.num_graphs)
            sq = scatter((x * x).sum(-1), flat.batch, dim=0, dim_size=flat.num_graphs, reduce="sum")
            e = sq / (2 * (alpha**2 * sd**2 + sigma**2)) - (alpha * sd / sigma) * e
        return e

    def energy(
        self, pos, t, graph: MolecularGraph, condition=None, *, generator=None, chunk_size=None
    ) -> torch.Tensor:
        """``E_theta(x, t)``: pos ``(n_particles, n_atoms, 3)``, t ``(n_particles,)``
        -> ``(n_particles,)``. ``chunk_size``: see :func:`fkc.models.map_chunks`."""

        def run(pos, t, condition):
            flat, t, condition = self.backbone._flatten(pos, t, graph, condition)
            return self._energy(flat, t, condition, generator)

        return map_chunks(run, pos, t, condition, chunk_size)

    def energy_and_score(
        self, pos, t, graph: MolecularGraph, condition=None, *, generator=None, chunk_size=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E_theta (n_particles,), -grad_x E_theta (n_particles, n_atoms, 3))`` from one
        forward and one backward pass (inference: no graph is kept)."""
        n, n_atoms = pos.shape[0], pos.shape[1]

        def run(pos, t, condition):
            e, s = self._energy_and_minus_grad(
                lambda x: self.energy(x, t, graph, condition, generator=generator),
                pos.detach(),
                create_graph=False,
            )
            return torch.cat([e.detach()[:, None], s.flatten(1)], dim=1)

        out = map_chunks(run, pos, t, condition, chunk_size)
        return out[:, 0], remove_com(out[:, 1:].reshape(n, n_atoms, 3))

    def log_density(
        self, pos, t, graph: MolecularGraph, condition=None, *, generator=None, chunk_size=None
    ) -> torch.Tensor:
        """``-E_theta(x, t)`` = ``log p_t(x)`` up to a constant in ``x``: ``(n_particles,)``."""
        return -self.energy(pos, t, graph, condition, generator=generator, chunk_size=chunk_size)

    def energy_flat(
        self,
        pos,
        t,
        batch,
        atom_types,
        edge_index=None,
        bond_types=None,
        condition=None,
        *,
        atom_features=None,
        generator=None,
    ) -> torch.Tensor:
        """Flat-batch energy: pos ``(N_total, 3)``, t ``(n_graphs,)`` -> ``(n_graphs,)``."""
        flat = FlatBatch(
            pos, batch, atom_types, edge_index, bond_types, atom_features, int(t.shape[0])
        )
        return self._energy(flat, t, condition, generator)

    # ---- scores -------------------------------------------------------------------------------
    def _energy_and_minus_grad(self, energy_fn, pos, create_graph):
        """``(E(pos), -grad E(pos))`` by autograd; ``create_graph=None`` follows training mode."""
        if create_graph is None:
            create_graph = self.training
        with torch.enable_grad():
            x = pos if pos.requires_grad else pos.detach().requires_grad_(True)
            e = energy_fn(x)
            (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
        return e, -g

    def _grad(self, energy_fn, pos, create_graph):
        return self._energy_and_minus_grad(energy_fn, pos, create_graph)[1]

    def score(
        self,
        pos,
        t,
        graph: MolecularGraph,
        condition=None,
        *,
        create_graph=None,
        generator=None,
        chunk_size=None,
    ) -> torch.Tensor:
        """``-grad_x E_theta(x, t)``: ``(n_particles, n_atoms, 3)``, CoM-free."""

        def run(pos, t, condition):
            return self._grad(
                lambda x: self.energy(x, t, graph, condition, generator=generator),
                pos,
                create_graph,
            )

        return remove_com(map_chunks(run, pos, t, condition, chunk_size))

    def forward(
        self,
        pos,
        t,
        graph: MolecularGraph,
        condition=None,
        *,
        create_graph=None,
        generator=None,
        chunk_size=None,
    ) -> torch.Tensor:
        """Same as :meth:`score` (the raw output of an energy model is the score)."""
        return self.score(
            pos,
            t,
            graph,
            condition,
            create_graph=create_graph,
            generator=generator,
            chunk_size=chunk_size,
        )

    def forward_flat(
        self,
        pos,
        t,
        batch,
        atom_types,
        edge_index=None,
        bond_types=None,
        condition=None,
        *,
        atom_features=None,
        create_graph=None,
        generator=None,
    ) -> torch.Tensor:
        """Flat-batch score ``-grad_x E``: ``(N_total, 3)``, CoM-free per molecule."""
        s = self._grad(
            lambda x: self.energy_flat(
                x,
                t,
                batch,
                atom_types,
                edge_index,
                bond_types,
                condition,
                atom_features=atom_features,
                generator=generator,
            ),
            pos,
            create_graph,
        )
        return scatter_remove_com(s, batch, int(t.shape[0]))
