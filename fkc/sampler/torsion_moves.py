r"""Torsion moves: Metropolis rotations about rotatable bonds, which cross conformational basins.

MALA moves (:mod:`fkc.sampler.moves`) mix within a basin of a molecule's density at a small
diffusion time; they do not cross the torsional barriers between basins (alanine dipeptide's
beta and alphaR basins differ in the backbone torsion psi). A torsion move rotates the atoms on
one side of a rotatable bond ``(a, b)`` rigidly about the axis through ``x_a`` and ``x_b``:

    x_i' = x_b + R(u, theta) (x_i - x_b)   for the moving atoms i,   u = (x_b - x_a) / |x_b - x_a|,
    theta ~ Uniform(-max_angle, max_angle),

with ``R(u, theta)`` the rotation by ``theta`` about ``u`` (Rodrigues' formula; right-handed,
so the dihedral ``(j, a, b, i)`` of a moving atom ``i`` grows by ``theta``), and accepts with
probability ``min(1, pi(x') / pi(x))``. The torsion and the angle are drawn independently of
``x``, the angle's distribution is symmetric, the map is its own inverse with ``-theta`` (the
axis atoms do not move) and it preserves volume (a rigid motion of a subset of atoms), so the
Metropolis ratio has no proposal term and ``pi`` is invariant (Metropolis et al. 1953; the
"pivot"/"crankshaft" moves of molecular Monte Carlo). The move commutes with translations, so on
the centre-of-mass-free space the particles are projected afterwards and ``pi`` stays invariant.
Bond lengths and bond angles are unchanged; only the dihedrals about ``(a, b)`` change.

Rotatable bonds come from the bond graph (:meth:`TorsionSet.from_bonds`): a bond is rotatable
when it is not in a ring (cutting it splits the molecule) and both its atoms have another
neighbour (a terminal atom such as a hydrogen lies on the axis). The smaller side moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TorsionSet:
    """The rotatable bonds of one molecule.

    Attributes:
        axes: ``(m, 2)`` long; torsion ``k`` rotates about the axis from atom ``axes[k, 0]`` to
            ``axes[k, 1]``.
        moving: ``(m, n_atoms)`` bool; the atoms that torsion ``k`` rotates (on the side of
            ``axes[k, 1]``, which itself stays on the axis).
    """

    axes: torch.Tensor
    moving: torch.Tensor

    def __post_init__(self):
        a, m = self.axes, self.moving
        if a.dim() != 2 or a.shape[1] != 2 or a.dtype != torch.long or a.shape[0] < 1:
            raise ValueError(f"axes must be a long tensor (m >= 1, 2), got {a.dtype} {tuple(a.shape)}")
        if m.dim() != 2 or m.dtype != torch.bool or m.shape[0] != a.shape[0]:
            raise ValueError(f"moving must be a bool tensor ({a.shape[0]}, n_atoms), got {m.dtype} "
                             f"{tuple(m.shape)}")
        n = m.shape[1]
        if int(a.min()) < 0 or int(a.max()) >= n or bool((a[:, 0] == a[:, 1]).any()):
            raise ValueError(f"axes must name two distinct atoms in [0, {n}), got {a.tolist()}")
        if bool(m.gather(1, a).any()):
            raise ValueError("an axis atom cannot move with its own torsion")
        if not bool(m.any(1).all()):
            raise ValueError("every torsion must move at least one atom")

    @property
    def n_atoms(self) -> int:
        return self.moving.shape[1]

    def __len__(self) -> int:
        return self.axes.shape[0]

    @classmethod
    def from_bonds(cls, bonds, n_atoms: int) -> TorsionSet:
        """Every rotatable bond of a molecule from its bond list.

        Args:
            bonds: ``(n_bonds, 2)`` or ``(2, n_bonds)`` (a graph's ``edge_index``) atom indices;
                either direction, duplicates ignored.
            n_atoms: atoms in the molecule.
        Raises ``ValueError`` if the molecule has no rotatable bond.
        """
        b = torch.as_tensor(bonds, dtype=torch.long)
        if b.dim() == 2 and b.shape[0] == 2 and b.shape[1] != 2:
            b = b.t()
        if b.dim() != 2 or b.shape[1] != 2:
            raise ValueError(f"bonds must have shape (n_bonds, 2) or (2, n_bonds), got {tuple(b.shape)}")
        if b.numel() and (int(b.min()) < 0 or int(b.max()) >= n_atoms):
            raise ValueError(f"bond atom indices must lie in [0, {n_atoms}), got {b.tolist()}")
        edges = sorted({(min(i, j), max(i, j)) for i, j in b.tolist() if i != j})
        nbrs: list[set[int]] = [set() for _ in range(n_atoms)]
        for i, j in edges:
            nbrs[i].add(j)
            nbrs[j].add(i)
        axes, moving = [], []
        for i, j in edges:
            if len(nbrs[i]) < 2 or len(nbrs[j]) < 2:
                continue
            side = _component(nbrs, j, cut=(i, j))
            if i in side:  # a ring bond: cutting it does not split the molecule
                continue
            if len(side) > n_atoms - len(side):  # move the smaller side
                i, j, side = j, i, _component(nbrs, i, cut=(i, j))
            mask = torch.zeros(n_atoms, dtype=torch.bool)
            mask[sorted(side - {j})] = True
            axes.append((i, j))
            moving.append(mask)
        if not axes:
            raise ValueError(f"the molecule ({n_atoms} atoms, {len(edges)} bonds) has no "
                             "rotatable bond")
        return cls(torch.tensor(axes, dtype=torch.long), torch.stack(moving))

    def rotate(self, x: torch.Tensor, k: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Rotate torsion ``k[p]`` of particle ``p`` by ``theta[p]`` (radians).

        x: ``(n, n_atoms, 3)``; k: ``(n,)`` long; theta: ``(n,)``. Returns ``(n, n_atoms, 3)``
        (not re-centred).
        """
        axes, moving = self.axes.to(x.device), self.moving.to(x.device)
        idx = torch.arange(x.shape[0], device=x.device)
        xa, xb = x[idx, axes[k, 0]], x[idx, axes[k, 1]]  # (n, 3)
        u = xb - xa
        u = (u / u.norm(dim=-1, keepdim=True)).unsqueeze(1)  # (n, 1, 3)
        p = x - xb.unsqueeze(1)
        c = torch.cos(theta).to(x.dtype).reshape(-1, 1, 1)
        s = torch.sin(theta).to(x.dtype).reshape(-1, 1, 1)
        rotated = (p * c + torch.linalg.cross(u.expand_as(p), p, dim=-1) * s
                   + u * (p * u).sum(-1, keepdim=True) * (1.0 - c))
        return torch.where(moving[k].unsqueeze(-1), rotated + xb.unsqueeze(1), x)


def _component(nbrs: list[set[int]], start: int, cut: tuple[int, int]) -> set[int]:
    """Atoms reachable from ``start`` without crossing the bond ``cut``."""
    seen, stack = {start}, [start]
    a, b = cut
    while stack:
        i = stack.pop()
        for j in nbrs[i]:
            if {i, j} == {a, b} or j in seen:
                continue
            seen.add(j)
            stack.append(j)
    return seen


@dataclass
class TorsionMoveResult:
    """Moved particles ``x: (n, n_atoms, 3)``, ``log pi`` at them ``(n,)`` float64, the mean
    acceptance over the moves and ``changed: (n,)`` bool (a move was accepted)."""

    x: torch.Tensor
    log_p: torch.Tensor
    acceptance: float
    changed: torch.Tensor


def torsion_moves(log_density: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  log_p: torch.Tensor, torsions: TorsionSet, n: int, generator: torch.Generator,
                  max_angle: float = math.pi,
                  project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> TorsionMoveResult:
    """``n`` Metropolis torsion moves of every particle on ``pi`` (module docstring).

    Args:
        log_density: ``x -> log pi(x)`` ``(n,)`` (up to a constant).
        x: ``(n_particles, n_atoms, 3)``; log_p: ``log pi(x)`` ``(n_particles,)``.
        torsions: the molecule's rotatable bonds; each move draws one uniformly per particle.
        n: moves per particle (>= 0); generator: on x's device.
        max_angle: rotations are uniform in ``(-max_angle, max_angle)``, ``0 < max_angle <= pi``.
        project: applied to proposals (the centre-of-mass projection of a CoM-free space).
    """
    if not (isinstance(n, int) and n >= 0):
        raise ValueError(f"torsion moves: n must be an integer >= 0, got {n!r}")
    if not (0 < max_angle <= math.pi):
        raise ValueError(f"torsion moves: max_angle must lie in (0, pi], got {max_angle!r}")
    if x.dim() != 3 or x.shape[1:] != (torsions.n_atoms, 3):
        raise ValueError(f"torsion moves need x of shape (n, {torsions.n_atoms}, 3), got "
                         f"{tuple(x.shape)}")
    log_p = log_p.to(torch.float64)
    changed = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    accepted = 0.0
    for _ in range(n):
        k = torch.randint(len(torsions), (x.shape[0],), generator=generator, device=x.device)
        u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)
        theta = (2.0 * u - 1.0) * max_angle
        x_new = torsions.rotate(x, k, theta)
        if project is not None:
            x_new = project(x_new)
        log_p_new = log_density(x_new).to(torch.float64)
        v = torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)
        # NaN ratios (non-finite proposals) are rejected
        acc = torch.log(v) < torch.nan_to_num(log_p_new - log_p, nan=-math.inf)
        accepted += float(acc.to(torch.float64).mean())
        x = torch.where(acc.reshape(-1, 1, 1), x_new, x)
        log_p = torch.where(acc, log_p_new, log_p)
        changed |= acc
    return TorsionMoveResult(x=x, log_p=log_p, acceptance=accepted / max(n, 1), changed=changed)
