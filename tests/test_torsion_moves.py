"""Torsion moves (``fkc.sampler.torsion_moves``) and tempering with them, against exact references.

The sampler test uses a 4-atom chain whose exact density (at ``t = 1e-3``) is a two-component
Gaussian mixture in Cartesian coordinates, the components 120 degrees apart in the dihedral
(0, 1, 2, 3), weights 0.3 / 0.7, isotropic sd 0.1 (the last atom's two positions are 1.7
apart: the modes do not overlap, so MALA cannot cross). Tempered to ``beta = 2`` the exact share of the first mode is 0.3^2 / (0.3^2 + 0.7^2) =
0.1552 (equal-variance components keep their shape under a power). Every particle starts in the
*first* mode, so the start is wrong across modes, as a diffusion model's start is across basins.
Calibration (1000 particles, 20 rungs, 2 MALA + 3 torsion moves per rung and per burn-in move,
40 burn-in moves; seeds 0-7): first-mode share 0.150-0.172 (mean 0.161, sd 0.009; torsion
acceptance 0.045); without torsion moves it stays 1.000 in every seed; the same moves without
weights 0.214-0.241 (mean 0.230: the moves lag behind the path, only the weights make it
exact). Tolerance: 0.035 for one run (about 4 sd).
"""

import math

import pytest
import torch

import fkc
from fkc.experts import GaussianMixtureExpert
from fkc.sampler import TorsionSet, torsion_moves

F64 = torch.float64
T = 1e-3
VP = fkc.VPSDE()
# alanine dipeptide (openmmtools' atom order): 22 atoms, 21 bonds
ALDP_BONDS = [(0, 1), (1, 2), (1, 3), (1, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9), (8, 10),
              (8, 14), (10, 11), (10, 12), (10, 13), (14, 15), (14, 16), (16, 17), (16, 18),
              (18, 19), (18, 20), (18, 21)]


def _dihedral(p):
    """``(n, 4, 3) -> (n,)`` IUPAC dihedral of atoms 0-1-2-3 (radians)."""
    b1, b2, b3 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 1], p[:, 3] - p[:, 2]
    n1, n2 = torch.linalg.cross(b1, b2), torch.linalg.cross(b2, b3)
    return torch.atan2(b2.norm(dim=-1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1))


def _wrap(a):
    return (a + math.pi) % (2 * math.pi) - math.pi


def test_rotatable_bonds_of_alanine_dipeptide():
    ts = TorsionSet.from_bonds(torch.tensor(ALDP_BONDS).t(), 22)  # (2, n_bonds) like edge_index
    got = {tuple(a): set(torch.nonzero(m).flatten().tolist())
           for a, m in zip(ts.axes.tolist(), ts.moving, strict=True)}
    assert got == {
        (4, 1): {0, 2, 3},                     # ACE methyl
        (6, 4): {0, 1, 2, 3, 5},               # omega (ACE-ALA peptide bond)
        (8, 6): {0, 1, 2, 3, 4, 5, 7},         # phi: the N-terminal side moves
        (8, 10): {11, 12, 13},                 # Ala methyl
        (8, 14): {15, 16, 17, 18, 19, 20, 21},  # psi: the C-terminal side moves
        (14, 16): {17, 18, 19, 20, 21},        # omega (ALA-NME)
        (16, 18): {19, 20, 21},                # NME methyl
    }


def test_ring_bonds_and_terminal_atoms_are_not_rotatable():
    # cyclohexane ring 0-5 with a substituent chain 0-6-7 and a hydrogen 8 on atom 7
    ring = [(i, (i + 1) % 6) for i in range(6)]
    ts = TorsionSet.from_bonds(ring + [(0, 6), (6, 7), (7, 8)], 9)
    assert ts.axes.tolist() == [[0, 6], [6, 7]]
    assert ts.moving[0].nonzero().flatten().tolist() == [7, 8]
    with pytest.raises(ValueError, match="no rotatable bond"):
        TorsionSet.from_bonds([(0, 1), (0, 2)], 3)  # water
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        TorsionSet.from_bonds([(0, 1), (1, 3)], 3)


def test_rotation_changes_only_the_dihedral_about_the_bond():
    ts = TorsionSet.from_bonds(ALDP_BONDS, 22)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 22, 3, generator=g, dtype=F64)
    k = torch.randint(len(ts), (64,), generator=g)
    theta = (2 * torch.rand(64, generator=g, dtype=F64) - 1) * math.pi
    y = ts.rotate(x, k, theta)
    b = torch.tensor(ALDP_BONDS)
    bond = (x[:, b[:, 0]] - x[:, b[:, 1]]).norm(dim=-1)
    assert torch.allclose((y[:, b[:, 0]] - y[:, b[:, 1]]).norm(dim=-1), bond, atol=1e-12)
    # all pairwise distances within each side are unchanged (rigid motion of the moving side)
    for i in range(64):
        m = ts.moving[k[i]]
        for side in (m, ~m):
            d0, d1 = torch.cdist(x[i, side], x[i, side]), torch.cdist(y[i, side], y[i, side])
            assert torch.allclose(d0, d1, atol=1e-12)
    # psi (atoms 6-8-14-16) grows by theta when torsion (8, 14) turns
    psi = ts.axes.tolist().index([8, 14])
    kk = torch.full((64,), psi)
    y = ts.rotate(x, kk, theta)
    idx = [6, 8, 14, 16]
    assert torch.allclose(_wrap(_dihedral(y[:, idx]) - _dihedral(x[:, idx]) - theta),
                          torch.zeros(64, dtype=F64), atol=1e-10)


def _chain_mixture(weights=(0.3, 0.7), sd=0.1):
    """Two conformers of a 4-atom chain, the last atom turned by 120 degrees about bond 1-2."""
    a = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [2.5, 1.0, 0.0]],
                     dtype=F64)
    ts = TorsionSet.from_bonds([(0, 1), (1, 2), (2, 3)], 4)
    b = ts.rotate(a[None], torch.zeros(1, dtype=torch.long),
                  torch.tensor([2 * math.pi / 3], dtype=F64))[0]
    e = GaussianMixtureExpert(list(weights), torch.stack([a, b]), [sd ** 2] * 2, VP)
    return e, ts, _dihedral(a[None])[0], _dihedral(b[None])[0]


def _first_mode_share(x, phi_a, phi_b):
    phi = _dihedral(x)
    return float((_wrap(phi - phi_a).abs() < _wrap(phi - phi_b).abs()).to(F64).mean())


def _start_in_first_mode(e, n, seed):
    """``(n, 4, 3)`` exact samples of the first component at time T."""
    t = torch.tensor(T, dtype=F64)
    alpha, s2 = float(VP.alpha(t)), float(VP.sigma2(t))
    sd = math.sqrt(alpha ** 2 * float(e.variances[0, 0, 0]) + s2)
    g = torch.Generator().manual_seed(1000 + seed)
    return alpha * e.means[0] + sd * torch.randn(n, 4, 3, generator=g, dtype=F64)


def _temper(e, ts, x0, seed, torsion_steps, correct=True):
    g = torch.Generator().manual_seed(seed)
    return fkc.temper(fkc.anneal(e, 2.0), x0, t=T, n_steps=20, mcmc_steps=2, burn_in=40,
                      torsions=ts, torsion_steps=torsion_steps,
                      ess_threshold=0.5 if correct else 0.0, final_resample=correct,
                      generator=g, progress=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_torsion_moves_fix_a_start_that_is_wrong_across_modes(seed):
    e, ts, phi_a, phi_b = _chain_mixture()
    x0 = _start_in_first_mode(e, 1000, seed)
    assert _first_mode_share(x0, phi_a, phi_b) == 1.0
    exact = 0.3 ** 2 / (0.3 ** 2 + 0.7 ** 2)
    r = _temper(e, ts, x0, seed, torsion_steps=3)
    assert abs(_first_mode_share(r.samples, phi_a, phi_b) - exact) < 0.035
    assert r.torsion_moves_per_particle == 3 * (40 + 21)
    assert 0.0 < float(r.torsion_acceptance[-1]) < 0.5
    # the same moves without weights lag behind the path
    ru = _temper(e, ts, x0, seed, torsion_steps=3, correct=False)
    assert _first_mode_share(ru.samples, phi_a, phi_b) - exact > 0.04
    # without torsion moves nothing reaches the second mode: the weights alone cannot fix it
    r0 = _temper(e, ts, x0, seed, torsion_steps=0)
    assert _first_mode_share(r0.samples, phi_a, phi_b) == 1.0
    assert r0.torsion_acceptance is None


def test_torsion_moves_alone_keep_the_exact_mixture():
    """Invariance: exact samples of the mixture stay exact (shares and within-mode spread)."""
    e, ts, phi_a, phi_b = _chain_mixture()
    g = torch.Generator().manual_seed(5)
    t = torch.full((4000,), T, dtype=F64)
    x = e.sample(4000, T, generator=g)
    share0 = _first_mode_share(x, phi_a, phi_b)
    log_p = e.log_density(x, t)
    res = torsion_moves(lambda y: e.log_density(y, t), x, log_p, ts, 50, g)
    assert res.acceptance > 0.02
    assert abs(_first_mode_share(res.x, phi_a, phi_b) - 0.3) < 0.03
    assert abs(share0 - 0.3) < 0.03
    # the moved distances from the axis atoms keep their spread (rigid rotations)
    r0, r1 = (x[:, 3] - x[:, 2]).norm(dim=-1), (res.x[:, 3] - res.x[:, 2]).norm(dim=-1)
    assert torch.allclose(r0, r1, atol=1e-12)
    assert torch.allclose(res.log_p, e.log_density(res.x, t).to(F64), atol=1e-9)


def test_same_seed_same_result_and_errors():
    e, ts, *_ = _chain_mixture()
    x0 = _start_in_first_mode(e, 50, 0)
    a, b = (_temper(e, ts, x0, 3, torsion_steps=2) for _ in range(2))
    assert torch.equal(a.samples, b.samples)
    with pytest.raises(ValueError, match="needs torsions"):
        fkc.temper(fkc.anneal(e, 2.0), x0, torsion_steps=2, progress=False)
    wrong = TorsionSet.from_bonds([(0, 1), (1, 2), (2, 3), (3, 4)], 5)
    with pytest.raises(ValueError, match="5-atom molecule"):
        fkc.temper(fkc.anneal(e, 2.0), x0, torsions=wrong, torsion_steps=1, progress=False)
    with pytest.raises(ValueError, match="max_angle"):
        fkc.temper(fkc.anneal(e, 2.0), x0, torsions=ts, torsion_steps=1, max_angle=4.0,
                   progress=False)
    with pytest.raises(ValueError, match="torsion_steps must be"):
        fkc.temper(fkc.anneal(e, 2.0), x0, torsions=ts, torsion_steps=-1, progress=False)
    t = torch.full((50,), T, dtype=F64)
    with pytest.raises(ValueError, match=r"shape \(n, 4, 3\)"):
        torsion_moves(lambda y: e.log_density(y, t), x0.reshape(50, 12), torch.zeros(50), ts, 1,
                      torch.Generator())
