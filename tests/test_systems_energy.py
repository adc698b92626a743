"""Energies, forces, conventions and validation of fkc.systems (torch and Numba paths)."""

import math

import numpy as np
import pytest
import torch

from fkc.systems import (
    DoubleWell,
    HarmonicCluster,
    LennardJones,
    get_system,
    interatomic_distances,
    pair_factor,
)
from fkc.systems.testing import assert_forces_match, assert_invariant


def _cloud(points):
    return torch.tensor(points, dtype=torch.float64)[None]


# ---------------------------------------------------------------- hand-computed values
# LJ pair term per unordered pair, eps = r_m = 1: r^-12 - 2 r^-6.
#   r = 1: -1;  r = 2: 2^-12 - 2^-5 = -0.031005859375;  r = 2^(-1/6): 2 - 2 = 0.
# Harmonic term (k / 2) sum_i |x_i - xbar|^2.
@pytest.mark.parametrize(("convention", "factor"), [("ordered", 2.0), ("unordered", 1.0)])
def test_lj_two_and_three_particles_by_hand(convention, factor):
    lj0 = LennardJones(n_atoms=2, k=0.0, pair_convention=convention)
    for r, pair in ((1.0, -1.0), (2.0, -0.031005859375), (2 ** (-1 / 6), 0.0)):
        e = lj0.energy(_cloud([[0, 0, 0], [r, 0, 0]]))
        assert e.item() == pytest.approx(factor * pair, abs=1e-12)
    # confinement: two atoms at +-r/2 -> (k / 2) * r^2 / 2
    lj = LennardJones(n_atoms=2, k=1.0, pair_convention=convention)
    e = lj.energy(_cloud([[0, 0, 0], [2.0, 0, 0]]))
    assert e.item() == pytest.approx(factor * -0.031005859375 + 0.5 * 2.0, abs=1e-12)
    # equilateral triangle, side 1: 3 pairs at the minimum; circumradius 1/sqrt(3): sum |x|^2 = 1
    tri = [[0, 0, 0], [1, 0, 0], [0.5, math.sqrt(3) / 2, 0]]
    lj3 = LennardJones(n_atoms=3, k=2.0, pair_convention=convention)
    assert lj3.energy(_cloud(tri)).item() == pytest.approx(-3 * factor + 0.5 * 2.0 * 1.0, abs=1e-12)


def test_lj_default_is_ordered_and_twice_unordered():
    x = torch.randn(5, 13, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ordered, unordered = LennardJones(k=0.0), LennardJones(k=0.0, pair_convention="unordered")
    assert ordered.pair_convention == "ordered" and ordered.epsilon == 1 and ordered.r_m == 1
    torch.testing.assert_close(ordered.energy(x), 2 * unordered.energy(x))
    assert pair_factor("ordered") == 2.0 and pair_factor("unordered") == 1.0


def test_lj_epsilon_and_rm_scale():
    lj = LennardJones(n_atoms=2, k=0.0, epsilon=0.5, r_m=1.5, pair_convention="unordered")
    assert lj.energy(_cloud([[0, 0, 0], [1.5, 0, 0]])).item() == pytest.approx(-0.5)


@pytest.mark.parametrize(("convention", "factor"), [("unordered", 1.0), ("ordered", 2.0)])
def test_double_well_pair_by_hand(convention, factor):
    dw = DoubleWell(n_atoms=2, pair_convention=convention)  # a=0.9, b=-4, c=0, d0=4
    assert (dw.a, dw.b, dw.c, dw.d0, dw.n_dim) == (0.9, -4.0, 0.0, 4.0, 2)
    well = 4 + math.sqrt(4 / (2 * 0.9))
    for d, val in ((4.0, 0.0), (2.0, 0.9 * 16 - 4 * 4), (well, -16 / (4 * 0.9))):
        e = dw.energy(_cloud([[0.0, 0.0], [0.0, d]]))
        assert e.item() == pytest.approx(factor * val, abs=1e-12)
    dw4 = DoubleWell(c=1.0)  # c counts once per unordered pair: 6 pairs
    square = [[0, 0], [4, 0], [4, 4], [0, 4]]  # 4 sides at d0, 2 diagonals at 4 sqrt 2
    u = 4 * math.sqrt(2) - 4
    expected = 6 * 1.0 + 2 * (0.9 * u**4 - 4 * u**2)
    assert dw4.energy(_cloud(square)).item() == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------- forces, symmetry, numba
def _configs(system, n, seed):
    rng = np.random.default_rng(seed)
    x = np.stack([system.initial_positions(rng) for _ in range(n)])
    x = x + 0.1 * rng.standard_normal(x.shape)
    return torch.from_numpy(x)


SYSTEMS = [
    LennardJones(),
    LennardJones(pair_convention="unordered", k=0.0, n_atoms=5),
    LennardJones(n_atoms=4, n_dim=2, k=3.0, epsilon=0.7, r_m=1.2),
    DoubleWell(),
    DoubleWell(n_atoms=3, n_dim=3, pair_convention="ordered", c=0.5),
    HarmonicCluster(k=2.5),
]


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: f"{s.name}-{s.n_dim}d")
def test_forces_match_finite_differences_and_autograd(system):
    x = _configs(system, 3, seed=1)
    scale = system.force(x).abs().max().item()
    assert_forces_match(system, x, rtol=1e-6, atol=1e-7 * max(scale, 1.0))


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: f"{s.name}-{s.n_dim}d")
def test_symmetries(system):
    assert_invariant(system, _configs(system, 4, seed=2), torch.Generator().manual_seed(3))


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: f"{s.name}-{s.n_dim}d")
def test_numba_kernels_match_torch(system):
    energy_fn, delta_fn, params = system.numba_kernels()
    x = _configs(system, 4, seed=4).numpy()
    e_torch = system.energy(torch.from_numpy(x)).numpy()
    e_numba = np.array([energy_fn(xi, params) for xi in x])
    np.testing.assert_allclose(e_numba, e_torch, rtol=1e-12, atol=1e-10)
    rng = np.random.default_rng(5)
    for xi in x:
        for i in range(system.n_atoms):
            dx = 0.1 * rng.standard_normal(system.n_dim)
            moved = xi.copy()
            moved[i] += dx
            expected = energy_fn(moved, params) - energy_fn(xi, params)
            assert delta_fn(xi, i, dx, params) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_input_and_log_prob(dtype):
    lj = LennardJones(temperature=2.0)
    x = _configs(lj, 3, seed=6).to(dtype)
    e, f = lj.energy(x), lj.force(x)
    assert e.dtype == dtype and e.shape == (3,) and f.dtype == dtype and f.shape == x.shape
    torch.testing.assert_close(lj.log_prob(x), -e / 2.0)
    torch.testing.assert_close(lj.score(x), f / 2.0)
    # arbitrary leading batch shape
    assert lj.energy(x.reshape(1, 3, 13, 3)).shape == (1, 3)


def test_harmonic_energy_distribution_parameters():
    h = HarmonicCluster(n_atoms=5, n_dim=3, temperature=0.7)
    assert h.n_free == 12
    assert h.energy_distribution() == (6.0, 0.7)


def test_interatomic_distances():
    x = _cloud([[0, 0, 0], [3, 0, 0], [0, 4, 0]])
    torch.testing.assert_close(
        interatomic_distances(x), torch.tensor([[3.0, 4.0, 5.0]], dtype=torch.float64)
    )


# ---------------------------------------------------------------- validation
def test_shape_errors_name_shapes():
    with pytest.raises(ValueError, match=r"n_atoms=13, n_dim=3.*\(4, 12, 3\)"):
        LennardJones().energy(torch.zeros(4, 12, 3))
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        DoubleWell().force(torch.zeros(2, 8))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: LennardJones(temperature=0.0), "temperature.*0.0"),
        (lambda: LennardJones(epsilon=-1.0), "epsilon.*-1.0"),
        (lambda: LennardJones(k=-0.5), "k .*-0.5"),
        (lambda: LennardJones(pair_convention="half"), "pair_convention.*'half'"),
        (lambda: LennardJones(n_atoms=1), "n_atoms.*1"),
        (lambda: DoubleWell(a=0.0), "a must.*0.0"),
        (lambda: HarmonicCluster(k=float("nan")), "k must.*nan"),
    ],
)
def test_parameter_validation_names_values(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_get_system_and_with_temperature():
    lj = get_system("lj13", temperature=1.5)
    assert isinstance(lj, LennardJones) and lj.n_atoms == 13 and lj.temperature == 1.5
    assert lj.with_temperature(0.8).temperature == 0.8 and lj.temperature == 1.5
    dw = get_system("DW4")
    assert isinstance(dw, DoubleWell) and dw.event_shape == (4, 2)
    assert get_system("harmonic3x2").event_shape == (3, 2)
    assert get_system("lj13", n_atoms=13).n_atoms == 13
    with pytest.raises(ValueError, match="conflicts"):
        get_system("lj13", n_atoms=12)
    with pytest.raises(ValueError, match="unknown system 'argon'"):
        get_system("argon")
    with pytest.raises(ValueError, match="temperature"):
        lj.with_temperature(-1.0)
