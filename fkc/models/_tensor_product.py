r"""NequIP-style tensor-product score network built with e3nn.

Edge ``j -> i`` with ``r_ij = x_j - x_i``, ``r = |r_ij|``:

* angular part: real spherical harmonics ``Y(r_ij / r)`` up to ``lmax`` (``0e + 1o + 2e``);
* radial part: Bessel basis ``b_n(r) = sqrt(2/c) sin(n pi r / c) / r`` (``n = 1..n_basis``)
  concatenated with the bond embedding, through an MLP that outputs the tensor-product weights,
  multiplied by the polynomial envelope ``u(r/c)`` (1 for bonded pairs, which never leave the
  graph).

One interaction block (features ``h`` are a direct sum of irreps):

    h'  = Linear(h)
    m_i = (1/sqrt(K)) sum_j TP_{w(r_ij)}(h'_j, Y(r_ij))          ("uvu" paths, one weight per path
                                                                and channel, K = avg_num_neighbors)
    h   <- Gate(Linear(m_i) + SelfLinear(h))  (+ h when the irreps match: residual)

Gate: scalars ``0e`` through SiLU, pseudo-scalars ``0o`` through tanh (odd, keeps the parity),
``l > 0`` channels multiplied by sigmoid gates. The score is the ``l = 1`` output of a final
linear layer.

Parity. With ``chiral=False`` all irreps carry their true O(3) parity and the output is ``1x1o``
(a polar vector): the network is E(3)-equivariant and, like EGNN, blind to mirror images. With
``chiral=True`` the hidden features also carry the odd-parity channels ``0o, 1e, 2o``
(pseudo-scalars such as triple products appear from the third block on, pseudo-vectors such as
cross products from the second) and the output is ``1x1o + 1x1e`` summed into one vector. A
pseudo-vector does not flip sign under a reflection, so the sum is SE(3)- but not E(3)-equivariant:
the network can tell a molecule from its mirror image (``parity_sensitive = True``; this needs
``n_layers >= 2``).
Invariant features for energy heads are the ``0e`` channels, plus the ``0o`` channels when
``chiral=True`` (rotation invariant, sign-flipping under reflection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn
from torch_geometric.utils import scatter

from ._base import ScoreNetwork
from ._config import BackboneConfig
from ._egnn import polynomial_envelope
from ._parameterization import AlphaSigmaProcess


@dataclass(frozen=True, kw_only=True)
class TensorProductConfig(BackboneConfig):
    """Tensor-product network hyper-parameters (plus :class:`BackboneConfig`'s fields).

    hidden_scalars / hidden_vectors / hidden_tensors: multiplicities of l = 0 / 1 / 2 channels
    (per parity when ``chiral``); lmax: 1 or 2 (spherical harmonics and hidden features);
    n_layers: interaction blocks; cutoff: radius of the graph and of the smooth envelope (network-
    input units); n_basis: Bessel functions; radial_hidden: width of the radial MLP (2 hidden
    layers); chiral: add odd-parity channels so the network distinguishes mirror images.
    """

    name = "tensor_product"

    hidden_scalars: int = 32
    hidden_vectors: int = 8
    hidden_tensors: int = 4
    lmax: int = 2
    n_layers: int = 3
    cutoff: float = 5.0
    n_basis: int = 8
    radial_hidden: int = 32
    chiral: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_int("hidden_scalars", 1)
        self._check_int("hidden_vectors", 1)
        self._check_int("hidden_tensors", 0)
        self._check_choice("lmax", (1, 2))
        self._check_int("n_layers", 1)
        self._check_float("cutoff", 0.0)
        self._check_int("n_basis", 1)
        self._check_int("radial_hidden", 1)
        self._check_bool("chiral")
        if self.lmax == 2 and self.hidden_tensors < 1:
            raise ValueError(
                "TensorProductConfig.hidden_tensors must be >= 1 when lmax=2, got "
                f"{self.hidden_tensors}"
            )
        if self.chiral and self.n_layers < 2:
            raise ValueError(
                "TensorProductConfig.n_layers must be >= 2 when chiral=True (pseudo-vectors first "
                f"appear in the second block), got n_layers={self.n_layers}"
            )


def bessel_basis(r: torch.Tensor, cutoff: float, n_basis: int) -> torch.Tensor:
    """``sqrt(2/c) sin(n pi r/c) / r`` for ``n = 1..n_basis``, finite at ``r = 0``.

    r: ``(E,)``; returns ``(E, n_basis)``.
    """
    n = torch.arange(1, n_basis + 1, dtype=r.dtype, device=r.device)
    # sin(n pi r / c) / r = (n pi / c) sinc(n r / c), torch.sinc(x) = sin(pi x) / (pi x)
    return math.sqrt(2.0 / cutoff) * (n * math.pi / cutoff) * torch.sinc(n * r[:, None] / cutoff)


class _Interaction(nn.Module):
    """One interaction block: ``forward(h (N, irreps_in.dim), sh (E, sh.dim), edge_scalars
    (E, n_edge), edge_weight (E,), edge_index (2, E)) -> (N, irreps_out.dim)``."""

    def __init__(
        self, irreps_in, irreps_sh, irreps_hidden, n_edge, radial_hidden, avg_num_neighbors
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        act = {1: torch.nn.functional.silu, -1: torch.tanh}
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l > 0])
        self.gate = Gate(
            scalars,
            [act[ir.p] for _, ir in scalars],
            o3.Irreps(f"{gated.num_irreps}x0e"),
            [torch.sigmoid],
            gated,
        )
        target = {ir for _, ir in self.gate.irreps_in}
        mid, instructions = [], []
        for i1, (mul, ir1) in enumerate(self.irreps_in):
            for i2, (_, ir2) in enumerate(irreps_sh):
                for ir in ir1 * ir2:
                    if ir in target:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir))
        self.lin_in = o3.Linear(self.irreps_in, self.irreps_in)
        self.tp = o3.TensorProduct(
            self.irreps_in,
            irreps_sh,
            o3.Irreps(mid),
            instructions,
            internal_weights=False,
            shared_weights=False,
        )
        self.radial = FullyConnectedNet(
            [n_edge, radial_hidden, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu
        )
        self.lin_out = o3.Linear(self.tp.irreps_out, self.gate.irreps_in)
        self.self_connection = o3.Linear(self.irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out
        self.residual = self.irreps_in == self.irreps_out
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)

    def forward(self, h, sh, edge_scalars, edge_weight, edge_index):
        src, dst = edge_index
        w = self.radial(edge_scalars) * edge_weight[:, None]
        msg = self.tp(self.lin_in(h)[src], sh, w)
        m = scatter(msg, dst, dim=0, dim_size=h.shape[0], reduce="sum") * self.norm
        out = self.gate(self.lin_out(m) + self.self_connection(h))
        return out + h if self.residual else out


class TensorProductNet(ScoreNetwork):
    """e3nn tensor-product score network; SE(3) (``chiral=True``) or E(3) (``chiral=False``).

    ``TensorProductNet(config, process=None)``; call forms and shapes as :class:`ScoreNetwork`:
    ``model(pos (n_particles, n_atoms, 3), t (n_particles,), graph, condition) -> (n_particles,
    n_atoms, 3)`` and ``model.forward_flat(...) -> (N_total, 3)``.

    Attributes: ``irreps_sh``, ``irreps_hidden``, ``irreps_out`` (``1x1o`` or ``1x1o+1x1e``),
    ``parity_sensitive = config.chiral``.
    """

    def __init__(
        self, config: TensorProductConfig, process: AlphaSigmaProcess | None = None
    ) -> None:
        if not isinstance(config, TensorProductConfig):
            raise ValueError(
                f"TensorProductNet needs a TensorProductConfig, got {type(config).__name__}"
            )
        super().__init__(config, process, dim=config.hidden_scalars)
        c = config
        parities = (1, -1) if c.chiral else None
        mults = {0: c.hidden_scalars, 1: c.hidden_vectors, 2: c.hidden_tensors}
        hidden = []
        for l in range(c.lmax + 1):
            natural = 1 if l % 2 == 0 else -1  # parity of Y^l under inversion: (-1)^l
            for p in parities or (natural,):
                hidden.append((mults[l], (l, p)))
        self.irreps_hidden = o3.Irreps(hidden)
        self.irreps_sh = o3.Irreps.spherical_harmonics(c.lmax)
        self.irreps_out = o3.Irreps("1x1o + 1x1e") if c.chiral else o3.Irreps("1x1o")
        self.parity_sensitive = c.chiral

        n_edge = c.n_basis + (self.bond_dim if self.bond_embedding is not None else 0)
        irreps = o3.Irreps(f"{c.hidden_scalars}x0e")
        blocks = []
        for _ in range(c.n_layers):
            block = _Interaction(
                irreps,
                self.irreps_sh,
                self.irreps_hidden,
                n_edge,
                c.radial_hidden,
                c.avg_num_neighbors,
            )
            blocks.append(block)
            irreps = block.irreps_out
        self.blocks = nn.ModuleList(blocks)
        self.irreps_final = irreps
        self.output = o3.Linear(irreps, self.irreps_out)
        # invariant channels of the final features: 0e (and 0o when chiral)
        idx, start = [], 0
        for mul, ir in irreps:
            if ir.l == 0:
                idx.extend(range(start, start + mul))
            start += mul * ir.dim
        self.register_buffer("_inv_index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.n_invariant = len(idx)

    @property
    def cutoff(self) -> float:
        return self.config.cutoff

    def _backbone(self, x, h, edge_index, edge_bond, batch, num_graphs):
        c = self.config
        src, dst = edge_index
        vec = x[src] - x[dst]
        r = vec.norm(dim=-1)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        edge_scalars = bessel_basis(r, c.cutoff, c.n_basis)
        if self.bond_embedding is not None:
            edge_scalars = torch.cat([edge_scalars, self.bond_embedding(edge_bond)], dim=-1)
        env = polynomial_envelope(r, c.cutoff)
        edge_weight = torch.where(edge_bond > 0, torch.ones_like(env), env)
        for block in self.blocks:
            h = block(h, sh, edge_scalars, edge_weight, edge_index)
        out = self.output(h)
        v = out[:, 0:3] + out[:, 3:6] if c.chiral else out
        return v, h[:, self._inv_index]
