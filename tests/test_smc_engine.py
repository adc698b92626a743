"""Tests of fkc.smc.engine: a bootstrap filter on a linear-Gaussian state-space model against the
Kalman filter (exact log-likelihood and filtered mean), determinism, diagnostics, dead particles,
errors, and the state helper ``take``."""

from __future__ import annotations

import math
import statistics
from collections import namedtuple
from dataclasses import dataclass

import pytest
import torch

from fkc.smc import SMC, AllParticlesDiedError, FeynmanKacModel, Weights, take

# AR(1) latent x_t = A x_{t-1} + SX eps_t, x_0 ~ N(0, S0^2); observations y_t = x_t + SY eta_t.
A, SX, SY, S0 = 0.9, 0.5, 1.0, 1.0


def simulate(n_obs: int, seed: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    x = S0 * torch.randn((), generator=g, dtype=torch.float64)
    ys = []
    for t in range(n_obs):
        if t > 0:
            x = A * x + SX * torch.randn((), generator=g, dtype=torch.float64)
        ys.append(float(x + SY * torch.randn((), generator=g, dtype=torch.float64)))
    return ys


def kalman(ys: list[float]) -> tuple[float, float, float]:
    """Exact ``log p(y_0..y_T)``, filtered mean and variance of ``x_T``."""
    m, p, loglik = 0.0, S0**2, 0.0
    for t, y in enumerate(ys):
        if t > 0:
            m, p = A * m, A * A * p + SX**2
        s = p + SY**2
        loglik += -0.5 * (math.log(2 * math.pi * s) + (y - m) ** 2 / s)
        k = p / s
        m, p = m + k * (y - m), (1 - k) * p
    return loglik, m, p


def log_normal(y: float, x: torch.Tensor, s: float) -> torch.Tensor:
    return -0.5 * ((y - x) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


class AR1Bootstrap(FeynmanKacModel):
    """Bootstrap filter: M = the AR(1) dynamics, G_k = p(y_k | x_k); Z_T = p(y_0..y_T)."""

    def __init__(self, ys: list[float]):
        self.ys = ys
        self.n_steps = len(ys) - 1

    def initial(self, n_particles, generator):
        x = S0 * torch.randn(n_particles, generator=generator, dtype=torch.float64)
        return x, log_normal(self.ys[0], x, SY)

    def step(self, k, state, generator):
        noise = torch.randn(state.shape[0], generator=generator, dtype=torch.float64)
        x = A * state + SX * noise
        return x, log_normal(self.ys[k + 1], x, SY)

    def describe_step(self, k):
        return f"t={k}"


def run(ys, seed, n=1000, **kwargs):
    return SMC(AR1Bootstrap(ys), n, generator=torch.Generator().manual_seed(seed), **kwargs).run()


def filtered_mean(result) -> float:
    return float((result.weights.W * result.state).sum())


# -- exactness against the Kalman filter ----------------------------------------------------------


@pytest.mark.parametrize(
    "n_obs, ess_threshold, tol_log_z",
    [
        (26, 1.0, 0.08),  # resample every step
        (26, 0.5, 0.08),  # adaptive
        (11, 1.0, 0.08),
        (11, 0.5, 0.08),
        (11, 0.0, 0.1),  # never: plain importance sampling, larger variance
    ],
)
def test_log_z_and_filtered_mean_match_kalman(n_obs, ess_threshold, tol_log_z):
    # 50 runs of n = 1000 particles. Per run sd(log_z - exact) ~ 0.07-0.13 (0.13-0.17 without
    # resampling). Over 10 disjoint batches of 50 seeds the batch means were
    #   26 obs, every / adaptive:  mean(log_z - exact) in [-0.040, 0.018]; mean(Z / Z_exact) in
    #                              [0.966, 1.026]; mean filtered-mean error in [-0.005, 0.003];
    #   11 obs, every / adaptive:  [-0.024, 0.010]; [0.981, 1.015]; [-0.003, 0.005];
    #   11 obs, never:             [-0.025, 0.030]; [0.984, 1.041]; [-0.004, 0.011].
    # The tolerances below are 2-3x those spreads (log Z has a small negative Jensen bias ~ -var/2;
    # Z itself is unbiased).
    ys = simulate(n_obs, seed=0)
    exact, m_exact, _ = kalman(ys)
    results = [run(ys, seed, ess_threshold=ess_threshold) for seed in range(100, 150)]
    errors = [r.log_z - exact for r in results]
    assert abs(statistics.mean(errors)) < tol_log_z
    assert abs(statistics.mean(math.exp(e) for e in errors) - 1.0) < 0.1
    assert abs(statistics.mean(filtered_mean(r) - m_exact for r in results)) < 0.025
    if ess_threshold == 0.0:
        assert not any(r.resampled.any() for r in results)
    if ess_threshold == 1.0:
        assert all(r.resampled[:-1].all() and not r.resampled[-1] for r in results)


def test_resampling_policies_agree():
    # Same data, 40 seeds each: every step (systematic, multinomial, residual), adaptive
    # (stratified), never. Over 10 disjoint batches of 40 seeds, max - min of the five means of
    # log_z - exact was 0.025-0.059; the bound 0.12 is 2x that and still catches a wrong
    # accumulation of log_z at resampling times (e.g. adding logsumexp instead of the log mean is
    # off by log n = 6.9 per resampling).
    ys = simulate(11, seed=1)
    exact, _, _ = kalman(ys)
    policies = {
        "every/systematic": dict(ess_threshold=1.0),
        "every/multinomial": dict(ess_threshold=1.0, resample="multinomial"),
        "every/residual": dict(ess_threshold=1.0, resample="residual"),
        "adaptive/stratified": dict(ess_threshold=0.5, resample="stratified"),
        "never": dict(ess_threshold=0.0),
    }
    means = {
        name: statistics.mean(run(ys, seed, **kw).log_z - exact for seed in range(40))
        for name, kw in policies.items()
    }
    assert max(means.values()) - min(means.values()) < 0.12, means


def test_constant_potentials_give_exact_log_z():
    class Constant(FeynmanKacModel):
        n_steps = 6

        def initial(self, n, generator):
            log_g0 = torch.full((n,), -0.7, dtype=torch.float64)
            return torch.randn(n, 2, generator=generator), log_g0

        def step(self, k, state, generator):
            return state + 1, torch.full((state.shape[0],), 0.1 * k, dtype=torch.float64)

    for threshold in (0.0, 0.5, 1.0):
        r = SMC(Constant(), 64, ess_threshold=threshold, generator=torch.Generator()).run()
        assert r.log_z == pytest.approx(-0.7 + 0.1 * sum(range(6)), abs=1e-12)


# -- bookkeeping ----------------------------------------------------------------------------------


def test_diagnostics_are_consistent():
    ys = simulate(16, seed=2)
    r = run(ys, seed=3, n=300, ess_threshold=0.5, final_resample=True)
    assert r.ess.shape == r.resampled.shape == r.n_unique.shape == (16,)
    assert r.n_dead.shape == r.log_z_increments.shape == (16,) and len(r.ancestors) == 16
    assert r.ess.dtype == r.log_z_increments.dtype == torch.float64
    assert r.n_unique.dtype == r.n_dead.dtype == torch.int64 and r.resampled.dtype == torch.bool
    assert float(r.log_z_increments.sum()) == pytest.approx(r.log_z, abs=1e-10)
    assert r.resampled[-1]  # final resampling
    assert torch.equal(r.log_weights, torch.zeros(300, dtype=torch.float64))
    assert 0 < int(r.resampled[:-1].sum()) < 15  # adaptive: some but not all steps
    for k in range(16):
        if r.resampled[k]:
            a = r.ancestors[k]
            assert a.shape == (300,) and a.dtype == torch.int64
            assert int(r.n_unique[k]) == torch.unique(a).numel() < 300
            if k < 15:  # the rule: resampled exactly when the ESS was below n / 2
                assert r.ess[k] < 150
        else:
            assert r.ancestors[k] is None and int(r.n_unique[k]) == 300
            assert k == 15 or r.ess[k] >= 150
    assert (r.ess >= 1).all() and (r.ess <= 300 + 1e-9).all()
    assert r.seed is None


def test_log_z_is_computed_before_the_final_resampling():
    ys = simulate(6, seed=4)
    a = run(ys, seed=5, n=200, final_resample=False)
    b = run(ys, seed=5, n=200, final_resample=True)
    assert a.log_z == b.log_z
    assert not a.resampled[-1] and b.resampled[-1]
    assert float(a.log_z_increments.sum()) == pytest.approx(a.log_z, abs=1e-10)


def test_never_resampling_log_z_is_the_importance_sampling_estimate():
    ys = simulate(6, seed=6)
    r = run(ys, seed=7, n=100, ess_threshold=0.0)
    lw = r.log_weights
    assert r.log_z == pytest.approx(float(torch.logsumexp(lw, 0)) - math.log(100), abs=1e-12)
    assert r.ess[-1] == pytest.approx(Weights(lw).ess, rel=1e-12)


def test_resample_when_restricts_resampling():
    ys = simulate(11, seed=8)
    r = run(ys, seed=9, n=200, ess_threshold=1.0, resample_when=lambda k: k % 3 == 0)
    assert r.resampled.tolist() == [k % 3 == 0 and k < 10 for k in range(11)]


def test_custom_resampler_callable():
    calls = []

    def every_other(log_weights, generator):
        calls.append(log_weights.shape)
        return torch.arange(log_weights.shape[0]).flip(0)

    r = run(simulate(5, seed=10), seed=11, n=50, ess_threshold=1.0, resample=every_other)
    assert len(calls) == 4 and r.resampled[:-1].all()

    def broken(log_weights, generator):
        return torch.zeros(3, dtype=torch.int64)

    with pytest.raises(ValueError, match=r"\(50,\) int64"):
        run(simulate(5, seed=10), seed=11, n=50, ess_threshold=1.0, resample=broken)


# -- determinism and backends ---------------------------------------------------------------------


def assert_same_result(a, b):
    assert a.log_z == b.log_z
    assert torch.equal(a.state, b.state) and torch.equal(a.log_weights, b.log_weights)
    for name in ("ess", "resampled", "n_unique", "n_dead", "log_z_increments"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for x, y in zip(a.ancestors, b.ancestors, strict=True):
        assert (x is None and y is None) or torch.equal(x, y)


def test_same_seed_same_result():
    ys = simulate(11, seed=12)
    assert_same_result(run(ys, seed=13, n=256), run(ys, seed=13, n=256))
    assert run(ys, seed=13, n=256).log_z != run(ys, seed=14, n=256).log_z


def test_internal_generator_seed_reproduces_the_run():
    ys = simulate(8, seed=15)
    first = SMC(AR1Bootstrap(ys), 128).run()
    assert isinstance(first.seed, int)
    assert_same_result(first, run(ys, seed=first.seed, n=128))


@pytest.mark.parametrize("scheme", ["systematic", "multinomial", "stratified", "residual"])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_engine_backends_on_cpu(backend, scheme):
    ys = simulate(11, seed=16)
    exact, _, _ = kalman(ys)
    r = run(ys, seed=17, n=500, backend=backend, resample=scheme, ess_threshold=0.7)
    assert abs(r.log_z - exact) < 0.5  # a single run: sd ~ 0.1
    reference = run(ys, seed=17, n=500, backend="auto", resample=scheme, ess_threshold=0.7)
    # identical ancestors (bit-exact resampling); ESS/log-sums agree to rounding
    assert torch.equal(r.state, reference.state)
    assert torch.equal(r.resampled, reference.resampled)
    assert r.log_z == pytest.approx(reference.log_z, abs=1e-10)
    assert torch.allclose(r.ess, reference.ess, rtol=1e-12)


# -- dead particles and errors --------------------------------------------------------------------


class Killer(FeynmanKacModel):
    """x ~ N(0, 1) moved by +N(0, 0.1); particles with x > 0 get a NaN potential at step
    ``kill_at`` (all of them if ``kill_all``), others log G = -x^2."""

    def __init__(self, n_steps=4, kill_at=2, kill_all=False, bad=math.nan):
        self.n_steps, self.kill_at, self.kill_all, self.bad = n_steps, kill_at, kill_all, bad

    def initial(self, n, generator):
        x = torch.randn(n, generator=generator, dtype=torch.float64)
        return {"x": x, "label": "particles"}, -(x**2)

    def step(self, k, state, generator):
        x = state["x"] + 0.1 * torch.randn(state["x"].shape, generator=generator)
        log_g = -(x**2)
        if k + 1 == self.kill_at:
            dead = torch.ones_like(x, dtype=torch.bool) if self.kill_all else x > 0
            log_g = torch.where(dead, self.bad, log_g)
            self.killed = dead
        return {"x": x, "label": state["label"]}, log_g

    def describe_step(self, k):
        return f"t={1 - k / self.n_steps:.2f}"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_dead_particles_are_counted_and_dropped(bad):
    gen = torch.Generator().manual_seed(18)
    model = Killer(bad=bad)
    r = SMC(model, 400, ess_threshold=1.0, generator=gen).run()
    n_dead = int(r.n_dead[2])
    assert n_dead == int(model.killed.sum()) and 100 < n_dead < 300
    assert r.n_dead[1] == 0 and r.n_dead[3] == 0
    assert r.ess[2] <= 400 - n_dead + 1e-9
    assert r.resampled[2] and int(r.n_unique[2]) <= 400 - n_dead
    assert not model.killed[r.ancestors[2]].any()  # resampling dropped every dead particle
    assert r.state["label"] == "particles" and math.isfinite(r.log_z)


def test_dead_particles_without_resampling_stay_dead():
    gen = torch.Generator().manual_seed(19)
    r = SMC(Killer(), 300, ess_threshold=0.0, generator=gen).run()
    assert int(r.n_dead[2]) == int(r.n_dead[3]) == int(r.n_dead[4]) > 0
    assert int(torch.isneginf(r.log_weights).sum()) == int(r.n_dead[4])


def test_all_particles_died_error_names_the_step():
    gen = torch.Generator().manual_seed(20)
    with pytest.raises(AllParticlesDiedError) as info:
        SMC(Killer(kill_at=3, kill_all=True), 50, generator=gen).run()
    msg = str(info.value)
    assert "step 3" in msg and "t=0.25" in msg and "step(2)" in msg
    assert "NaN for 50, +inf for 0 and -inf for 0" in msg
    assert isinstance(info.value, RuntimeError)


def test_contract_errors():
    ys = simulate(4, seed=21)
    model = AR1Bootstrap(ys)
    with pytest.raises(ValueError, match="ess_threshold must be in \\[0, 1\\], got 1.5"):
        SMC(model, 10, ess_threshold=1.5)
    with pytest.raises(ValueError, match="-0.1"):
        SMC(model, 10, ess_threshold=-0.1)
    with pytest.raises(ValueError, match="n_particles must be an int >= 1, got 0"):
        SMC(model, 0)
    with pytest.raises(ValueError, match="valid names"):
        SMC(model, 10, resample="bogus")
    with pytest.raises(ValueError, match="backend"):
        SMC(model, 10, backend="gpu")

    class WrongShape(AR1Bootstrap):
        def step(self, k, state, generator):
            x, log_g = super().step(k, state, generator)
            return x, log_g[:-1]

    with pytest.raises(ValueError, match=r"shape \(n_particles,\) = \(10,\), got \(9,\) at t=1"):
        SMC(WrongShape(ys), 10, generator=torch.Generator()).run()

    class WrongState(AR1Bootstrap):
        def initial(self, n, generator):
            x, log_g = super().initial(n, generator)
            return (x, x[:3]), log_g

    with pytest.raises(ValueError, match=r"state\[1\] has shape \(3,\)"):
        SMC(WrongState(ys), 10, generator=torch.Generator()).run()


def test_progress_bar_runs(capsys):
    run(simulate(4, seed=22), seed=23, n=20, progress=True, progress_desc="filter")
    assert "filter" in capsys.readouterr().err


# -- take -----------------------------------------------------------------------------------------


def test_take_nested_states():
    @dataclass(frozen=True)
    class Particles:
        x: torch.Tensor
        extras: dict
        name: str = "p"

    Pair = namedtuple("Pair", "a b")
    x = torch.arange(12.0).reshape(4, 3)
    state = Particles(
        x=x,
        extras={"t": torch.tensor(0.5), "pair": Pair(torch.arange(4), [torch.arange(4) * 10, 7])},
    )
    anc = torch.tensor([3, 3, 0, 1, 2])
    out = take(state, anc)
    assert isinstance(out, Particles) and out.name == "p"
    assert torch.equal(out.x, x[anc])
    assert out.extras["t"] is state.extras["t"]  # 0-d tensors are shared, not gathered
    assert isinstance(out.extras["pair"], Pair)
    assert out.extras["pair"].a.tolist() == [3, 3, 0, 1, 2]
    assert out.extras["pair"].b[0].tolist() == [30, 30, 0, 10, 20] and out.extras["pair"].b[1] == 7
    assert torch.equal(take(x, anc), x[anc])
