"""Composition algebra and the FKC weight formula (checked against the Fokker-Planck equation)."""

import math

import pytest
import torch

import fkc
from fkc.compose import coefficients, log_weight_rate, noise_level, score_terms
from fkc.experts import GaussianMixtureExpert
from fkc.sde import VESDE, VPSDE


def _gmm(proc=None, shift=0.0, d=1):
    proc = proc or VPSDE()
    means = torch.tensor([[-1.5 + shift] * d, [1.0 + shift] * d])
    return GaussianMixtureExpert([0.4, 0.6], means, [0.3, 0.5], proc)


def test_constructors_and_flattening():
    e1, e2, e3 = _gmm(), _gmm(shift=1.0), _gmm(shift=-1.0)
    assert [b for _, b in fkc.anneal(e1, 2.0).terms] == [2.0]
    assert [b for _, b in fkc.product(e1, e2, e3).terms] == [1.0, 1.0, 1.0]
    assert [b for _, b in fkc.geometric(e1, e2, 0.25).terms] == [0.75, 0.25]
    assert [b for _, b in fkc.cfg(e1, e2, 4.0).terms] == [-3.0, 4.0]
    nested = fkc.anneal(fkc.product(e1, e2), 3.0)
    assert [(e, b) for e, b in nested.terms] == [(e1, 3.0), (e2, 3.0)]
    assert nested.total == 6.0
    x = torch.randn(7, 1, dtype=torch.float64)
    t = torch.full((7,), 0.3, dtype=torch.float64)
    torch.testing.assert_close(nested.score(x, t), 3 * e1.score(x, t) + 3 * e2.score(x, t))
    torch.testing.assert_close(nested.log_density(x, t),
                               3 * e1.log_density(x, t) + 3 * e2.log_density(x, t))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda e: fkc.anneal(e, 0.0), "beta must be finite and > 0, got 0.0"),
        (lambda e: fkc.anneal(e, -1.0), "got -1.0"),
        (lambda e: fkc.anneal(e, float("nan")), "got nan"),
        (lambda e: fkc.compose([(e, 1.0), (e, -2.0)]), "sum of exponents must be > 0, got -1"),
        (lambda e: fkc.compose([(e, float("inf"))]), "finite"),
        (lambda e: fkc.product(e, _gmm(VESDE())), "share one noise process"),
        (lambda e: fkc.product(e, _gmm(d=2)), r"share one event shape: expert 0 has \(1,\), expert 1 has \(2,\)"),
        (lambda e: fkc.compose([]), "at least one expert"),
        (lambda e: fkc.compose([(object(), 1.0)]), "expected an Expert"),
        (lambda e: fkc.geometric(e, e, float("nan")), "gamma must be finite"),
        (lambda e: fkc.cfg(e, e, float("inf")), "guidance must be finite"),
    ],
)
def test_bad_compositions(build, match):
    with pytest.raises(ValueError, match=match):
        build(_gmm())


def test_noise_levels():
    c = fkc.anneal(_gmm(), 4.0)
    assert noise_level("target", c) == 1.0
    assert noise_level("tempered", c) == 0.25
    assert noise_level(0.0, c) == 0.0
    for bad in ("loud", -0.1, float("nan")):
        with pytest.raises(ValueError, match="noise"):
            noise_level(bad, c)


@pytest.mark.parametrize("proc", [VPSDE(), VESDE(sigma_min=0.05, sigma_max=10.0)], ids=["vp", "ve"])
@pytest.mark.parametrize("a", [1.0, 0.3, 0.0])
def test_weight_rate_solves_the_feynman_kac_pde(proc, a):
    """h = d_tau log pi - [-div v - v.S + a g^2/2 (div S + |S|^2)] with v the reverse drift,
    computed independently with autograd and finite differences in t (1-D, float64)."""
    e1, e2 = _gmm(proc), _gmm(proc, shift=0.7)
    comp = fkc.compose([(e1, 2.0), (e2, -0.5)])
    x = torch.linspace(-3, 3, 41, dtype=torch.float64).reshape(-1, 1)
    for tv in (0.2, 0.6):
        t = torch.full((41,), tv, dtype=torch.float64)
        h = 1e-5
        dlogpi_dtau = -(comp.log_density(x, t + h) - comp.log_density(x, t - h)) / (2 * h)
        xr = x.clone().requires_grad_(True)
        S = comp.score(xr, t)
        (divS,) = torch.autograd.grad(S.sum(), xr)
        S = S.detach()
        g2 = proc.g2(t).reshape(-1, 1)
        v = -proc.f(x, t) + 0.5 * (1 + a) * g2 * S
        div_v = -proc.dlog_alpha(t).reshape(-1, 1) + 0.5 * (1 + a) * g2 * divS
        gen = (-div_v - v * S + 0.5 * a * g2 * (divS + S**2)).squeeze(-1)
        expected = dlogpi_dtau - gen
        (c,) = coefficients(comp, t[:1])
        got = log_weight_rate(comp, c, score_terms(comp, x, t))
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_weight_rate_matches_closed_form_for_annealed_gaussian():
    # q = N(0, 1) is invariant under the VP process; for pi = q^beta the rate is
    # (beta - 1) beta(t)/2 (beta |x|^2 - d), whose mean under pi_t = N(0, 1/beta) is 0.
    proc = VPSDE()
    e = GaussianMixtureExpert([1.0], [[0.0, 0.0]], [1.0], proc)
    comp = fkc.anneal(e, 3.0)
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), 0.4, dtype=torch.float64)
    (c,) = coefficients(comp, t[:1])
    got = log_weight_rate(comp, c, score_terms(comp, x, t))
    bt = proc.beta(t)
    torch.testing.assert_close(got, 2.0 * bt / 2 * (3.0 * x.square().sum(-1) - 2))
    assert math.isclose(float(bt[0]), 0.1 + 0.4 * 19.9)
