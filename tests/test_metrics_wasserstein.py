"""1-D Wasserstein, distance metrics and TV: exact cases and cross-checks against POT / SciPy."""

import math

import numpy as np
import ot
import pytest
import torch
from scipy import stats

from fkc.metrics import (
    distance_tv,
    distance_w2,
    energy_w1,
    energy_w2,
    histogram_tv,
    pooled_distances,
    wasserstein_1d,
)


def test_shift_gives_shift():
    z = np.random.default_rng(0).standard_normal(5_000)
    assert energy_w1(z, z + 3.0) == pytest.approx(3.0, abs=1e-12)
    assert energy_w2(z, z + 3.0) == pytest.approx(3.0, abs=1e-12)
    # independent draws of N(0, 1) and N(2, 1): W1 = W2 = 2 up to sampling error
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal(40_000), 2.0 + rng.standard_normal(30_000)
    assert wasserstein_1d(u, v, 1) == pytest.approx(2.0, abs=0.03)
    assert wasserstein_1d(u, v, 2) == pytest.approx(2.0, abs=0.03)


def test_scale():
    # v = s z keeps the order, so W_p^p = |s - 1|^p mean |z|^p exactly (population: sqrt(2/pi), 1).
    z = np.random.default_rng(2).standard_normal(10_000)
    s = 1.7
    assert wasserstein_1d(z, s * z, 1) == pytest.approx(0.7 * np.abs(z).mean(), rel=1e-12)
    assert wasserstein_1d(z, s * z, 2) == pytest.approx(0.7 * math.sqrt((z**2).mean()), rel=1e-12)


def test_unequal_sizes_by_hand_and_against_lp():
    # u = {0, 1}, v = {0, 1, 2}: quantile functions differ by 1 on [1/3, 1/2) and [2/3, 1)
    assert wasserstein_1d([0.0, 1.0], [0.0, 1.0, 2.0], 1) == pytest.approx(0.5)
    assert wasserstein_1d([0.0, 1.0], [0.0, 1.0, 2.0], 2) == pytest.approx(math.sqrt(0.5))
    rng = np.random.default_rng(3)
    for n, m in ((7, 11), (30, 45), (64, 64), (1, 9)):
        u, v = rng.standard_normal(n), rng.exponential(size=m)
        for p in (1, 2):
            cost = np.abs(u[:, None] - v[None]) ** p
            lp = ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), cost) ** (1 / p)
            assert wasserstein_1d(u, v, p) == pytest.approx(lp, rel=1e-9, abs=1e-12)
        assert wasserstein_1d(u, v, 1) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-9)
    u = rng.standard_normal(50)
    assert wasserstein_1d(u, np.repeat(u, 3), 2) == pytest.approx(0.0, abs=1e-12)


def test_accepts_tensors_and_validates():
    assert wasserstein_1d(torch.zeros(3), torch.ones(4, dtype=torch.float64), 2) == 1.0
    with pytest.raises(
        ValueError, match=r"u must be a non-empty 1-D array \(n,\), got shape \(2, 3\)"
    ):
        wasserstein_1d(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="v has 1 non-finite values out of 2"):
        wasserstein_1d(np.zeros(3), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="p must be >= 1, got 0.5"):
        wasserstein_1d(np.zeros(3), np.zeros(3), p=0.5)


def _clouds(n, n_atoms=5, n_dim=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_atoms, n_dim))


def test_distance_w2_invariances_and_scaling():
    x = _clouds(40)
    rot = stats.special_ortho_group.rvs(3, random_state=1)
    y = x[::-1] @ rot.T + 5.0  # rotated, translated, reordered set
    assert distance_w2(x, y) == pytest.approx(0.0, abs=1e-10)
    d = pooled_distances(x)
    assert d.shape == (40 * 10,)
    assert distance_w2(x, 1.5 * x) == pytest.approx(0.5 * math.sqrt((d**2).mean()), rel=1e-10)


def test_distance_tv():
    x = _clouds(50)
    assert distance_tv(x, x[::-1]) == 0.0
    assert distance_tv(x, 100 * x) == pytest.approx(1.0, abs=0.02)  # nearly disjoint distances
    # explicit range: mass outside goes to overflow bins and still counts
    assert histogram_tv([0.5, 0.5], [5.0, 6.0], bins=10, range=(0.0, 1.0)) == 1.0
    assert histogram_tv([0.05, 0.95], [0.06, 0.94], bins=10, range=(0.0, 1.0)) == 0.0
    assert histogram_tv([0.05, 0.95], [0.05, 0.15], bins=10, range=(0.0, 1.0)) == 0.5
    with pytest.raises(ValueError, match="bins must be an int >= 1, got 0"):
        histogram_tv([0.0], [1.0], bins=0)


def test_cloud_shape_errors_name_shapes():
    with pytest.raises(
        ValueError, match=r"same \(n_atoms, n_dim\), got shapes \(4, 5, 3\) and \(4, 6, 3\)"
    ):
        distance_w2(_clouds(4), _clouds(4, n_atoms=6))
    with pytest.raises(ValueError, match=r"x must have shape \(n, n_atoms, n_dim\).*got \(4, 15\)"):
        distance_tv(_clouds(4).reshape(4, 15), _clouds(4))
