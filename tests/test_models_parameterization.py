"""Parameterisation conversion (eps / denoiser / score) and EDM scaling against closed forms."""

import math

import pytest
import torch

from fkc.models import EGNNConfig, build_model, edm_scalings, to_score
from fkc.testing import random_molecular_graph

F64 = torch.float64


class VP:
    def alpha(self, t):
        return torch.cos(torch.pi * t / 2)

    def sigma(self, t):
        return torch.sin(torch.pi * t / 2)




def test_to_score_closed_forms():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(4, 5, 3, generator=gen, dtype=F64)
    x = torch.randn(4, 5, 3, generator=gen, dtype=F64)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=F64)
    p = VP()
    a, s = p.alpha(t)[:, None, None], p.sigma(t)[:, None, None]
    torch.testing.assert_close(to_score(raw, x, t, p, "eps"), -raw / s)
    torch.testing.assert_close(to_score(raw, x, t, p, "denoiser"), (a * raw - x) / s**2)
    assert to_score(raw, x, t, p, "score") is raw
    # flat layout: per-atom times
    torch.testing.assert_close(
        to_score(raw.reshape(-1, 3), x.reshape(-1, 3), t.repeat_interleave(5), p, "eps"),
        (-raw / s).reshape(-1, 3),
    )
    with pytest.raises(ValueError, match="parameterization must be one of"):
        to_score(raw, x, t, p, "x0")
    with pytest.raises(ValueError, match=r"t must have shape \(4,\)"):
        to_score(raw, x, t[:3], p, "eps")


def test_gaussian_data_all_parameterisations_agree():
    """x_0 ~ N(0, sd^2 I): x_t ~ N(0, s^2 I), s^2 = a^2 sd^2 + sigma^2; the exact predictors are
    score = -x/s^2, eps = sigma x/s^2, D = a sd^2 x/s^2; all convert to the same score."""
    sd = 1.7
    x = torch.randn(3, 4, 3, dtype=F64)
    t = torch.tensor([0.05, 0.5, 0.95], dtype=F64)
    p = VP()
    a, s = p.alpha(t)[:, None, None], p.sigma(t)[:, None, None]
    s2 = a**2 * sd**2 + s**2
    exact = -x / s2
    torch.testing.assert_close(to_score(s * x / s2, x, t, p, "eps"), exact)
    torch.testing.assert_close(to_score(a * sd**2 * x / s2, x, t, p, "denoiser"), exact)
    # EDM: with F = 0 the denoiser pre-conditioning is exactly the Gaussian-optimal denoiser
    _, c_skip, _ = edm_scalings(p.alpha(t), p.sigma(t), sd, "denoiser")
    torch.testing.assert_close(to_score(c_skip[:, None, None] * x, x, t, p, "denoiser"), exact)


def test_edm_scalings_reduce_to_karras_at_alpha_one():
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=F64)
    one = torch.ones_like(sigma)
    sd = 0.5
    c_in, c_skip, c_out = edm_scalings(one, sigma, sd, "denoiser")
    torch.testing.assert_close(c_in, 1 / torch.sqrt(sigma**2 + sd**2))
    torch.testing.assert_close(c_skip, sd**2 / (sigma**2 + sd**2))
    torch.testing.assert_close(c_out, sigma * sd / torch.sqrt(sigma**2 + sd**2))
    c_in_e, c_skip_e, c_out_e = edm_scalings(one, sigma, sd, "eps")
    assert torch.equal(c_in_e, c_in) and (c_skip_e == 0).all() and (c_out_e == 1).all()
    _, c_skip_s, c_out_s = edm_scalings(one, sigma, sd, "score")
    assert (c_skip_s == 0).all()
    torch.testing.assert_close(c_out_s, 1 / torch.sqrt(sigma**2 + sd**2))
    # variance preserving: c_in x_t has unit variance for x_0 of std sd
    a, s = torch.tensor(0.6, dtype=F64), torch.tensor(0.8, dtype=F64)
    c_in, _, _ = edm_scalings(a, s, sd, "eps")
    assert math.isclose(float(c_in**2 * (a**2 * sd**2 + s**2)), 1.0, rel_tol=1e-14)


@pytest.mark.parametrize("parameterization", ["eps", "denoiser", "score"])
def test_model_output_scaling_and_score(parameterization):
    """With the vector head zeroed (F = 0) the raw output is c_skip * x; model.score applies
    to_score to the raw output."""
    torch.manual_seed(0)
    sd = 1.3
    net = build_model(
        EGNNConfig(
            n_atom_types=2, hidden=8, n_layers=1, sigma_data=sd, parameterization=parameterization
        ),
        VP(),
        dtype=F64,
    ).eval()
    g = random_molecular_graph(4, n_atom_types=2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 4, 3, dtype=F64)
    x = x - x.mean(1, keepdim=True)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=F64)
    raw = net(x, t, g)
    torch.testing.assert_close(
        net.score(x, t, g), to_score(raw, x, t, net.process, parameterization)
    )
    with torch.no_grad():
        net.layers[0].phi_x[-1].weight.zero_()
    _, c_skip, _ = edm_scalings(VP().alpha(t), VP().sigma(t), sd, parameterization)
    torch.testing.assert_close(net(x, t, g), c_skip[:, None, None] * x, atol=1e-15, rtol=0)


def test_log_sigma_time_input_rejects_zero_sigma():
    net = build_model(
        EGNNConfig(n_atom_types=2, hidden=8, n_layers=1, time_input="log_sigma"), VP()
    )
    g = random_molecular_graph(3, n_atom_types=2)
    net(torch.randn(2, 3, 3), torch.tensor([0.3, 0.6]), g)
    with pytest.raises(ValueError, match=r"sigma\(t\) > 0, got sigma = 0 at t = \[0.0\]"):
        net(torch.randn(2, 3, 3), torch.tensor([0.0, 0.6]), g)
