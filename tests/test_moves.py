"""Langevin resample-move (:mod:`fkc.sampler.moves`): invariance, errors, and why FKC needs it.

The statistical test anneals a 30-d two-mode Gaussian mixture (mode axis + stiff, medium and soft
directions, variances 0.0025 / 0.04 / 0.3) to beta = 8/3, where everything is exact: the two
modes keep equal mass and ``log Z = log int pi_{t_min}`` is a sum of Gaussian integrals.
Tolerances come from 12 seeds of each setting (400 EDM steps, 512 particles):
* no moves: right-mode mass 1.000/0.027/1.000/0.003/0.249/1.000/0.000/0.002/0.621/1.000/1.000/
  1.000 (10 of 12 runs put > 90 % in one mode) and log Z -9.8 ... 12.5 against the exact 19.87;
* 2 MALA moves per step: mass 0.37-0.63 (mean 0.508, sd 0.085), soft-direction variance ratio
  0.95-1.06, log Z 20.1-21.6 (mean 20.97, sd 0.4; the +1.1 is time discretisation).
"""

import math

import pytest
import torch

import fkc
from fkc.compose.corrector import score_terms
from fkc.experts.exact import gaussian_power_log_z
from fkc.sampler.moves import MoveConfig, langevin_moves

BETA = 8 / 3
T_MIN = 1e-3


def _mixture(d: int = 30):
    m = (d - 1) // 3
    var = torch.cat([torch.full((1,), 0.1), torch.full((m,), 0.0025), torch.full((m,), 0.04),
                     torch.full((d - 1 - 2 * m,), 0.3)]).double()
    mu = torch.zeros(2, d, dtype=torch.float64)
    mu[0, 0], mu[1, 0] = 1.5, -1.5
    proc = fkc.VPSDE()
    return fkc.GaussianMixtureExpert([0.5, 0.5], mu, torch.stack([var, var]), proc), var, m


def _exact_log_z(var, proc) -> float:
    t = torch.tensor(T_MIN, dtype=torch.float64)
    vt = proc.alpha(t) ** 2 * var + proc.sigma2(t)
    # well-separated modes of equal shape: int (q1/2 + q2/2)^b = 2 * 2^-b * int q1^b
    return sum(gaussian_power_log_z(float(v), BETA, 1) for v in vt) + math.log(2 * 0.5 ** BETA)


class _ScoreOnly(fkc.Expert):
    """The mixture without its log density (like a score network)."""

    def __init__(self, expert):
        self.expert = expert
        self.process = expert.process
        self.event_shape = expert.event_shape

    def score(self, x, t):
        return self.expert.score(x, t)


def _run(target, seed, **kw):
    return fkc.sample(target, 512, n_steps=400, grid="edm", t_min=T_MIN, final_resample=False,
                      generator=torch.Generator().manual_seed(seed), progress=False,
                      dtype=torch.float64, **kw)


def _stats(res, m):
    w = res.weights
    x = res.samples
    right = float((w * (x[:, 0] > 0)).sum())
    soft = float((w[:, None] * x[:, 1 + 2 * m:] ** 2).sum(0).mean() / (0.3 / BETA))
    return right, soft


@pytest.mark.slow
def test_fkc_without_moves_collapses_and_mala_moves_fix_it():
    gm, var, m = _mixture()
    target = fkc.anneal(gm, BETA)
    exact = _exact_log_z(var, gm.process)
    bare = [_run(target, s) for s in range(4)]
    moved = [_run(target, s, mcmc_steps=2, mcmc="mala") for s in range(4)]
    # the uncorrected-by-moves FKC sampler is wrong here: runs end (nearly) in one mode
    dev_bare = [abs(_stats(r, m)[0] - 0.5) for r in bare]
    assert sum(dev_bare) / 4 > 0.3, dev_bare
    assert sum(r.log_z for r in bare) / 4 < exact - 5, [r.log_z for r in bare]
    # with two MALA moves per step: both modes, right spread, log Z (sd 0.4, bias +1.1)
    right, soft = zip(*(_stats(r, m) for r in moved), strict=True)
    assert all(abs(f - 0.5) < 0.3 for f in right), right
    assert abs(sum(right) / 4 - 0.5) < 0.15, right
    assert 0.9 < sum(soft) / 4 < 1.1, soft
    log_z = [r.log_z for r in moved]
    assert abs(sum(log_z) / 4 - exact) < 2.5, (log_z, exact)
    acc = moved[0].acceptance
    assert acc.shape == (401,) and math.isnan(float(acc[-1]))
    assert 0.2 < float(acc[:-1].mean()) < 0.9


def _gaussian_samples(d=8, n=20000, t=0.05, seed=0):
    """Exact samples of ``pi_t = q_t^beta`` for a Gaussian q with variances 0.01 ... 1."""
    proc = fkc.VPSDE()
    var = torch.logspace(-2, 0, d, dtype=torch.float64)
    gm = fkc.GaussianMixtureExpert([1.0], torch.zeros(1, d, dtype=torch.float64), var[None], proc)
    tt = torch.tensor(t, dtype=torch.float64)
    vt = (proc.alpha(tt) ** 2 * var + proc.sigma2(tt)) / BETA
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * vt.sqrt()
    return fkc.anneal(gm, BETA), x, vt, float(proc.sigma2(tt)), g


@pytest.mark.parametrize("kind", ["mala", "ula"])
def test_moves_keep_or_bias_the_target_variance(kind):
    # step 1.5 sigma_t^2 / B: MALA stays exact; ULA inflates the stiff variance
    # (stationary variance v / (1 - delta / 2v) for a Gaussian of variance v, ~ 1.5x here)
    target, x, vt, s2, g = _gaussian_samples()
    t = torch.full((x.shape[0],), 0.05, dtype=torch.float64)
    terms = score_terms(target, x, t, weighted=True)
    res = langevin_moves(target, x, t, terms, s2, MoveConfig(n=20, kind=kind, step_size=1.5),
                         weighted=True, generator=g)
    ratio = res.x.var(0) / vt
    if kind == "mala":
        # var of a sample variance from 20 000 draws: sd 1 %; MALA chains correlate a little
        assert torch.allclose(ratio, torch.ones_like(ratio), atol=0.06), ratio
        assert 0.2 < res.acceptance < 0.95
    else:
        assert ratio[0] > 1.3, ratio  # the stiffest direction
        assert res.acceptance == 1.0
    # the returned terms belong to the returned points
    again = score_terms(target, res.x, t, weighted=True)
    assert torch.allclose(again.S, res.terms.S) and torch.allclose(again.sq, res.terms.sq)


def test_mala_needs_log_density_and_names_the_expert():
    gm, _, _ = _mixture(d=4)
    target = fkc.anneal(_ScoreOnly(gm), BETA)
    with pytest.raises(ValueError, match="_ScoreOnly"):
        fkc.sample(target, 8, n_steps=4, mcmc_steps=1, mcmc="mala", progress=False)
    res = fkc.sample(target, 8, n_steps=4, mcmc_steps=1, mcmc="ula", progress=False,
                     generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(res.samples).all()


@pytest.mark.parametrize("kw, match", [
    ({"mcmc_steps": -1}, "integer >= 0"),
    ({"mcmc_steps": 1.5}, "integer >= 0"),
    ({"mcmc_steps": 1, "mcmc": "hmc"}, "'hmc'"),
    ({"mcmc_steps": 1, "mcmc_step_size": 0.0}, "step_size"),
    ({"mcmc_steps": 1, "mcmc_step_size": float("nan")}, "step_size"),
    ({"mcmc_steps": 1, "mcmc_window": (0.2, 0.5)}, "window"),
    ({"mcmc_steps": 1, "mcmc": "ula", "mcmc_adapt": True}, "MALA's acceptance rate, got kind 'ula'"),
    ({"mcmc_steps": 1, "mcmc_adapt": 1}, "adapt must be a bool, got 1"),
])
def test_bad_move_settings_name_the_value(kw, match):
    gm, _, _ = _mixture(d=4)
    with pytest.raises(ValueError, match=match):
        fkc.sample(fkc.anneal(gm, BETA), 8, n_steps=4, progress=False, **kw)


def test_moves_are_reproducible_and_respect_the_window():
    gm, _, _ = _mixture(d=4)
    target = fkc.anneal(gm, BETA)
    kw = dict(n_steps=20, mcmc_steps=2, mcmc_window=(0.5, 0.1), progress=False)
    a = fkc.sample(target, 64, generator=torch.Generator().manual_seed(3), **kw)
    b = fkc.sample(target, 64, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a.samples, b.samples) and a.log_z == b.log_z
    ran = ~a.acceptance.isnan()
    inside = (a.times <= 0.5) & (a.times >= 0.1)
    inside[-1] = False  # no move after the last step
    assert torch.equal(ran, inside)
    assert a.moves_per_particle == 2 * int(ran.sum()) > 0
    assert fkc.sample(target, 64, generator=torch.Generator().manual_seed(3), n_steps=20,
                      progress=False).acceptance is None


def test_mala_on_com_free_points_stays_com_free_and_exact():
    # exact samples of an annealed isotropic Gaussian on the CoM-free subspace of 5 atoms:
    # MALA with projected noise must keep them CoM-free and keep their variance (a proposal
    # density that ignored the projection would bias the acceptance test)
    proc = fkc.VPSDE(com_free=True)
    gm = fkc.GaussianMixtureExpert([1.0], torch.zeros(1, 5, 3, dtype=torch.float64),
                                   torch.tensor([0.2]), proc)
    target = fkc.anneal(gm, 2.0)
    t0 = torch.tensor(0.1, dtype=torch.float64)
    vt = float((proc.alpha(t0) ** 2 * 0.2 + proc.sigma2(t0)) / 2.0)
    g = torch.Generator().manual_seed(1)
    x = proc.space.project(torch.randn(20000, 5, 3, generator=g, dtype=torch.float64)) * vt ** 0.5
    t = torch.full((x.shape[0],), 0.1, dtype=torch.float64)
    res = langevin_moves(target, x, t, score_terms(target, x, t, weighted=False),
                         float(proc.sigma2(t0)), MoveConfig(n=20, kind="mala", step_size=1.5),
                         weighted=False, generator=g)
    assert res.x.mean(dim=1).abs().max() < 1e-12
    # per-coordinate variance of a projected isotropic Gaussian: vt (1 - 1/n_atoms)
    ratio = float(res.x.var(0).mean() / (vt * 0.8))
    assert abs(ratio - 1.0) < 0.03, ratio
    assert 0.2 < res.acceptance < 0.95


def test_adaptive_mala_step_grows_below_the_stiff_width_and_stays_exact():
    """With a fixed step 0.5 sigma_t^2 / B, MALA accepts ~92 % over the last 50 steps (sigma_t
    falls below the stiff width 0.05, so the moves barely move); adapted, the step ends ~24x
    larger with acceptance near the 0.57 target, and the sampler stays exact. 6 seeds at these
    settings: final step 11.7-12.3, last-50 acceptance 0.625-0.627, soft variance ratio
    0.94-1.00, log Z - exact -0.4 ... 2.2, right-mode mass 0.32-0.74."""
    gm, var, m = _mixture()
    target = fkc.anneal(gm, BETA)
    res = fkc.sample(target, 256, n_steps=400, grid="edm", t_min=T_MIN, final_resample=False,
                     generator=torch.Generator().manual_seed(0), progress=False,
                     dtype=torch.float64, mcmc_steps=2, mcmc="mala", mcmc_adapt=True)
    steps = res.mcmc_step_sizes[:-1]
    assert steps[0] == 0.5 and 8.0 < float(steps[-1]) < 18.0, steps[-5:]
    assert 0.5 < float(res.acceptance[:-1][-50:].mean()) < 0.75
    right, soft = _stats(res, m)
    assert abs(right - 0.5) < 0.3 and 0.85 < soft < 1.15, (right, soft)
    assert abs(res.log_z - _exact_log_z(var, gm.process)) < 3.0, res.log_z


def test_adapted_step_size_rule():
    cfg = MoveConfig(n=1, adapt=True, target_acceptance=0.5)
    assert cfg.adapted(1.0, 0.5) == 1.0
    assert cfg.adapted(1.0, 1.0) == pytest.approx(math.exp(0.5))
    assert cfg.adapted(1.0, 0.0) == pytest.approx(math.exp(-0.5))
    assert cfg.adapted(9e3, 1.0) == 1e4 and cfg.adapted(1.1e-4, 0.0) == 1e-4  # clipped
    assert MoveConfig(n=1).adapted(0.3, 1.0) == 0.3  # no adaptation by default
    with pytest.raises(ValueError, match=r"target_acceptance must be in \(0, 1\), got 1.0"):
        MoveConfig(n=1, adapt=True, target_acceptance=1.0)
