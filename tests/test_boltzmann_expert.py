"""``BoltzmannExpert`` (a force field's ``exp(-U/kT)``) and tempering from a model to it.

Exact reference: a "model" ``q = N(0, 0.5 I_6)`` (exact diffused Gaussian expert) tempered to
``q^2`` and then to a "force field" ``U(y) = k/2 |y - m|^2`` in its own length unit ``y = s x``
(``s = 0.1``, ``kT = 2.5``, ``k = 500``): ``p(x) ∝ exp(-k s^2 |x - m/s|^2 / (2 kT))`` is
``N(m/s, kT / (k s^2))`` = ``N(m/s, 0.5)`` unnormalised, so ``log Z_p - log Z_{q^2}`` is closed
form. Calibration (1000 particles, 30 linear rungs, 2 adaptive MALA moves; seeds 0-7): log Z error
-0.037 .. +0.048 (sd 0.035), largest mean error over the 6 coordinates 0.013-0.050, variance
ratio 0.973-1.027. Tolerances: 0.15 on log Z (4 sd), 0.1 on the mean (a wrong length scale puts it
0.27 off), 8 % on the variance (one run).
"""

import math

import numpy as np
import pytest
import torch

import fkc
from fkc.experts import GaussianMixtureExpert
from fkc.experts.boltzmann import BoltzmannExpert
from fkc.experts.exact import gaussian_power_log_z

F64 = torch.float64
T = 1e-3
VP = fkc.VPSDE()
D, K, KT, S = 6, 500.0, 2.5, 0.1
M = np.full(D, 0.03)  # force-field minimum (force-field units); x-space minimum M / S = 0.3


def _harmonic(y):
    """``U = k/2 |y - m|^2`` and ``F = -k (y - m)`` for ``y: (n, D)`` float64 numpy."""
    dy = y - M
    return 0.5 * K * (dy ** 2).sum(-1), -K * dy


def _ff(**kw):
    return BoltzmannExpert(_harmonic, KT, VP, (D,), length_scale=S, **kw)


def test_log_density_and_score_are_the_scaled_force_field():
    ff = _ff()
    x = torch.randn(5, D, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    t = torch.full((5,), T)
    u, f = _harmonic(x.double().numpy() * S)
    assert torch.allclose(ff.log_density(x, t), torch.as_tensor(-u / KT), atol=1e-9)
    s = ff.score(x, t)
    assert s.dtype == torch.float32
    assert torch.allclose(s.double(), torch.as_tensor(f * S / KT), atol=1e-5)
    # the score is the gradient of the log density (finite differences in x)
    eps = 1e-6
    xd = x.double()
    e0 = torch.zeros(D, dtype=F64)
    e0[2] = eps
    fd = (ff.log_density(xd + e0, t) - ff.log_density(xd - e0, t)) / (2 * eps)
    assert torch.allclose(fd, ff.score(xd, t)[:, 2], rtol=1e-5)


def test_score_and_log_density_share_one_force_field_call():
    calls = []

    def counted(y):
        calls.append(len(y))
        return _harmonic(y)

    ff = BoltzmannExpert(counted, KT, VP, (D,), length_scale=S)
    x, t = torch.zeros(3, D, dtype=F64), torch.full((3,), T)
    ff.score(x, t)
    ff.log_density(x, t)
    assert calls == [3]
    x += 0.1  # in place: a new point, evaluated again
    assert torch.allclose(ff.log_density(x, t), torch.as_tensor(-_harmonic(x.numpy() * S)[0] / KT))
    ff.log_density(x.clone(), t)  # another tensor
    assert calls == [3, 3, 3]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="kT must be finite and > 0"):
        BoltzmannExpert(_harmonic, 0.0, VP, (D,))
    with pytest.raises(ValueError, match="length_scale"):
        BoltzmannExpert(_harmonic, KT, VP, (D,), length_scale=-1.0)
    ff = _ff()
    with pytest.raises(ValueError, match=r"t = 0.5 > max_t = 0.01"):
        ff.score(torch.zeros(2, D), torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="expects x of shape"):
        ff.log_density(torch.zeros(2, D + 1), torch.full((2,), T))
    bad = BoltzmannExpert(lambda y: (np.zeros(1), np.zeros_like(y)), KT, VP, (D,))
    with pytest.raises(ValueError, match="returned shapes"):
        bad.log_density(torch.zeros(2, D), torch.full((2,), T))


@pytest.mark.parametrize("seed", [0, 1])
def test_tempering_from_a_model_to_the_force_field(seed):
    q = GaussianMixtureExpert([1.0], torch.zeros(1, D, dtype=F64), [0.5], VP)
    tt = torch.tensor(T, dtype=F64)
    vt = float(VP.alpha(tt)) ** 2 * 0.5 + float(VP.sigma2(tt))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(1000, D, generator=g, dtype=F64) * math.sqrt(vt / 2)  # exact q^2
    r = fkc.temper(_ff(), x0, start=fkc.anneal(q, 2.0), t=T, n_steps=30, schedule="linear",
                   mcmc_steps=2, generator=g, progress=False)
    var_p = KT / (K * S ** 2)
    exact = D / 2 * math.log(2 * math.pi * var_p) - gaussian_power_log_z(vt, 2.0, D)
    assert abs(r.log_z - exact) < 0.15, (r.log_z, exact)
    assert float((r.samples.mean(0) - torch.as_tensor(M / S)).abs().max()) < 0.1
    assert abs(float(r.samples.var(0).mean()) / var_p - 1) < 0.08
