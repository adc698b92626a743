"""Gaussian-mixture experts: exact scores and log densities of the diffused mixture."""

import math

import pytest
import torch

from fkc.experts import GaussianMixtureExpert
from fkc.experts.exact import grid_density
from fkc.sde import VESDE, VPSDE, remove_com


def _autograd_score(expert, x, t):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(expert.log_density(x, t).sum(), x)
    return g


@pytest.mark.parametrize("proc", [VPSDE(), VESDE(sigma_min=0.05, sigma_max=20.0)], ids=["vp", "ve"])
@pytest.mark.parametrize("diag", [False, True])
def test_score_is_gradient_of_log_density(proc, diag):
    g = torch.Generator().manual_seed(0)
    k, d = 3, 2
    var = torch.rand(k, d, generator=g) + 0.1 if diag else torch.rand(k, generator=g) + 0.1
    e = GaussianMixtureExpert(torch.tensor([0.2, 0.5, 0.3]), torch.randn(k, d, generator=g) * 2,
                              var, proc)
    x = torch.randn(64, d, generator=g, dtype=torch.float64) * 2
    for tv in (0.0, 0.05, 0.5, 0.99):
        t = torch.full((64,), tv, dtype=torch.float64)
        torch.testing.assert_close(e.score(x, t), _autograd_score(e, x, t), rtol=1e-9, atol=1e-9)


def test_com_free_mixture_score_and_normalisation():
    proc = VPSDE(com_free=True)
    g = torch.Generator().manual_seed(1)
    means = remove_com(torch.randn(2, 4, 3, generator=g, dtype=torch.float64))
    e = GaussianMixtureExpert([0.4, 0.6], means, [0.3, 0.5], proc)
    x = remove_com(torch.randn(16, 4, 3, generator=g, dtype=torch.float64))
    t = torch.full((16,), 0.2, dtype=torch.float64)
    s = e.score(x, t)
    assert s.sum(dim=1).abs().max() < 1e-12  # CoM-free
    torch.testing.assert_close(s, remove_com(_autograd_score(e, x, t)), rtol=1e-9, atol=1e-9)
    # one component at t=0 is a standard Gaussian on the 9-dim subspace: log N(0) = -9/2 log(2 pi v)
    e1 = GaussianMixtureExpert([1.0], torch.zeros(1, 4, 3), [0.5], proc)
    zero = torch.zeros(1, 4, 3, dtype=torch.float64)
    lp = e1.log_density(zero, torch.zeros(1, dtype=torch.float64))
    assert float(lp) == pytest.approx(-4.5 * math.log(2 * math.pi * 0.5))


def test_log_density_is_normalised_2d():
    e = GaussianMixtureExpert([0.3, 0.7], [[-1.0, 0.0], [1.5, 1.0]], [[0.2, 0.5], [0.4, 0.1]],
                              VPSDE())
    for t in (0.0, 0.3):
        ref = grid_density(e, -8, 8, n=801, t=t)
        assert ref.log_z == pytest.approx(0.0, abs=1e-6)


def test_exact_samples_match_moments():
    proc = VPSDE()
    e = GaussianMixtureExpert([0.25, 0.75], [[-2.0], [2.0]], [0.5, 0.5], proc)
    g = torch.Generator().manual_seed(2)
    for t in (0.0, 0.4):
        x = e.sample(200_000, t=t, generator=g)
        a = float(proc.alpha(torch.tensor(t, dtype=torch.float64)))
        s2 = float(proc.sigma2(torch.tensor(t, dtype=torch.float64)))
        mean = a * (0.25 * -2 + 0.75 * 2)
        var = a**2 * (0.5 + 4.0) + s2 - mean**2
        assert float(x.mean()) == pytest.approx(mean, abs=0.01)
        assert float(x.var()) == pytest.approx(var, rel=0.01)


def test_dtype_follows_input():
    e = GaussianMixtureExpert([1.0], [[0.0, 0.0]], [1.0], VPSDE())
    x = torch.randn(5, 2)
    assert e.score(x, torch.full((5,), 0.5)).dtype == torch.float32
    assert e.log_density(x, torch.full((5,), 0.5)).dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=[1.0, 1.0], means=[[0.0]], variances=[1.0]), r"means must have shape \(2"),
        (dict(weights=[1.0], means=[[0.0]], variances=[-1.0]), "positive"),
        (dict(weights=[-1.0], means=[[0.0]], variances=[1.0]), "positive"),
        (dict(weights=[1.0], means=[[0.0, 1.0]], variances=[[1.0, 1.0, 1.0]]), "variances must have shape"),
        (dict(weights=[1.0], means=[[float("nan")]], variances=[1.0]), "finite"),
    ],
)
def test_bad_mixtures(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureExpert(process=VPSDE(), **kwargs)


def test_com_free_requires_com_free_means():
    with pytest.raises(ValueError, match="CoM-free"):
        GaussianMixtureExpert([1.0], torch.ones(1, 3, 3), [1.0], VPSDE(com_free=True))


def test_wrong_input_shape_is_named():
    e = GaussianMixtureExpert([1.0], [[0.0, 0.0]], [1.0], VPSDE())
    with pytest.raises(ValueError, match=r"expects x of shape \(n, 2\), got \(5, 3\)"):
        e.score(torch.zeros(5, 3), torch.zeros(5))
