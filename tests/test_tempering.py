"""SMC tempering at a fixed diffusion time (``fkc.temper``) against exact references.

Calibration (two sets of 8 seeds each, 1000 particles, 30 geometric rungs, 2 adaptive MALA moves
per rung, t = 1e-3 on the VP process):

* 10-d Gaussian^3 from exact samples of the Gaussian: log Z error -0.006 / -0.020 (sd of one run
  0.03); sample variance / exact 0.998 / 0.998 (sd 0.01).
* two-mode 4-d mixture (variances 0.1 and 0.15, equal weights) to beta = 3, start samples drawn
  0.3 / 0.7 with importance weights: population of the narrow mode 0.835 / 0.839 (sd of one run
  0.013; exact 0.8348). The same moves without the weights: 0.497 / 0.503 (MALA cannot cross
  between the modes, so unweighted annealing keeps the start populations).
* product q1 q2 of two 3-d Gaussians from samples of q1: log Z error +0.003 / +0.014 (sd of one
  run 0.02-0.05); mean and variance of the product within 0.002 and 0.5 %.

Tolerances below are for the mean of 4 runs, several sds of that mean.
"""

import math

import pytest
import torch

import fkc
from fkc.experts import Expert, GaussianMixtureExpert
from fkc.experts.exact import gaussian_power_log_z, gaussian_product_log_z
from fkc.sampler.tempering import tempering_schedule

F64 = torch.float64
T = 1e-3
VP = fkc.VPSDE()
_t = torch.tensor(T, dtype=F64)
A2, S2 = float(VP.alpha(_t)) ** 2, float(VP.sigma2(_t))


def _run(target, x0, seed, **kw):
    g = torch.Generator().manual_seed(seed)
    return fkc.temper(target, x0, n_steps=30, mcmc_steps=2, t=T, generator=g, progress=False, **kw)


def test_log_z_and_variance_of_an_annealed_gaussian():
    d, beta = 10, 3.0
    e = GaussianMixtureExpert([1.0], torch.zeros(1, d, dtype=F64), [0.5], VP)
    vt = A2 * 0.5 + S2
    errs, ratios = [], []
    for s in range(4):
        x0 = torch.randn(1000, d, generator=torch.Generator().manual_seed(100 + s), dtype=F64)
        r = _run(fkc.anneal(e, beta), x0 * math.sqrt(vt), s)
        errs.append(r.log_z - gaussian_power_log_z(vt, beta, d))
        ratios.append(float(r.samples.var(0).mean()) / (vt / beta))
    assert abs(sum(errs) / 4) < 0.08, errs
    assert abs(sum(ratios) / 4 - 1) < 0.05, ratios
    assert r.exponents[0].item() == 1.0 and r.exponents[-1].item() == beta
    assert 0.45 < float(r.acceptance[-5:].mean()) < 0.7  # adapted to 0.57 from a tiny step


def _two_modes(d=4):
    mu = torch.zeros(2, d, dtype=F64)
    mu[0, 0], mu[1, 0] = -3.0, 3.0
    v = torch.tensor([0.1, 0.15], dtype=F64)
    return GaussianMixtureExpert([0.5, 0.5], mu, v, VP), math.sqrt(A2) * mu, A2 * v + S2


def test_weights_move_mass_between_modes_that_moves_cannot_cross():
    d, beta, n = 4, 3.0, 1000
    e, mt, vt = _two_modes(d)
    # exact population of mode 0 under q_t^beta (the modes are 6 sd apart: no overlap)
    lp = beta * math.log(0.5) + d * (1 - beta) / 2 * torch.log(2 * math.pi * vt)
    exact = float(torch.softmax(lp, 0)[0])  # 0.835
    fk, unweighted = [], []
    for s in range(4):
        g = torch.Generator().manual_seed(200 + s)
        c = (torch.rand(n, generator=g, dtype=F64) < 0.7).long()  # proposal 0.3 / 0.7
        x0 = mt[c] + torch.randn(n, d, generator=g, dtype=F64) * vt[c].sqrt()[:, None]
        log_w = torch.where(c == 0, math.log(0.5 / 0.3), math.log(0.5 / 0.7))
        r = _run(fkc.anneal(e, beta), x0, s, log_weights=log_w)
        fk.append(float((r.samples[:, 0] < 0).to(F64).mean()))
        r = _run(fkc.anneal(e, beta), x0, s, log_weights=log_w, ess_threshold=0.0,
                 final_resample=False)
        unweighted.append(float((torch.softmax(log_w, 0) * (r.samples[:, 0] < 0)).sum()))
    assert abs(sum(fk) / 4 - exact) < 0.03, (fk, exact)
    assert abs(sum(unweighted) / 4 - 0.5) < 0.03 and exact - max(unweighted) > 0.25, unweighted


def test_path_between_two_compositions():
    d, n = 3, 1000
    e1 = GaussianMixtureExpert([1.0], torch.zeros(1, d, dtype=F64), [0.5], VP)
    e2 = GaussianMixtureExpert([1.0], torch.full((1, d), 0.5, dtype=F64), [0.3], VP)
    v1, v2, a = A2 * 0.5 + S2, A2 * 0.3 + S2, math.sqrt(A2)
    exact = d * gaussian_product_log_z(0.0, v1, 0.5 * a, v2)
    vm = 1 / (1 / v1 + 1 / v2)
    errs, means, ratios = [], [], []
    for s in range(4):
        x0 = torch.randn(n, d, generator=torch.Generator().manual_seed(300 + s), dtype=F64)
        r = _run(fkc.product(e1, e2), x0 * math.sqrt(v1), s, start=e1)
        errs.append(r.log_z - exact)
        means.append(float(r.samples.mean()) - vm * 0.5 * a / v2)
        ratios.append(float(r.samples.var(0).mean()) / vm)
    assert abs(sum(errs) / 4) < 0.1, errs
    assert abs(sum(means) / 4) < 0.02, means
    assert abs(sum(ratios) / 4 - 1) < 0.05, ratios
    assert r.exponents[0].tolist() == [1.0, 0.0] and r.exponents[-1].tolist() == [1.0, 1.0]


def test_same_seed_same_result():
    e, mt, vt = _two_modes()
    x0 = mt[torch.arange(64) % 2] + 0.1 * torch.randn(64, 4, generator=torch.Generator().manual_seed(0),
                                                    dtype=F64)
    a = _run(fkc.anneal(e, 2.0), x0, 7, burn_in=3)
    b = _run(fkc.anneal(e, 2.0), x0, 7, burn_in=3)
    assert torch.equal(a.samples, b.samples) and a.log_z == b.log_z
    assert a.moves_per_particle == 3 + 2 * 31  # burn-in, 30 rungs, final moves


def test_schedule():
    lam = tempering_schedule(4, "geometric", 1.0, 16.0)
    b = 1.0 + lam * 15.0
    assert lam[0] == 0 and lam[-1] == 1
    assert torch.allclose(b[1:] / b[:-1], torch.full((4,), 2.0, dtype=F64))
    assert torch.allclose(tempering_schedule(3, "linear"), torch.tensor([0, 1 / 3, 2 / 3, 1], dtype=F64))
    assert torch.equal(tempering_schedule(2, "geometric", 2.0, 2.0), torch.tensor([0, 0.5, 1], dtype=F64))
    with pytest.raises(ValueError, match="schedule must be one of"):
        tempering_schedule(3, "cosine")
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1, got 0"):
        tempering_schedule(0)


class _ScoreOnly(Expert):
    def __init__(self):
        self.process, self.event_shape = VP, (4,)

    def score(self, x, t):
        return -x


def test_bad_input_names_the_problem():
    e, mt, _ = _two_modes()
    x0 = mt[torch.arange(8) % 2]
    target = fkc.anneal(e, 2.0)
    with pytest.raises(ValueError, match="x0 must have shape"):
        fkc.temper(target, x0[:, :3], progress=False)
    with pytest.raises(ValueError, match="x0 has non-finite"):
        fkc.temper(target, x0 * float("nan"), progress=False)
    with pytest.raises(ValueError, match="mcmc_steps >= 1"):
        fkc.temper(target, x0, mcmc_steps=0, progress=False)
    with pytest.raises(ValueError, match="sigma_t > 0"):
        fkc.temper(target, x0, t=0.0, progress=False)
    with pytest.raises(ValueError, match="log_w0 must have shape"):
        fkc.temper(target, x0, log_weights=torch.zeros(3), progress=False)
    with pytest.raises(ValueError, match=r"log density for every expert.*\['_ScoreOnly'\]"):
        fkc.temper(fkc.product(e, _ScoreOnly()), x0, progress=False)
    other = GaussianMixtureExpert([1.0], torch.zeros(1, 3, dtype=F64), [0.5], VP)
    with pytest.raises(ValueError, match="share the noise process and event shape"):
        fkc.temper(target, x0, start=other, progress=False)
