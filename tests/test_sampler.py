"""The FKC sampler: normalising constants, determinism, diagnostics and bad input."""

import math

import pytest
import torch

import fkc
from fkc.experts import Expert, GaussianMixtureExpert
from fkc.experts.exact import gaussian_power_log_z, gaussian_product_log_z
from fkc.smc import AllParticlesDiedError

VP = fkc.VPSDE()
T_MIN = 1e-3
_tm = torch.tensor(T_MIN, dtype=torch.float64)
A, S2 = float(VP.alpha(_tm)), float(VP.sigma2(_tm))  # q_{t_min} = N(A m, A^2 v + S2)


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _mean_log_z(target, seeds=range(8), n=4000, steps=500):
    lz = [fkc.sample(target, n, n_steps=steps, generator=_g(s), dtype=torch.float64,
                     progress=False, t_min=T_MIN).log_z for s in seeds]
    return sum(lz) / len(lz)


E1 = GaussianMixtureExpert([1.0], [[1.0]], [0.5], VP)
E2 = GaussianMixtureExpert([1.0], [[-0.5]], [1.0], VP)


# Calibration, 8 seeds x 4000 particles, 500 steps: mean log Z error -0.002 (sd over seeds 0.033),
# +0.10 (sd 0.25), -0.074 (sd 0.094). Tolerances are ~4 standard errors plus discretisation bias.
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, target, exact, tol",
    [
        ("gauss^0.5", fkc.anneal(E1, 0.5), gaussian_power_log_z(A * A * 0.5 + S2, 0.5, 1), 0.05),
        ("gauss^2", fkc.anneal(E1, 2.0), gaussian_power_log_z(A * A * 0.5 + S2, 2.0, 1), 0.35),
        ("gauss*gauss", fkc.product(E1, E2),
         gaussian_product_log_z([A], [A * A * 0.5 + S2], [-0.5 * A], [A * A + S2]), 0.15),
    ],
)
def test_log_z_matches_closed_form(name, target, exact, tol):
    got = _mean_log_z(target)
    assert abs(got - exact) < tol, f"{name}: log Z {got:.4f} vs exact {exact:.4f}"


def test_log_z_of_invariant_gaussian_needs_the_divergence_term():
    # q = N(0, I_2) is invariant under VP; for q^1.5 log Z = -0.5 log(2 pi) - log 1.5 exactly and
    # the particles start exactly in pi_1. Dropping (B - 1) div f would shift log Z by
    # 0.5 * 2 * (log alpha(1) - log alpha(t_min)) ~ -5. Calibration: error 0.0-0.1 over seed sets.
    e = GaussianMixtureExpert([1.0], [[0.0, 0.0]], [1.0], VP)
    got = _mean_log_z(fkc.anneal(e, 1.5), seeds=range(4), n=2000, steps=400)
    assert got == pytest.approx(gaussian_power_log_z(1.0, 1.5, 2), abs=0.3)


def test_same_seed_same_result_and_different_seed_differs():
    target = fkc.anneal(E1, 2.0)
    r1 = fkc.sample(target, 256, n_steps=50, generator=_g(7), progress=False)
    r2 = fkc.sample(target, 256, n_steps=50, generator=_g(7), progress=False)
    r3 = fkc.sample(target, 256, n_steps=50, generator=_g(8), progress=False)
    assert torch.equal(r1.samples, r2.samples) and r1.log_z == r2.log_z
    assert torch.equal(r1.resampled, r2.resampled)
    assert not torch.equal(r1.samples, r3.samples)
    assert r1.seed == 7


def test_result_shapes_and_diagnostics():
    target = fkc.product(E1, E2)
    r = fkc.sample(target, 300, n_steps=40, generator=_g(0), progress=False,
                   return_trajectory=True, final_resample=True)
    assert r.samples.shape == (300, 1) and r.samples.dtype == torch.float32
    assert r.times.shape == (41,) and r.times[0] == 1.0 and r.times[-1] == pytest.approx(T_MIN)
    for arr in (r.ess, r.resampled, r.n_unique, r.n_dead):
        assert arr.shape == (41,)
    assert r.trajectory.shape == (41, 300, 1)
    assert bool(r.resampled[-1])  # the final resampling
    assert torch.equal(r.log_weights, torch.zeros(300, dtype=torch.float64))
    assert (r.ess <= 300 + 1e-9).all() and (r.ess >= 1 - 1e-9).all()
    assert (r.n_unique[r.resampled] <= 300).all()
    assert math.isclose(float(r.log_z_increments.sum()), r.log_z, abs_tol=1e-9)


def test_resample_window_and_threshold():
    target = fkc.anneal(E1, 3.0)
    r = fkc.sample(target, 200, n_steps=60, ess_threshold=1.0, resample_window=(0.5, 0.2),
                   final_resample=False, generator=_g(0), progress=False)
    inside = (r.times[:-1] <= 0.5) & (r.times[:-1] >= 0.2)
    assert torch.equal(r.resampled[:-1], inside)
    never = fkc.sample(target, 200, n_steps=60, ess_threshold=0.0, final_resample=False,
                       generator=_g(0), progress=False)
    assert not never.resampled.any()


def test_uncorrected_sampler_has_no_weights():
    r = fkc.sample(fkc.anneal(E1, 2.0), 100, n_steps=30, correct=False, generator=_g(0),
                   progress=False)
    assert math.isnan(r.log_z) and not r.resampled.any() and not r.corrected
    assert torch.equal(r.log_weights, torch.zeros(100, dtype=torch.float64))


def test_same_particles_corrected_and_uncorrected_without_resampling():
    # Same drift, same noise, same random numbers: only the weights differ.
    kw = dict(n_steps=30, ess_threshold=0.0, final_resample=False, progress=False)
    a = fkc.sample(fkc.anneal(E1, 2.0), 64, correct=True, generator=_g(3), **kw)
    b = fkc.sample(fkc.anneal(E1, 2.0), 64, correct=False, generator=_g(3), **kw)
    assert torch.equal(a.samples, b.samples)
    assert a.log_weights.std() > 0


def test_com_free_target_stays_com_free():
    proc = fkc.VPSDE(com_free=True)
    means = torch.randn(2, 5, 3, generator=_g(0), dtype=torch.float64)
    means = means - means.mean(1, keepdim=True)
    e = GaussianMixtureExpert([0.5, 0.5], means, [0.3, 0.3], proc)
    r = fkc.sample(fkc.anneal(e, 2.0), 128, n_steps=40, generator=_g(0), progress=False,
                   dtype=torch.float64, return_trajectory=True)
    assert r.trajectory.mean(dim=2).abs().max() < 1e-10


class _NaNExpert(Expert):
    """Returns NaN scores for particles with x > threshold (or all, if threshold is None)."""

    def __init__(self, threshold):
        self.process, self.event_shape, self.threshold = VP, (1,), threshold

    def score(self, x, t):
        s = -x.clone()
        if self.threshold is None:
            return torch.full_like(x, float("nan"))
        s[x[:, 0] > self.threshold] = float("nan")
        return s


def test_nan_scores_kill_particles_and_are_reported():
    r = fkc.sample(fkc.anneal(_NaNExpert(1.5), 2.0), 500, n_steps=20, generator=_g(0),
                   progress=False, ess_threshold=0.0, final_resample=False)
    dead = torch.isneginf(r.log_weights)
    assert dead.any() and int(r.n_dead[-1]) == int(dead.sum())
    assert torch.isfinite(r.samples[~dead]).all()


def test_all_particles_dead_names_the_step():
    with pytest.raises(AllParticlesDiedError, match=r"died at step 1 .*t=0\.8002.*NaN for 50"):
        fkc.sample(fkc.anneal(_NaNExpert(None), 2.0), 50, n_steps=5, generator=_g(0),
                   progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_particles=0), "n_particles must be an integer >= 1, got 0"),
        (dict(n_steps=0), "n_steps must be an integer >= 1, got 0"),
        (dict(noise="loud"), "noise must be"),
        (dict(noise=-1.0), "noise level must be finite and >= 0, got -1.0"),
        (dict(resample_window=(0.2, 0.5)), r"resample_window .* got \(0.2, 0.5\)"),
        (dict(t_min=1.0), "t_min must be in"),
        (dict(dtype=torch.int64), "floating-point"),
        (dict(ess_threshold=1.5), "ess_threshold must be in"),
        (dict(resample="bogus"), "bogus"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(target=fkc.anneal(E1, 2.0), n_particles=10, n_steps=5, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fkc.sample(**args)


def test_bad_target():
    with pytest.raises(ValueError, match="target must be an Expert"):
        fkc.sample("not an expert", 10, progress=False)


def test_edm_time_grid_is_dense_at_small_noise():
    from fkc.sampler.diffusion import time_grid

    t = time_grid(200, T_MIN, "edm", VP)
    assert t.shape == (201,) and t.dtype == torch.float64
    assert t[0] == 1.0 and t[-1] == T_MIN and bool((t[1:] < t[:-1]).all())
    u = time_grid(200, T_MIN)
    assert float(t[-2] - t[-1]) < 0.1 * float(u[-2] - u[-1])  # much finer near t_min
    lam = (VP.sigma(t) / VP.alpha(t)) ** (1 / 7.0)
    steps = lam[:-1] - lam[1:]
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-3)
    ve = fkc.VESDE()
    tv = time_grid(50, T_MIN, "edm", ve)
    assert bool((tv[1:] < tv[:-1]).all())
    with pytest.raises(ValueError, match="'cubic'"):
        time_grid(10, T_MIN, "cubic", VP)
    with pytest.raises(ValueError, match="noise process"):
        time_grid(10, T_MIN, "edm")


def test_sample_accepts_edm_grid_and_records_it():
    res = fkc.sample(fkc.anneal(E1, 2.0), 64, n_steps=20, grid="edm", generator=_g(0),
                     progress=False)
    assert float(res.times[-2]) < 0.01
    with pytest.raises(ValueError, match="'log'"):
        fkc.sample(E1, 8, n_steps=5, grid="log", progress=False)


def test_full_weight_window_is_the_default_and_empty_window_is_uncorrected():
    target = fkc.anneal(E1, 2.0)
    kw = dict(n_steps=40, progress=False, dtype=torch.float64)
    base = fkc.sample(target, 256, generator=_g(3), **kw)
    full = fkc.sample(target, 256, generator=_g(3), weight_window=(1.0, 0.0), **kw)
    assert torch.equal(base.samples, full.samples) and base.log_z == full.log_z
    # no weights anywhere: same particles as the uncorrected sampler, log Z = 0, no resampling
    none = fkc.sample(target, 256, generator=_g(3), weight_window=(0.0, 0.0), **kw)
    unc = fkc.sample(target, 256, generator=_g(3), correct=False, **kw)
    assert torch.equal(none.samples, unc.samples)
    assert none.log_z == 0.0 and not bool(none.resampled[:-1].any())


def test_weight_window_zeroes_increments_outside_it():
    target = fkc.anneal(E1, 2.0)
    res = fkc.sample(target, 256, n_steps=40, generator=_g(4), weight_window=(1.0, 0.5),
                     progress=False, dtype=torch.float64)
    inc = res.log_z_increments
    below = res.times[1:] < 0.5  # step k -> k+1 ends below t_lo
    assert bool((inc[1:][below] == 0).all()) and bool((inc[1:][~below] != 0).any())
    with pytest.raises(ValueError, match="weight_window"):
        fkc.sample(target, 8, n_steps=5, weight_window=(0.2, 0.5), progress=False)


def test_tweedie_denoise_matches_gaussian_posterior_mean():
    # q_t = N(alpha m, alpha^2 v + s2); the posterior mean of x0 given x_t is
    # m + alpha v (x - alpha m) / (alpha^2 v + s2), for any beta (the denoiser uses S / B = s).
    m, v, t = 1.0, 0.3, 0.2
    e = GaussianMixtureExpert([1.0], [[m]], [v], VP)
    tt = torch.full((5,), t, dtype=torch.float64)
    al, s2 = float(VP.alpha(tt[0])), float(VP.sigma2(tt[0]))
    x = torch.linspace(-1, 2, 5, dtype=torch.float64)[:, None]
    comp = fkc.anneal(e, 3.0)
    S = 3.0 * e.score(x, tt)
    from fkc.compose import tweedie_denoise

    got = tweedie_denoise(comp, x, tt, S)
    want = m + al * v * (x - al * m) / (al * al * v + s2)
    assert torch.allclose(got, want, atol=1e-12)


def test_sample_denoise_moves_final_particles_towards_the_mode():
    e = GaussianMixtureExpert([1.0], [[1.0]], [1e-3], VP)  # narrow: t_min noise is visible
    kw = dict(n_steps=100, progress=False, dtype=torch.float64, t_min=0.02)
    raw = fkc.sample(fkc.anneal(e, 2.0), 2000, generator=_g(5), **kw)
    den = fkc.sample(fkc.anneal(e, 2.0), 2000, generator=_g(5), denoise=True, **kw)
    var_raw, var_den = float(raw.samples.var()), float(den.samples.var())
    # exact target variance 5e-4; sigma^2(0.02) / 2 ~ 2e-3 of noise is left without denoising
    assert var_raw > 2e-3 and abs(var_den - 5e-4) < 2e-4, (var_raw, var_den)
