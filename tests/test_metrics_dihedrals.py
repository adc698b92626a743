"""Alanine-dipeptide metrics: torus W2, Ramachandran histograms and divergences, basins,
dihedrals, chirality, bond stretch and the combined evaluation."""

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fkc.metrics import (
    BASIN_NAMES,
    assign_basins,
    basin_populations,
    ramachandran_histogram,
    ramachandran_js,
    ramachandran_kl,
    torus_w2,
    wrap_angle,
)


@pytest.fixture(scope="module")
def system():
    pytest.importorskip("openmm")
    if importlib.util.find_spec("openmmtools") is None:
        pytest.skip("openmmtools is not installed")
    from fkc.systems import AlanineDipeptide

    return AlanineDipeptide()


@pytest.fixture(scope="module")
def conformations(system):
    rng = np.random.default_rng(0)
    return system.reference_positions + 0.005 * rng.standard_normal((40, 22, 3))


def _cluster(n, centre, sd=0.2, seed=0):
    return np.asarray(centre) + sd * np.random.default_rng(seed).standard_normal((n, 2))


# ------------------------------------------------------------------ angles and torus W2
def test_wrap_angle():
    a = wrap_angle([math.pi, -math.pi, 3 * math.pi, 0.5, -0.5 - 2 * math.pi])
    np.testing.assert_allclose(a, [-math.pi, -math.pi, -math.pi, 0.5, -0.5], atol=1e-12)


def test_torus_w2_self_and_shift():
    a = _cluster(300, (0.3, -1.0))
    assert torus_w2(a, a) == pytest.approx(0.0, abs=1e-9)
    delta = np.array([0.25, -0.4])
    assert torus_w2(a, a + delta) == pytest.approx(np.linalg.norm(delta), rel=1e-9)
    assert torus_w2(a + delta, a) == pytest.approx(np.linalg.norm(delta), rel=1e-9)


def test_torus_w2_wraps_around():
    rng = np.random.default_rng(0)
    a = np.stack([math.pi - 0.05 + rng.uniform(-0.01, 0.01, 200), rng.uniform(-1, 1, 200)], 1)
    b = wrap_angle(a + [0.1, 0.0])  # a just below +pi, b just above -pi after wrapping
    assert (b[:, 0] < -3.0).all()
    assert torus_w2(a, b) == pytest.approx(0.1, rel=1e-9)
    naive = np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1)))
    assert naive > 6.0  # without wrapping the sets would look 2 pi - 0.1 apart


def test_torus_w2_subsampling_is_seeded():
    a, b = _cluster(500, (0, 0), seed=1), _cluster(400, (0.2, 0), seed=2)
    w = torus_w2(a, b, max_samples=100, seed=3)
    assert w == torus_w2(a, b, max_samples=100, seed=3)
    assert w == pytest.approx(torus_w2(a, b), abs=0.1)


def test_torus_w2_bad_input():
    a = _cluster(10, (0, 0))
    with pytest.raises(ValueError, match=r"\(n, d\).*got shape \(10,\)"):
        torus_w2(a[:, 0], a)
    bad = a.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"b has non-finite angles in 1 rows \(first: \[4\]\)"):
        torus_w2(a, bad)
    with pytest.raises(ValueError, match="max_samples must be an int >= 1, got 0"):
        torus_w2(a, a, max_samples=0)


# ------------------------------------------------------------------ histograms, KL, JS
def test_ramachandran_histogram_layout_and_smoothing():
    pts = np.array([[-math.pi + 0.01, 0.01]])  # phi bin 0, psi bin bins/2
    p = ramachandran_histogram(pts, bins=36, smoothing=0.0, floor=0.0)
    assert p.shape == (36, 36) and p[0, 18] == 1.0 and p.sum() == 1.0
    s = ramachandran_histogram(pts, bins=36, smoothing=1.0, floor=0.0)
    assert s[35, 18] == pytest.approx(s[1, 18]) and s[35, 18] > 0  # periodic in phi
    f = ramachandran_histogram(pts, bins=36, smoothing=0.0, floor=1e-6)
    assert (f > 0).all() and f.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="bins must be an int >= 1, got 0"):
        ramachandran_histogram(pts, bins=0)
    with pytest.raises(ValueError, match=r"\(n, 2\).*got shape \(1, 3\)"):
        ramachandran_histogram(np.zeros((1, 3)))


def test_kl_and_js_values():
    p = np.array([0.5, 0.5])
    q = np.array([0.9, 0.1])
    assert ramachandran_kl(p, p) == 0.0 and ramachandran_js(p, p) == 0.0
    assert ramachandran_kl(p, q) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5))
    assert ramachandran_js(p, q) == pytest.approx(ramachandran_js(q, p))
    assert ramachandran_js([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.log(2))
    assert ramachandran_kl([1.0, 0.0], [0.0, 1.0]) == math.inf
    a = _cluster(2000, (-1.2, 2.4), seed=4)
    h = ramachandran_histogram(a)
    assert ramachandran_kl(h, ramachandran_histogram(a)) == 0.0
    with pytest.raises(ValueError, match="q must sum to 1"):
        ramachandran_kl(p, [0.5, 0.6])
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        ramachandran_js(p, [0.2, 0.3, 0.5])


# ------------------------------------------------------------------ basins
def test_basin_populations_on_synthetic_points():
    deg = np.array([
        [-150, 150], [-70, 170], [-150, -170], [170, 170], [-80, 81],  # beta (5)
        [-70, -40], [-60, -110], [-90, 79],                            # alphaR (3)
        [60, 45], [75, -65], [0, 180], [119, 0],                       # alphaL (4)
    ], dtype=float)  # fmt: skip
    labels = assign_basins(np.radians(deg))
    assert labels.tolist() == [0] * 5 + [1] * 3 + [2] * 4
    pops = basin_populations(np.radians(deg))
    assert list(pops) == list(BASIN_NAMES)
    assert pops == pytest.approx({"beta": 5 / 12, "alphaR": 3 / 12, "alphaL": 4 / 12})
    assert basin_populations(np.radians([[121.0, 0.0]])) == {"beta": 0.0, "alphaR": 1.0, "alphaL": 0.0}  # fmt: skip


# ------------------------------------------------------------------ needs the molecule
def _numpy_dihedral(x, idx):
    p0, p1, p2, p3 = (x[:, i] for i in idx)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=1, keepdims=True) * b1n
    return np.arctan2(np.sum(np.cross(b1n, v) * w, axis=1), np.sum(v * w, axis=1))


def test_phi_psi_matches_numpy_formula(system, conformations):
    from fkc.metrics import phi_psi
    from fkc.systems._aldp import PHI_INDICES, PSI_INDICES

    pp = phi_psi(conformations, system)
    assert pp.shape == (40, 2) and pp.dtype == np.float64
    assert ((pp >= -math.pi) & (pp < math.pi)).all()
    for k, idx in enumerate((PHI_INDICES, PSI_INDICES)):
        d = wrap_angle(pp[:, k] - _numpy_dihedral(conformations, idx))
        assert np.abs(d).max() < 1e-5
    np.testing.assert_allclose(phi_psi(torch.from_numpy(conformations), system), pp)
    with pytest.raises(ValueError, match=r"\(\.\.\., 22, 3\)"):
        phi_psi(conformations[:, :20], system)


def test_chirality_fraction(system, conformations):
    from fkc.metrics import chirality_fraction

    assert chirality_fraction(system.reference_positions[None], system) == 1.0
    assert chirality_fraction(conformations, system) == 1.0
    mirror = conformations * np.array([-1.0, 1.0, 1.0])
    assert chirality_fraction(mirror, system) == 0.0
    q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((3, 3)))
    rot = q * np.sign(np.linalg.det(q))  # proper rotation
    assert chirality_fraction(conformations @ rot.T + 1.0, system) == 1.0
    mixed = np.concatenate([conformations[:3], mirror[:1]])
    assert chirality_fraction(mixed, system) == 0.75


def test_reflect_to_l_and_fix_chirality(system, conformations):
    from fkc.metrics import evaluate_aldp, phi_psi, reflect_to_l

    mirror = conformations * np.array([-1.0, 1.0, 1.0])
    mixed = np.concatenate([conformations[:10], mirror[10:20]])
    fixed, n = reflect_to_l(mixed, system)
    assert n == 10
    np.testing.assert_allclose(fixed[:10], conformations[:10])
    np.testing.assert_allclose(fixed[10:], -mirror[10:20])  # mirrored twice: a rotation of x
    # energies are reflection invariant; dihedrals of the fixed samples equal the originals
    np.testing.assert_allclose(system.energy(mirror[:3]), system.energy(conformations[:3]), rtol=1e-9)
    np.testing.assert_allclose(np.cos(phi_psi(fixed, system) - phi_psi(conformations[:20], system)), 1.0, atol=1e-9)  # fmt: skip
    ref = SimpleNamespace(x=conformations, energy=system.energy(conformations))
    raw = evaluate_aldp(mixed, ref, system)
    fix = evaluate_aldp(mixed, ref, system, fix_chirality=True)
    assert raw["chirality_L"] == fix["chirality_L"] == 0.5
    assert raw["n_reflected"] == 0 and fix["n_reflected"] == 10
    assert fix["torus_w2"] < raw["torus_w2"] and fix["energy_w1"] == pytest.approx(raw["energy_w1"])


def test_bond_stretch_fraction(system):
    from fkc.metrics import bond_stretch_fraction

    ref = system.reference_positions
    assert bond_stretch_fraction(ref[None], system) == 0.0
    stretched = ref.copy()
    h, c = 0, 1  # the H1-CH3 bond of the acetyl cap; H1 has no other bond
    stretched[h] = ref[c] + 1.2 * (ref[h] - ref[c])
    x = np.stack([ref, stretched, ref, stretched])
    assert bond_stretch_fraction(x, system, tolerance=0.15) == 0.5
    assert bond_stretch_fraction(x, system, tolerance=0.25) == 0.0
    with pytest.raises(ValueError, match="tolerance .* got -0.1"):
        bond_stretch_fraction(x, system, tolerance=-0.1)


def test_evaluate_aldp(system, conformations):
    from fkc.metrics import evaluate_aldp

    ref = SimpleNamespace(x=conformations, energy=system.energy(conformations))
    r = evaluate_aldp(conformations[:20], ref, system)
    assert r["n_samples"] == 20 and r["n_reference"] == 40 and r["n_dropped"] == 0
    assert r["chirality_L"] == 1.0 and r["bond_stretch"] == 0.0
    for name in BASIN_NAMES:
        assert r[f"pop_{name}"] == pytest.approx(r[f"pop_{name}_reference"])
    assert r["torus_w2"] < 0.1 and r["rama_js"] < 0.05
    assert 0 < r["energy_w1"] <= r["energy_w2"]
    same = evaluate_aldp(conformations, conformations, system)
    assert same["energy_w1"] == pytest.approx(0.0, abs=1e-9) and same["rama_kl"] == 0.0
    bad = conformations[:5].copy()
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 of 5 samples .*\(first: \[2\]\)"):
        evaluate_aldp(bad, ref, system)
    assert evaluate_aldp(bad, ref, system, nonfinite="drop")["n_dropped"] == 1
    with pytest.raises(ValueError, match=r"samples must have shape \(n, 22, 3\)"):
        evaluate_aldp(conformations[:, :5], ref, system)


def test_free_energy_plot(system, conformations, tmp_path):
    from fkc.metrics import phi_psi, ramachandran_free_energy_plot

    pp = phi_psi(conformations, system)
    fig = ramachandran_free_energy_plot({"a": pp, "b": pp[:10]}, path=tmp_path / "rama.png")
    assert (tmp_path / "rama.png").stat().st_size > 0
    assert len(fig.axes) == 3  # two panels and the colour bar
    with pytest.raises(ValueError, match="panels is empty"):
        ramachandran_free_energy_plot({})
