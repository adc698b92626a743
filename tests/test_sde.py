"""Noise processes: schedules are self-consistent, CoM-free spaces count free dimensions."""

import math

import pytest
import torch

from fkc.sde import VESDE, VPSDE, remove_com

PROCESSES = [VPSDE(), VPSDE(schedule="cosine"), VESDE(sigma_min=0.01, sigma_max=10.0)]


@pytest.mark.parametrize("proc", PROCESSES, ids=["vp-linear", "vp-cosine", "ve"])
def test_g2_makes_marginal_variance_consistent(proc):
    # dV/dt = 2 (dlog alpha/dt) V + g^2 for V = Var(x_t | x_0) = sigma^2; integrate with RK4.
    ts = torch.linspace(0.0, 0.99, 2001, dtype=torch.float64)
    V = proc.sigma2(ts[:1])[0]
    rhs = lambda t, v: 2 * proc.dlog_alpha(t) * v + proc.g2(t)  # noqa: E731
    for t0, t1 in zip(ts[:-1], ts[1:], strict=False):
        h = t1 - t0
        k1 = rhs(t0, V)
        k2 = rhs(t0 + h / 2, V + h / 2 * k1)
        k3 = rhs(t0 + h / 2, V + h / 2 * k2)
        k4 = rhs(t1, V + h * k3)
        V = V + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert float(V) == pytest.approx(float(proc.sigma2(ts[-1])), rel=1e-6)


@pytest.mark.parametrize("proc", PROCESSES[:2], ids=["vp-linear", "vp-cosine"])
def test_vp_schedule(proc):
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(proc.g2(t), proc.beta(t))
    torch.testing.assert_close(proc.alpha(t) ** 2 + proc.sigma2(t), torch.ones_like(t))
    assert float(proc.alpha(torch.tensor(0.0))) == pytest.approx(1.0)
    assert float(proc.alpha(torch.tensor(1.0))) < 0.011
    # d log alpha / dt by central differences
    h = 1e-6
    tt = torch.tensor([0.3, 0.7], dtype=torch.float64)
    fd = (proc.log_alpha(tt + h) - proc.log_alpha(tt - h)) / (2 * h)
    torch.testing.assert_close(proc.dlog_alpha(tt), fd, rtol=1e-6, atol=1e-8)


def test_linear_vp_closed_form():
    p = VPSDE(beta_min=0.1, beta_max=20.0)
    t = torch.tensor(0.5, dtype=torch.float64)
    assert float(p.beta(t)) == pytest.approx(10.05)
    assert float(p.log_alpha(t)) == pytest.approx(-0.5 * (0.05 + 0.25 * 19.9 / 2 * 1.0))


def test_ve_schedule():
    p = VESDE(sigma_min=0.01, sigma_max=50.0)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(p.sigma(t), torch.tensor([0.01, math.sqrt(0.01 * 50), 50.0],
                                                         dtype=torch.float64))
    x = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(p.f(x, t[:1].expand(4)), torch.zeros_like(x))
    assert p.prior_std == 50.0


def test_com_free_process():
    p = VPSDE(com_free=True)
    g = torch.Generator().manual_seed(0)
    x = p.sample_prior(20000, (5, 3), g, dtype=torch.float64, precision=4.0)
    assert x.mean(dim=1).abs().max() < 1e-12
    # free-dimension variance: E|x|^2 = n_free * prior_std^2 / precision = 12 / 4
    assert float(x.flatten(1).square().sum(-1).mean()) == pytest.approx(3.0, rel=0.02)
    t = torch.full((3,), 0.4, dtype=torch.float64)
    assert torch.allclose(p.div_f(t, (5, 3)), 12 * p.dlog_alpha(t))
    # prior log-prob normalises on the 12-dimensional subspace: compare with a direct formula
    xx = remove_com(torch.randn(3, 5, 3, dtype=torch.float64))
    lp = p.prior_log_prob(xx, 2.0)
    ref = -xx.flatten(1).square().sum(-1) - 6 * math.log(2 * math.pi * 0.5)
    torch.testing.assert_close(lp, ref)


def test_marginal_sampling_and_log_prob():
    p = VPSDE()
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((50000, 1), 2.0, dtype=torch.float64)
    t = torch.full((50000,), 0.3, dtype=torch.float64)
    xt, eps = p.marginal(x0, t, g)
    assert float(xt.mean()) == pytest.approx(2 * float(p.alpha(t[0])), abs=0.01)
    assert float(xt.var()) == pytest.approx(float(p.sigma2(t[0])), rel=0.02)
    lp = p.marginal_log_prob(xt[:3], x0[:3], t[:3])
    ref = torch.distributions.Normal(2 * p.alpha(t[:3]), p.sigma(t[:3])).log_prob(xt[:3, 0])
    torch.testing.assert_close(lp, ref)


def test_dtype_follows_input():
    p = VPSDE()
    t = torch.tensor([0.5], dtype=torch.float32)
    assert p.g2(t).dtype == torch.float32
    assert p.sigma(t).dtype == torch.float32


@pytest.mark.parametrize(
    "ctor, match",
    [
        (lambda: VPSDE(beta_min=5.0, beta_max=1.0), "beta_min=5.0"),
        (lambda: VPSDE(beta_min=-1.0), "beta_min=-1.0"),
        (lambda: VPSDE(schedule="quadratic"), "quadratic"),
        (lambda: VPSDE(schedule="cosine", beta_max=10.0), "beta_max=10.0"),
        (lambda: VESDE(sigma_min=2.0, sigma_max=1.0), "sigma_min=2.0"),
        (lambda: VESDE(sigma_max=float("inf")), "finite"),
    ],
)
def test_bad_parameters(ctor, match):
    with pytest.raises(ValueError, match=match):
        ctor()
