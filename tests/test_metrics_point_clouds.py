"""Equivariant W2 between sets of point clouds (Hungarian + Kabsch + POT), evaluation, plots."""

import numpy as np
import pytest
import torch
from scipy import stats

from fkc.metrics import (
    aligned_squared_distance,
    equivariant_cost_matrix,
    equivariant_w2,
    evaluate_samples,
    kabsch,
    plot_histograms,
    point_cloud_w2,
)
from fkc.systems import LennardJones


def _rotated_permuted_copies(x, seed):
    rng = np.random.default_rng(seed)
    out = []
    for cloud in x:
        rot = stats.special_ortho_group.rvs(x.shape[2], random_state=rng)
        out.append(cloud[rng.permutation(x.shape[1])] @ rot.T + rng.standard_normal(x.shape[2]))
    return np.stack(out)[rng.permutation(len(x))]


def test_kabsch_recovers_rotation():
    a = np.random.default_rng(0).standard_normal((8, 3))
    a -= a.mean(0)
    rot = stats.special_ortho_group.rvs(3, random_state=1)
    b = a @ rot  # a = b R^T with R = rot
    np.testing.assert_allclose(kabsch(a, b), rot, atol=1e-10)


@pytest.mark.parametrize("n_dim", [2, 3])
def test_equivariant_w2_is_zero_for_rotated_permuted_copies(n_dim):
    x = np.random.default_rng(2).standard_normal((6, 13, n_dim))
    y = _rotated_permuted_copies(x, seed=3)
    assert equivariant_w2(x, y) == pytest.approx(0.0, abs=1e-6)
    assert point_cloud_w2(x, y) > 1.0


def test_equivariant_cost_properties():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 7, 3)), 1.3 * rng.standard_normal((4, 7, 3))
    c = equivariant_cost_matrix(x, y)
    assert c.shape == (5, 4) and np.all(c >= 0)
    plain = ((x[:, None] - y[None]) ** 2).sum((-2, -1))
    assert np.all(c <= plain + 1e-9)  # alignment can only lower the cost
    assert equivariant_w2(x, y) <= point_cloud_w2(x, y) + 1e-9
    # symmetric in its arguments up to the heuristic's accuracy (both are local minima)
    np.testing.assert_allclose(c, equivariant_cost_matrix(y, x).T, rtol=0.05)
    # returned rotation / permutation reproduce the cost
    cost, rot, perm = aligned_squared_distance(x[0], y[0])
    a, b = x[0] - x[0].mean(0), y[0] - y[0].mean(0)
    assert cost == pytest.approx(((a - b[perm] @ rot.T) ** 2).sum())
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_reflections_option():
    a = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]], dtype=float)  # chiral
    mirror = a * np.array([-1.0, 1.0, 1.0])
    assert aligned_squared_distance(a, mirror)[0] > 0.1
    assert aligned_squared_distance(a, mirror, reflections=True)[0] == pytest.approx(0, abs=1e-10)


def test_plain_w2_known_value():
    x = np.zeros((3, 2, 2))
    assert point_cloud_w2(x, x + 1.0) == pytest.approx(2.0)  # 4 coordinates shifted by 1


@pytest.fixture(scope="module")
def lj_samples():
    """400 jittered grid clusters of LJ-6 (not Boltzmann samples; enough to exercise metrics)."""
    system = LennardJones(n_atoms=6)
    rng = np.random.default_rng(0)
    x = np.stack([system.initial_positions(rng) for _ in range(400)])
    return system, x + 0.05 * rng.standard_normal(x.shape)


def test_evaluate_samples(lj_samples):
    system, x = lj_samples
    ref, sam = x[:200], x[200:]
    out = evaluate_samples(torch.from_numpy(sam).float(), ref, system)
    assert set(out) >= {"energy_w1", "energy_w2", "distance_w2", "distance_tv", "n_dropped"}
    assert out["n_samples"] == 200 and out["n_reference"] == 200 and out["n_dropped"] == 0
    assert out["energy_w1"] <= out["energy_w2"] + 1e-12  # W1 <= W2 always
    noisy = sam + 0.1 * np.random.default_rng(1).standard_normal(sam.shape)
    worse = evaluate_samples(noisy, ref, system)
    for key in ("energy_w1", "energy_w2", "distance_w2", "distance_tv"):
        assert worse[key] > out[key]
    bad = sam.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="1 of 200 samples have non-finite"):
        evaluate_samples(bad, ref, system)
    assert evaluate_samples(bad, ref, system, nonfinite="drop")["n_dropped"] == 1
    with pytest.raises(
        ValueError, match=r"samples must have shape \(n, 6, 3\) for lj6, got \(5, 6, 2\)"
    ):
        evaluate_samples(np.zeros((5, 6, 2)), ref, system)


def test_plot_histograms(lj_samples, tmp_path):
    system, x = lj_samples
    paths = plot_histograms(
        {"a": x[:100], "b": 1.2 * x[100:200]}, x[200:], system, tmp_path, prefix="test_"
    )
    assert set(paths) == {"energy", "distance"}
    for p in paths.values():
        assert p.name.startswith("test_") and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
