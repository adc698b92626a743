"""Discrete-time SMC weights from log densities (``fkc.sample(weights="density")``).

They are exact for any time grid, where the FKC weights (a trapezoidal rule of a continuous-time
rate) are exact only as the step shrinks: on a coarse grid the FKC log Z is off by hundreds of
nats and the density weights are not. Calibration (seed sets 0-15, 16-31, 32-47; error of the
mean log Z over 16 runs of 1000 particles):

* 1-D Gaussian^2, tempered noise, 10 steps: density +0.013 / +0.021 / -0.013 (sd of a single run
  0.10-0.14); FKC +178 / +179 / +182.
* CoM-free 5 x 3 Gaussian^1.5 (12 free dimensions), tempered noise, 40 steps: density -0.025 /
  +0.039 / -0.012 (se 0.03-0.05); with 2 MALA moves per step +0.055 / -0.075 / -0.095 (se
  0.04-0.05); FKC +3.19 / +2.94 / +3.05.
* ``weights="ais"`` (no SDE step, 2 adaptive MALA moves per level, 40 levels), same two targets:
  +0.004 / -0.001 / +0.000 (se 0.002) and +0.002 / -0.010 / +0.003 (se 0.003-0.005).
"""

import pytest
import torch

import fkc
from fkc.experts import Expert, GaussianMixtureExpert
from fkc.experts.exact import gaussian_power_log_z
from fkc.sampler.density_weights import backward_kernels

T_MIN = 1e-3
F64 = torch.float64


def _log_z_error(target, exact, weights, steps, seeds=range(16), **kw):
    lz = [fkc.sample(target, 1000, n_steps=steps, noise="tempered", weights=weights,
                     generator=torch.Generator().manual_seed(s), dtype=F64, progress=False,
                     t_min=T_MIN, **kw).log_z for s in seeds]
    return sum(lz) / len(lz) - exact


def _q_tmin_var(proc, v0):
    """Variance of ``q_{t_min}`` for data variance v0 under ``proc``."""
    t = torch.tensor(T_MIN, dtype=F64)
    return float(proc.alpha(t)) ** 2 * v0 + float(proc.sigma2(t))


def test_exact_on_a_coarse_grid_where_fkc_weights_are_not():
    vp = fkc.VPSDE()
    target = fkc.anneal(GaussianMixtureExpert([1.0], [[1.0]], [0.5], vp), 2.0)
    exact = gaussian_power_log_z(_q_tmin_var(vp, 0.5), 2.0, 1)
    assert abs(_log_z_error(target, exact, "density", 10)) < 0.1
    assert _log_z_error(target, exact, "fkc", 10) > 100.0


@pytest.mark.parametrize("mcmc_steps, tol", [(0, 0.15), (2, 0.2)])
def test_normalisers_count_free_dimensions_and_moves_keep_exactness(mcmc_steps, tol):
    proc = fkc.VPSDE(com_free=True)
    e = GaussianMixtureExpert([1.0], torch.zeros(1, 5, 3, dtype=F64), [0.5], proc)
    exact = gaussian_power_log_z(_q_tmin_var(proc, 0.5), 1.5, 12)
    err = _log_z_error(fkc.anneal(e, 1.5), exact, "density", 40, mcmc_steps=mcmc_steps)
    assert abs(err) < tol, f"log Z error {err:.3f}"
    if mcmc_steps == 0:
        # counting all 15 coordinates instead of the 12 free ones shifts log Z by +10.5
        # (measured); the FKC weights at this step size are off by ~3
        assert _log_z_error(fkc.anneal(e, 1.5), exact, "fkc", 40) > 1.5


@pytest.mark.parametrize("com_free", [False, True])
def test_annealed_importance_sampling_is_exact(com_free):
    proc = fkc.VPSDE(com_free=com_free)
    if com_free:
        e, d = GaussianMixtureExpert([1.0], torch.zeros(1, 5, 3, dtype=F64), [0.5], proc), 12
    else:
        e, d = GaussianMixtureExpert([1.0], [[1.0]], [0.5], proc), 1
    beta = 1.5 if com_free else 2.0
    var = _q_tmin_var(proc, 0.5)
    err = _log_z_error(fkc.anneal(e, beta), gaussian_power_log_z(var, beta, d), "ais", 40,
                       mcmc_steps=2, mcmc_adapt=True)
    assert abs(err) < 0.03, f"log Z error {err:.4f}"
    r = fkc.sample(fkc.anneal(e, beta), 4000, n_steps=40, weights="ais", mcmc_steps=2,
                   mcmc_adapt=True, generator=torch.Generator().manual_seed(0), dtype=F64,
                   progress=False, t_min=T_MIN)
    x = r.samples.flatten(1)
    per_dim = (x - x.mean(0)).square().sum(1).mean() / d  # CoM-free: 12 free of 15 coordinates
    assert float(per_dim) == pytest.approx(var / beta, rel=0.06)


def test_samples_stay_com_free_and_uncorrected_runs_ignore_the_option():
    proc = fkc.VPSDE(com_free=True)
    e = GaussianMixtureExpert([1.0], torch.zeros(1, 4, 3, dtype=F64), [0.5], proc)
    r = fkc.sample(fkc.anneal(e, 2.0), 64, n_steps=10, weights="density", progress=False,
                   generator=torch.Generator().manual_seed(0), dtype=F64, return_trajectory=True)
    assert r.trajectory.mean(dim=2).abs().max() < 1e-10
    assert torch.isfinite(r.log_weights).all() and abs(r.log_z) < 1e3
    kw = dict(n_steps=10, correct=False, progress=False, dtype=F64)
    a = fkc.sample(fkc.anneal(e, 2.0), 16, weights="density", generator=torch.Generator().manual_seed(1), **kw)
    b = fkc.sample(fkc.anneal(e, 2.0), 16, weights="fkc", generator=torch.Generator().manual_seed(1), **kw)
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=0)


class _ScoreOnly(Expert):
    def __init__(self):
        self.process, self.event_shape = fkc.VPSDE(), (1,)

    def score(self, x, t):
        return -x


def test_bad_arguments():
    e = GaussianMixtureExpert([1.0], [[0.0]], [1.0], fkc.VPSDE())
    kw = dict(n_steps=4, progress=False)
    with pytest.raises(ValueError, match="weights must be one of .*'gibbs'"):
        fkc.sample(e, 8, weights="gibbs", **kw)
    with pytest.raises(ValueError, match=r"log density for every expert.*\['_ScoreOnly'\]"):
        fkc.sample(fkc.product(e, _ScoreOnly()), 8, weights="density", **kw)
    with pytest.raises(ValueError, match="noise level a > 0.*a=0"):
        fkc.sample(e, 8, weights="density", noise=0.0, **kw)
    with pytest.raises(ValueError, match="weights='ais' moves the particles only by MCMC"):
        fkc.sample(e, 8, weights="ais", **kw)
    with pytest.raises(ValueError, match="weights='ais' moves the particles only by MCMC"):
        fkc.sample(e, 8, weights="ais", mcmc_steps=1, mcmc_window=(1.0, 0.5), **kw)


def test_backward_kernel_is_the_forward_transition_scaled_by_the_noise_level():
    vp = fkc.VPSDE()
    comp = fkc.anneal(GaussianMixtureExpert([1.0], [[0.0]], [1.0], vp), 2.0)
    times = torch.tensor([1.0, 0.5, 0.1], dtype=F64)
    k = backward_kernels(comp, times, a=0.5)
    a1, a2 = vp.alpha(times[1]), vp.alpha(times[2])
    s1, s2 = vp.sigma2(times[1]), vp.sigma2(times[2])
    assert k[1].scale == pytest.approx(float(a1 / a2))
    assert k[1].var == pytest.approx(0.5 * float(s1 - (a1 / a2) ** 2 * s2))
    # VP: forward transition variance = 1 - (alpha_k / alpha_{k+1})^2
    assert k[1].var == pytest.approx(0.5 * (1 - float(a1 / a2) ** 2))
    with pytest.raises(ValueError, match="variance .* <= 0 at step 0"):
        backward_kernels(comp, torch.tensor([0.5, 0.5], dtype=F64), a=1.0)


def test_continuing_from_given_particles_at_an_intermediate_time():
    """``x_start`` at ``t_start``: exact samples of the normalised ``pi_{t_start}``, density weights
    on to ``t_min``: ``log Z`` estimates ``log int pi_{t_min} - log int pi_{t_start}``
    (seed sets 0-15 / 16-31 / 32-47: error +0.006 / -0.017 / -0.010, sd of one run 0.03-0.04; a
    run that ignored the start time would be off by the whole ``log int pi_{t_start}``, -1.16)."""
    vp, beta, t0 = fkc.VPSDE(), 2.0, 0.3
    e = GaussianMixtureExpert([1.0], [[1.0]], [0.5], vp)
    t = torch.tensor(t0, dtype=F64)
    v0 = float(vp.alpha(t)) ** 2 * 0.5 + float(vp.sigma2(t))
    m0 = float(vp.alpha(t))
    exact = gaussian_power_log_z(_q_tmin_var(vp, 0.5), beta, 1) - gaussian_power_log_z(v0, beta, 1)
    lz = []
    for s in range(16):
        g = torch.Generator().manual_seed(s)
        x0 = m0 + (v0 / beta) ** 0.5 * torch.randn(1000, 1, generator=g, dtype=F64)
        r = fkc.sample(fkc.anneal(e, beta), 1000, n_steps=10, noise="tempered", weights="density",
                       x_start=x0, t_start=t0, generator=g, dtype=F64, progress=False, t_min=T_MIN)
        assert r.times[0].item() == t0
        lz.append(r.log_z)
    assert abs(sum(lz) / 16 - exact) < 0.05, sum(lz) / 16 - exact
    with pytest.raises(ValueError, match="t_start < 1 and log_weights_start need x_start"):
        fkc.sample(e, 8, n_steps=4, t_start=0.5, progress=False)
    with pytest.raises(ValueError, match=r"x_start must have shape .* = \(8, 1\), got \(8, 2\)"):
        fkc.sample(e, 8, n_steps=4, x_start=torch.zeros(8, 2), t_start=0.5, progress=False)
    with pytest.raises(ValueError, match="t_start must be in"):
        fkc.sample(e, 8, n_steps=4, x_start=torch.zeros(8, 1), t_start=1e-4, progress=False)
