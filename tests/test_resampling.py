"""Tests of fkc.smc.resampling and fkc.smc.weights: unbiasedness, variance ordering, numba/torch
agreement bit for bit, edge cases and errors."""

from __future__ import annotations

import math

import pytest
import torch

from fkc.smc import (
    RESAMPLERS,
    Weights,
    ess,
    get_resampler,
    multinomial,
    normalize,
    residual,
    stratified,
    systematic,
)
from fkc.smc.testing import offspring_counts, unbiasedness_z

SCHEMES = sorted(RESAMPLERS)
BACKENDS = ["numba", "torch"]
INF = math.inf

# Fixed, non-uniform weights (n = 10): n W = [1.13, 0.84, 0.34, 2.28, 0.001, 0, 1.39, 0.09, 0.51,
# 3.41]; includes a zero weight and a tiny one.
LOG_W10 = torch.tensor(
    [0.0, -0.3, -1.2, 0.7, -7.0, -INF, 0.2, -2.5, -0.8, 1.1], dtype=torch.float64
)
N_DRAWS = 20_000


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clamped_multinomial(log_weights, generator, **kwargs):
    """A deliberately biased scheme: the 'silent clamp' anti-pattern (log-weights floored at
    max - 5 before multinomial resampling) inflates small weights."""
    finite_max = log_weights[torch.isfinite(log_weights)].max()
    return multinomial(log_weights.clamp(min=float(finite_max) - 5.0), generator)


@pytest.fixture(scope="module")
def counts():
    """Offspring counts ``(N_DRAWS, 10)`` of every scheme (and the biased one), seed 0."""
    schemes = {name: RESAMPLERS[name] for name in SCHEMES}
    schemes["clamped_multinomial"] = clamped_multinomial
    return {name: offspring_counts(f, LOG_W10, N_DRAWS, gen(0)) for name, f in schemes.items()}


# -- statistics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unbiased_offspring_counts(counts, scheme):
    # E[N_i] = n W_i. With 20k draws, max_i |z_i| over 10 particles observed over seeds 0..9:
    # multinomial 0.69-2.70, stratified 0.99-2.16, systematic 0.59-2.92, residual 1.17-3.09.
    # Under H0 P(|z| > 5) ~ 6e-7 per particle, so 5 is a safe bound with a large margin.
    c = counts[scheme]
    assert (c.sum(1) == 10).all()
    assert (c[:, 5] == 0).all()  # the zero-weight particle never reproduces
    z = unbiasedness_z(c, LOG_W10)
    assert z.abs().max() < 5.0, z


def test_unbiasedness_check_detects_a_biased_scheme(counts):
    # The clamped scheme gave max |z| = 21.0-22.2 over seeds 0..9 (the tiny weight is inflated ~7x).
    z = unbiasedness_z(counts["clamped_multinomial"], LOG_W10)
    assert z.abs().max() > 10.0


def test_offspring_variance_ordering(counts):
    # Sum over particles of Var(N_i). Theory for multinomial: sum n W_i (1 - W_i) = 7.89.
    # Observed over seeds 0..9: multinomial 7.86-7.95, residual 2.49-2.51, stratified 1.77-1.79,
    # systematic 1.49-1.50; the gaps are > 20 sampling standard deviations.
    var = {name: float(c.double().var(0).sum()) for name, c in counts.items()}
    w = torch.softmax(LOG_W10, 0)
    assert var["multinomial"] == pytest.approx(float((10 * w * (1 - w)).sum()), rel=0.03)
    assert var["systematic"] < var["multinomial"]
    assert var["stratified"] < var["multinomial"]
    assert var["residual"] <= var["multinomial"]
    assert var["systematic"] < 0.25 * var["multinomial"]


def test_systematic_offspring_is_floor_or_ceil(counts):
    expected = 10 * torch.softmax(LOG_W10, 0)
    c = counts["systematic"].double()
    assert (c >= expected.floor()).all() and (c <= expected.ceil()).all()


def test_residual_deterministic_part(counts):
    floors = (10 * torch.softmax(LOG_W10, 0)).floor()
    assert (counts["residual"].double() >= floors).all()


# -- numba and torch agree bit for bit ------------------------------------------------------------


def random_log_weights(g: torch.Generator, n: int, kind: int) -> torch.Tensor:
    if kind == 0:  # moderate spread
        lw = torch.randn(n, generator=g, dtype=torch.float64)
    elif kind == 1:  # extreme dynamic range: most weights underflow to zero
        lw = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * 700
    elif kind == 2:  # large spread, many particles matter
        lw = 30 * torch.randn(n, generator=g, dtype=torch.float64) - 300
    else:  # nearly equal weights (ties of the cumulative sums with the grid)
        lw = torch.zeros(n, dtype=torch.float64) + 1e-13 * torch.randn(n, generator=g)
    dead = torch.rand(n, generator=g) < float(torch.rand(1, generator=g)) * 0.9
    lw[dead] = -INF
    if bool(torch.rand(1, generator=g) < 0.2):
        lw[torch.rand(n, generator=g) < 0.1] = math.nan
    if not torch.isfinite(lw).any():
        lw[int(torch.randint(n, (1,), generator=g))] = 0.0
    return lw


@pytest.mark.parametrize("scheme", SCHEMES)
def test_backends_identical(scheme):
    """Same generator state -> identical ancestors and identical generator state afterwards."""
    f = RESAMPLERS[scheme]
    g = gen(1234)
    for trial in range(250):
        n = [1, 2, 3, 7, 10, 100, 1000, 4000][trial % 8]
        lw = random_log_weights(g, n, kind=trial % 4)
        n_out = [n, 1, max(1, n // 3), 2 * n + 1][(trial // 8) % 4]
        seed = int(torch.randint(2**62, (1,), generator=g))
        g_numba, g_torch = gen(seed), gen(seed)
        a_numba = f(lw, g_numba, n_out=n_out, backend="numba")
        a_torch = f(lw, g_torch, n_out=n_out, backend="torch")
        assert torch.equal(a_numba, a_torch), (scheme, trial, n, n_out)
        assert torch.equal(g_numba.get_state(), g_torch.get_state())
        assert a_numba.dtype == torch.int64 and a_numba.shape == (n_out,)
        alive = torch.isfinite(lw)
        assert alive[a_numba].all(), "a zero-weight particle was selected"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_absorbed_weights_and_edges(scheme, backend):
    f = RESAMPLERS[scheme]
    # exp(-40) is absorbed by the cumulative sum (1 + 4e-18 == 1): never selected, both backends.
    lw = torch.tensor([0.0, -40.0, 0.0, -INF])
    for seed in range(20):
        a = f(lw, gen(seed), n_out=50, backend=backend)
        assert set(a.tolist()) <= {0, 2}
    # A single particle with positive weight takes everything.
    lw = torch.full((7,), -INF)
    lw[4] = -3.0
    assert f(lw, gen(0), backend=backend).tolist() == [4] * 7
    assert f(torch.zeros(1), gen(0), backend=backend).tolist() == [0]
    assert f(torch.zeros(5), gen(0), n_out=0, backend=backend).shape == (0,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", ["multinomial", "stratified", "systematic"])
def test_sorted_output(scheme, backend):
    lw = torch.randn(500, generator=gen(3))
    a = RESAMPLERS[scheme](lw, gen(4), n_out=800, backend=backend)
    assert (a[1:] >= a[:-1]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_residual_order(backend):
    lw = torch.randn(200, generator=gen(5), dtype=torch.float64)
    a = residual(lw, gen(6), backend=backend)
    floors = (200 * torch.softmax(lw, 0)).floor().long()
    n_det = int(floors.sum())
    det = torch.repeat_interleave(torch.arange(200), floors)
    assert torch.equal(a[:n_det], det)
    assert (a[n_det + 1 :] >= a[n_det:-1]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_systematic_uniform_weights_is_a_permutation_free_copy(backend):
    assert systematic(torch.zeros(1000), gen(0), backend=backend).tolist() == list(range(1000))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_any_float_dtype_is_computed_in_float64(scheme, dtype):
    lw = torch.randn(300, generator=gen(7)).to(dtype)
    f = RESAMPLERS[scheme]
    assert torch.equal(f(lw, gen(8)), f(lw.double(), gen(8)))


def test_nan_is_zero_weight():
    lw = torch.tensor([math.nan, 0.0, math.nan, -1.0])
    for scheme in SCHEMES:
        for seed in range(10):
            assert set(RESAMPLERS[scheme](lw, gen(seed)).tolist()) <= {1, 3}


def test_same_seed_same_ancestors_and_default_generator():
    lw = torch.randn(100, generator=gen(9))
    for scheme in SCHEMES:
        f = RESAMPLERS[scheme]
        assert torch.equal(f(lw, gen(10)), f(lw, gen(10)))
        torch.manual_seed(11)
        a = f(lw)
        torch.manual_seed(11)
        assert torch.equal(a, f(lw))


def test_multinomial_matches_categorical_law():
    # Pooled over 4000 draws of n_out = 50 (200k samples), frequencies vs W: Pearson chi-square
    # with 8 dof (9 live particles). Observed over seeds 0..9: 3.8-15.0; the upper 1e-4 quantile
    # of chi2(8) is 31.8.
    c = offspring_counts(multinomial, LOG_W10, 4000, gen(12), n_out=50).sum(0).double()
    expected = c.sum() * torch.softmax(LOG_W10, 0)
    live = expected > 0
    chi2 = float((((c - expected) ** 2)[live] / expected[live]).sum())
    assert chi2 < 31.8


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_errors(scheme):
    f = RESAMPLERS[scheme]
    with pytest.raises(ValueError, match="all 3 log-weights are -inf or NaN"):
        f(torch.full((3,), -INF), gen(0))
    with pytest.raises(ValueError, match="-inf or NaN"):
        f(torch.tensor([math.nan, -INF]), gen(0))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        f(torch.zeros(2, 3), gen(0))
    with pytest.raises(ValueError, match=r"shape \(\)"):
        f(torch.tensor(0.0), gen(0))
    with pytest.raises(ValueError, match="empty"):
        f(torch.zeros(0), gen(0))
    with pytest.raises(ValueError, match=r"\+inf"):
        f(torch.tensor([0.0, INF]), gen(0))
    with pytest.raises(ValueError, match="floating dtype"):
        f(torch.zeros(3, dtype=torch.int64), gen(0))
    with pytest.raises(ValueError, match="n_out"):
        f(torch.zeros(3), gen(0), n_out=-1)
    with pytest.raises(ValueError, match="backend"):
        f(torch.zeros(3), gen(0), backend="cuda")
    with pytest.raises(ValueError, match="CPU"):
        f(torch.zeros(3, device="meta"), None, backend="numba")


def test_get_resampler():
    assert get_resampler("systematic") is systematic
    assert get_resampler("stratified") is stratified
    with pytest.raises(ValueError, match="multinomial.*residual.*stratified.*systematic"):
        get_resampler("sytematic")


# -- weights --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_weights_against_naive_formulas(backend):
    lw = torch.randn(1000, generator=gen(13), dtype=torch.float64) * 5 + 300
    lw[::7] = -INF
    lw[::11] = math.nan
    clean = torch.where(torch.isnan(lw), -INF, lw)
    ref_lse = torch.logsumexp(clean, 0)
    w = torch.exp(clean - ref_lse)
    log_W, log_mean = normalize(lw, backend=backend)
    assert log_W.dtype == torch.float64
    assert torch.equal(torch.isneginf(log_W), torch.isneginf(clean))
    assert torch.allclose(torch.exp(log_W), w, rtol=1e-12, atol=0)
    assert float(torch.logsumexp(log_W, 0)) == pytest.approx(0.0, abs=1e-12)
    assert log_mean == pytest.approx(float(ref_lse) - math.log(1000), rel=1e-14)
    assert ess(lw, backend=backend) == pytest.approx(float(1 / (w**2).sum()), rel=1e-12)
    weights = Weights(lw, backend=backend)
    assert weights.n_dead == int((~torch.isfinite(clean)).sum())
    assert torch.allclose(weights.W, w, rtol=1e-12, atol=0)
    assert weights.log_W is weights.log_W  # cached
    assert weights.log_mean == pytest.approx(log_mean, rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_edge_cases(backend):
    assert ess(torch.zeros(10), backend=backend) == pytest.approx(10.0)
    assert ess(torch.tensor([0.0, -INF, -INF]), backend=backend) == pytest.approx(1.0)
    # descending and ascending orders exercise the online rescaling of the numba kernel
    for lw in (torch.arange(50.0), torch.arange(50.0).flip(0)):
        assert ess(lw, backend=backend) == pytest.approx(ess(lw, backend="torch"), rel=1e-13)
    dead = Weights(torch.full((4,), math.nan), backend=backend)
    assert dead.n_dead == 4 and dead.ess == 0.0 and dead.log_mean == -INF
    with pytest.raises(ValueError, match="all 4 log-weights are -inf or NaN"):
        _ = dead.log_W
    with pytest.raises(ValueError, match="all 2 log-weights"):
        normalize(torch.full((2,), -INF), backend=backend)
    with pytest.raises(ValueError, match=r"\+inf"):
        ess(torch.tensor([0.0, INF]), backend=backend)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        Weights(torch.zeros(2, 2))
