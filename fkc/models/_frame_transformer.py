r"""Canonical-frame transformer: an SE(3)-equivariant, chiral score network for one molecule.

For a molecule with a fixed atom order (alanine dipeptide, a fixed peptide, ...), three atoms
``(a, b, c) = frame_atoms`` define a right-handed frame from the (CoM-free, scaled) positions
``x: (n_atoms, 3)``:

    u  = x_b - x_a,             e1 = u / |u|
    v  = x_c - x_a,             e2 = (v - (v . e1) e1) / |v - (v . e1) e1|
    e3 = e1 x e2,               R  = [e1 e2 e3]      (3 x 3, columns)

The network sees the canonical coordinates ``y_i = R^T x_i`` and returns a vector per atom in
that frame, ``F_can``; the output is ``F = R F_can``. For a rotation ``Q`` (``det Q = +1``) the
frame rotates with the molecule, ``R(Qx) = Q R(x)``, so ``y`` is invariant and ``F(Qx) = Q F(x)``
exactly, whatever the transformer computes (canonicalisation, Kaba et al., ICML 2023). Under a
reflection ``P`` (``det P = -1``) the cross product gives ``e3(Px) = -P e3(x)``: the canonical
coordinates of a mirror image are the mirror image of ``y``, a different input, so the network
tells L- from D-configurations (``parity_sensitive = True``). Translations are removed by the
base class (CoM-free input). The frame is undefined only when ``a, b, c`` are collinear (measure
zero; clamping the norms keeps the map finite there).

Inside the frame a standard pre-LayerNorm transformer acts on the atoms as tokens:

    token_i = h_i + W_y y_i + E_index[i]       (h_i: atom type/feature + time embedding)

with attention logits ``q_i . k_j / sqrt(d_head) + b_l(hops_ij, bond_ij, rbf(|y_i - y_j|))``: a
per-layer, per-head bias from the bond-graph hop distance (the molecular graph), the bond type and
a Gaussian radial basis of the interatomic distance. ``E_index`` (optional) is a learned embedding
of the atom's position in the fixed atom order.

Shapes: positions ``(N_total, 3)`` with every molecule of ``n_atoms`` atoms (the flat batch is
reshaped to ``(n_graphs, n_atoms, ...)``); the output vector ``(N_total, 3)``; the invariant node
features ``(N_total, hidden)`` (rotation invariant, not reflection invariant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._base import ScoreNetwork
from ._config import BackboneConfig
from ._parameterization import AlphaSigmaProcess

_EPS = 1e-8  # norms below this are clamped (degenerate frames only)


@dataclass(frozen=True, kw_only=True)
class FrameTransformerConfig(BackboneConfig):
    """Canonical-frame transformer hyper-parameters (plus :class:`BackboneConfig`'s fields).

    n_atoms: atoms per molecule (every molecule in a batch must have this many).
    frame_atoms: ``[a, b, c]``, three distinct atom indices in ``[0, n_atoms)`` that define the
        frame (origin-free: only the directions ``x_b - x_a`` and ``x_c - x_a`` are used). Choose
        three bonded backbone atoms, e.g. N, CA, C of a residue.
    hidden: token width; n_layers: transformer blocks; n_heads: attention heads (``hidden`` must
        be divisible by it); ff_mult: width multiplier of the feed-forward block.
    n_rbf: Gaussian radial basis functions on ``[0, rbf_max]`` (network-input units) for the
        attention bias; max_hops: bond-graph distances ``0..max_hops`` get their own bias, longer
        ones share one; index_embedding: add a learned embedding of the atom index.
    """

    name = "frame_transformer"

    n_atoms: int = 0
    frame_atoms: list = None  # type: ignore[assignment]  # JSON list of three ints
    hidden: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 2
    n_rbf: int = 16
    rbf_max: float = 4.0
    max_hops: int = 4
    index_embedding: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_int("n_atoms", 3)
        fa = self.frame_atoms
        if (
            not isinstance(fa, (list, tuple))
            or len(fa) != 3
            or any(isinstance(i, bool) or not isinstance(i, int) for i in fa)
            or len(set(fa)) != 3
            or min(fa) < 0
            or max(fa) >= self.n_atoms
        ):
            raise ValueError(
                f"FrameTransformerConfig.frame_atoms must be three distinct atom indices in "
                f"[0, n_atoms={self.n_atoms}), got {fa!r}"
            )
        object.__setattr__(self, "frame_atoms", [int(i) for i in fa])
        self._check_int("hidden", 1)
        self._check_int("n_layers", 1)
        self._check_int("n_heads", 1)
        if self.hidden % self.n_heads:
            raise ValueError(
                f"FrameTransformerConfig.hidden ({self.hidden}) must be divisible by n_heads "
                f"({self.n_heads})"
            )
        self._check_int("ff_mult", 1)
        self._check_int("n_rbf", 1)
        self._check_float("rbf_max", 0.0)
        self._check_int("max_hops", 0)
        self._check_bool("index_embedding")


def canonical_frame(x: torch.Tensor, frame_atoms: list[int]) -> torch.Tensor:
    """Right-handed frame ``R = [e1 e2 e3]`` of each molecule (module docstring).

    x: ``(G, n_atoms, 3)``; returns ``(G, 3, 3)`` with the frame vectors as columns, so the
    canonical coordinates are ``x @ R`` and a canonical vector ``v`` maps back as ``v @ R^T``.
    """
    a, b, c = frame_atoms
    u = x[:, b] - x[:, a]
    v = x[:, c] - x[:, a]
    e1 = u / u.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w = v - (v * e1).sum(-1, keepdim=True) * e1
    e2 = w / w.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def pairwise_distances(y: torch.Tensor) -> torch.Tensor:
    """Interatomic distances ``(G, n, n)`` of ``y: (G, n, 3)``, twice differentiable.

    ``torch.cdist`` has no double backward, which an energy model (score = ``-grad E``, trained
    through the score) needs. The diagonal is exactly 0 with zero gradient: the square root is
    taken of ``max(d^2, 1e-12)`` and the (coincident-atom) entries below that are set to 0.
    """
    d2 = (y[:, :, None, :] - y[:, None, :, :]).pow(2).sum(-1)
    return torch.where(d2 > 1e-12, d2.clamp_min(1e-12).sqrt(), torch.zeros_like(d2))


def hop_distances(adj: torch.Tensor, max_hops: int) -> torch.Tensor:
    """Shortest-path lengths on a bond graph, capped at ``max_hops + 1``.

    adj: ``(G, n, n)`` bool adjacency (symmetric); returns ``(G, n, n)`` long with 0 on the
    diagonal, ``k`` for pairs ``k <= max_hops`` bonds apart and ``max_hops + 1`` otherwise.
    """
    g, n, _ = adj.shape
    eye = torch.eye(n, dtype=torch.bool, device=adj.device).expand(g, n, n)
    hops = torch.full((g, n, n), max_hops + 1, dtype=torch.long, device=adj.device)
    hops[eye] = 0
    reach = eye.clone()
    a = adj.to(torch.float32)
    for k in range(1, max_hops + 1):  # loop over path lengths (<= max_hops), not atoms
        reach_new = reach | (torch.bmm(reach.to(torch.float32), a) > 0)
        hops[reach_new & ~reach] = k
        reach = reach_new
    return hops


class _Block(nn.Module):
    """Pre-LayerNorm transformer block with an additive attention bias ``(G, heads, n, n)``."""

    def __init__(self, dim: int, n_heads: int, ff_mult: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim), nn.SiLU(), nn.Linear(ff_mult * dim, dim)
        )

    def forward(self, tok: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        g, n, d = tok.shape
        q, k, v = self.qkv(self.norm1(tok)).reshape(g, n, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5 + bias
        att = torch.softmax(logits, dim=-1) @ v
        tok = tok + self.proj(att.transpose(1, 2).reshape(g, n, d))
        return tok + self.ff(self.norm2(tok))


class FrameTransformer(ScoreNetwork):
    """Score network of :class:`FrameTransformerConfig` (module docstring for the math).

    Message edges are the bonds only (the attention is over all atom pairs of a molecule).
    """

    parity_sensitive = True

    def __init__(self, config: FrameTransformerConfig, process: AlphaSigmaProcess | None = None):
        if not isinstance(config, FrameTransformerConfig):
            raise ValueError(
                f"FrameTransformer needs a FrameTransformerConfig, got {type(config).__name__}"
            )
        d = config.hidden
        super().__init__(config, process, d)
        self.n_invariant = d
        self.coord_in = nn.Linear(3, d)
        self.index = nn.Embedding(config.n_atoms, d) if config.index_embedding else None
        self.register_buffer(
            "rbf_centers", torch.linspace(0.0, config.rbf_max, config.n_rbf), persistent=False
        )
        self.rbf_width = config.rbf_max / config.n_rbf
        n_bias = config.n_layers * config.n_heads
        self.pair_bias = nn.Linear(config.n_rbf, n_bias)
        self.hop_bias = nn.Embedding(config.max_hops + 2, n_bias)
        self.bond_bias = nn.Embedding(config.n_bond_types + 1, n_bias)
        self.blocks = nn.ModuleList(
            _Block(d, config.n_heads, config.ff_mult) for _ in range(config.n_layers)
        )
        self.norm_out = nn.LayerNorm(d)
        self.out = nn.Linear(d, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _message_edges(self, x_in, flat, num_graphs):
        ei, bt = flat.edge_index, flat.bond_types
        if ei is None:
            ei = torch.zeros(2, 0, dtype=torch.long, device=x_in.device)
            return ei, torch.zeros(0, dtype=torch.long, device=x_in.device)
        return ei, bt + 1

    def _backbone(self, x, h, edge_index, edge_bond, batch, num_graphs):
        cfg = self.config
        n, g = cfg.n_atoms, num_graphs
        if x.shape[0] != g * n or bool((torch.bincount(batch, minlength=g) != n).any()):
            counts = torch.bincount(batch, minlength=g)
            raise ValueError(
                f"FrameTransformer is built for molecules of n_atoms={n} atoms; got molecules of "
                f"{sorted(set(counts.tolist()))} atoms"
            )
        xg = x.reshape(g, n, 3)
        rot = canonical_frame(xg, cfg.frame_atoms)  # (G, 3, 3)
        y = xg @ rot  # (G, n, 3) canonical coordinates

        tok = h.reshape(g, n, -1) + self.coord_in(y)
        if self.index is not None:
            tok = tok + self.index.weight[None]

        # attention bias from the bond graph and the distances
        local = edge_index - (batch[edge_index[0]] * n)[None]
        gid = batch[edge_index[0]]
        bond = torch.zeros(g, n, n, dtype=torch.long, device=x.device)
        bond[gid, local[1], local[0]] = edge_bond
        bond[gid, local[0], local[1]] = edge_bond
        hops = hop_distances(bond > 0, cfg.max_hops)
        dist = pairwise_distances(y)  # (G, n, n)
        rbf = torch.exp(-(((dist[..., None] - self.rbf_centers) / self.rbf_width) ** 2))
        bias = self.pair_bias(rbf) + self.hop_bias(hops) + self.bond_bias(bond)
        bias = bias.reshape(g, n, n, cfg.n_layers, cfg.n_heads).permute(3, 0, 4, 1, 2)
        bias = bias.to(tok.dtype)
        for block, b in zip(self.blocks, bias, strict=True):
            tok = block(tok, b)

        out_can = self.out(self.norm_out(tok))  # (G, n, 3) in the canonical frame
        vec = out_can @ rot.transpose(1, 2)
        return vec.reshape(g * n, 3), tok.reshape(g * n, -1)
