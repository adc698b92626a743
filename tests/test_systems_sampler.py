"""Parallel tempering against exact references, reproducibility, and chain diagnostics."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from fkc.systems import (
    DoubleWell,
    HarmonicCluster,
    LennardJones,
    PTConfig,
    compare_runs,
    parallel_tempering,
)
from fkc.systems.diagnostics import (
    autocorrelation,
    effective_sample_size,
    gelman_rubin,
    integrated_autocorr_time,
    mean_difference_z,
    standard_error,
)


def _z(samples, exact):
    """z-score of a sample mean against an exact value, autocorrelation-aware."""
    return (np.mean(samples) - exact) / standard_error(samples)


# ---------------------------------------------------------------- exact references
def test_pt_harmonic_cluster_energy_is_exact_gamma():
    # E ~ Gamma(n_free / 2, scale T) exactly on the CoM-free subspace (n_free = 9 here).
    system = HarmonicCluster(n_atoms=4, n_dim=3, k=2.0)
    temps = (0.5, 1.0, 2.0)
    res = parallel_tempering(
        system, PTConfig(temps, n_burn_in=2_000, n_sweeps=60_000, store_every=20), seed=11
    )
    shape = system.n_free / 2
    for k, t in enumerate(temps):
        e = res.sample_energies[k]
        assert len(e) == 3_000
        assert abs(_z(res.energy_trace[k], shape * t)) < 4.0
        # stored samples are 20 sweeps apart (tau ~ a few sweeps): KS test as if independent
        ks = stats.kstest(e, stats.gamma(shape, scale=t).cdf)
        assert ks.pvalue > 1e-3, (t, ks)
        assert np.var(e) == pytest.approx(shape * t**2, rel=0.15)
        # samples are CoM-free and energies match
        assert np.abs(res.samples[k].mean(axis=1)).max() < 1e-12
    assert np.all((res.acceptance > 0.3) & (res.acceptance < 0.5))


def _dw_pair_exact(t, a=0.9, b=-4.0, d0=4.0):
    """2 particles in 2-D: CoM-free coordinate d = x1 - x2 in R^2, so r = |d| has density
    ∝ r exp(-E(r) / T); returns (mean energy, P(r < d0))."""

    def e(r):
        return a * (r - d0) ** 4 + b * (r - d0) ** 2

    def w(r):
        return r * np.exp(-e(r) / t)

    top = d0 + 10.0  # exp(-E / T) < 1e-3000 beyond: the quartic dominates
    z = integrate.quad(w, 0, top, points=[d0], limit=200)[0]
    mean_e = integrate.quad(lambda r: e(r) * w(r), 0, top, points=[d0], limit=200)[0] / z
    inner = integrate.quad(w, 0, d0, limit=200)[0] / z
    return mean_e, inner


def test_pt_double_well_pair_matches_quadrature():
    # Barrier between the wells is 4.44 = 8.9 T at T = 0.5: plain random walk would be stuck.
    system = DoubleWell(n_atoms=2, n_dim=2)
    temps = (0.5, 0.8, 1.3, 2.0, 3.2, 5.0)
    res = parallel_tempering(
        system, PTConfig(temps, n_burn_in=5_000, n_sweeps=200_000, store_every=10), seed=3
    )
    assert res.round_trips > 100
    for k, t in enumerate(temps[:3]):
        mean_e, inner = _dw_pair_exact(t)
        r = np.linalg.norm(res.samples[k][:, 0] - res.samples[k][:, 1], axis=-1)
        assert abs(_z((r < 4.0).astype(float), inner)) < 4.0, (t, np.mean(r < 4.0), inner)
        assert abs(_z(res.energy_trace[k], mean_e)) < 4.0, (t, res.energy_trace[k].mean(), mean_e)
    # the inner well really is populated at the lowest temperature
    assert 0.1 < _dw_pair_exact(0.5)[1] < 0.45


def test_pt_is_reproducible_and_seed_dependent():
    system = LennardJones(n_atoms=5)
    cfg = PTConfig((1.0, 1.5), n_burn_in=200, n_sweeps=500, store_every=50)
    a = parallel_tempering(system, cfg, seed=7)
    b = parallel_tempering(system, cfg, seed=7)
    c = parallel_tempering(system, cfg, seed=8)
    np.testing.assert_array_equal(a.samples[0], b.samples[0])
    np.testing.assert_array_equal(a.energy_trace, b.energy_trace)
    np.testing.assert_array_equal(a.step_sizes, b.step_sizes)
    assert not np.array_equal(a.samples[0], c.samples[0])
    assert a.samples[0].shape == (10, 5, 3) and a.energy_trace.shape == (2, 500)
    # stored energies are exact energies of the stored configurations
    e_fn, _, p = system.numba_kernels()
    np.testing.assert_allclose([e_fn(x, p) for x in a.samples[1]], a.sample_energies[1])


def test_step_sizes_adapt_in_burn_in_only():
    system = HarmonicCluster()
    frozen = parallel_tempering(system, PTConfig((1.0,), 0, 2_000, initial_step=0.05), seed=0)
    assert frozen.step_sizes[0] == pytest.approx(0.05)  # no burn-in: never adapted
    assert frozen.acceptance[0] > 0.8  # far too small a step
    adapted = parallel_tempering(system, PTConfig((1.0,), 3_000, 2_000, initial_step=0.05), seed=0)
    assert adapted.step_sizes[0] > 0.5
    assert adapted.acceptance[0] == pytest.approx(0.4, abs=0.05)


def test_compare_runs_and_x0():
    system = HarmonicCluster(n_atoms=3, n_dim=2)
    cfg = PTConfig((1.0, 2.0), n_burn_in=500, n_sweeps=5_000)
    runs = [parallel_tempering(system, cfg, seed=s) for s in range(4)]
    out = compare_runs(runs)
    assert all(r < 1.05 for r in out["rhat"]) and all(z < 4.5 for z in out["max_abs_z"])
    assert out["energy_mean"][0] == pytest.approx(2.0, abs=5 * out["energy_se"][0])  # n_free/2 T
    x0 = np.ones((3, 2)) * 5.0
    res = parallel_tempering(system, PTConfig((1.0,), 0, 1), seed=0, x0=x0)
    assert res.energy_trace.shape == (1, 1)
    with pytest.raises(ValueError, match=r"x0 must have shape \(3, 2\).*got \(4, 2\)"):
        parallel_tempering(system, cfg, seed=0, x0=np.zeros((4, 2)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperatures": (1.0, 0.5)}, "strictly increasing.*1.0, 0.5"),
        ({"temperatures": (-1.0,)}, "T > 0"),
        ({"n_sweeps": 0}, "n_sweeps >= 1"),
        ({"store_every": (1, 2, 3)}, "one per temperature"),
        ({"target_accept": 1.5}, "target_accept.*1.5"),
    ],
)
def test_ptconfig_validation(kwargs, match):
    base = {"temperatures": (1.0, 2.0), "n_burn_in": 0, "n_sweeps": 10}
    with pytest.raises(ValueError, match=match):
        PTConfig(**{**base, **kwargs})


# ---------------------------------------------------------------- diagnostics
def _ar1(phi, n, m, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros((m, n))
    noise = rng.standard_normal((m, n))
    x[:, 0] = noise[:, 0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.mark.parametrize(
    ("phi", "method"),
    [(p, "geyer") for p in (-0.5, 0.0, 0.5, 0.9)] + [(p, "sokal") for p in (0.0, 0.5, 0.9)],
)
def test_autocorr_time_of_ar1(phi, method):
    x = _ar1(phi, 20_000, 4, seed=1)
    tau_exact = (1 + phi) / (1 - phi)
    assert integrated_autocorr_time(x, method) == pytest.approx(tau_exact, rel=0.1)
    if method == "geyer":
        assert effective_sample_size(x) == pytest.approx(x.size / tau_exact, rel=0.1)
    rho = autocorrelation(x[0])
    assert rho[0] == 1.0 and rho[1] == pytest.approx(phi, abs=0.03)


def test_rhat_and_z_detect_disagreement():
    x = _ar1(0.5, 5_000, 4, seed=2)
    assert gelman_rubin(x) < 1.01
    assert abs(mean_difference_z(x[0], x[1:])) < 4
    shifted = x.copy()
    shifted[0] += 2.0  # 1.7 sd of the AR(1) marginal
    assert gelman_rubin(shifted) > 1.1
    assert abs(mean_difference_z(shifted[0], shifted[1:])) > 10
    drifting = x + np.linspace(0, 2, x.shape[1])
    assert gelman_rubin(drifting, split=True) > gelman_rubin(drifting, split=False)
    with pytest.raises(ValueError, match=r"\(1, 3, 4\)"):
        gelman_rubin(np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="method must be 'geyer' or 'sokal', got 'x'"):
        integrated_autocorr_time(x, method="x")
    with pytest.raises(ValueError, match="1 non-finite"):
        integrated_autocorr_time(np.array([1.0, np.nan, 2.0]))
