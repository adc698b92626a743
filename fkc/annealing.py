"""Temperature annealing of a trained score model: ``fkc anneal``.

A model trained on Boltzmann samples at ``T_train`` represents ``q ∝ exp(-E/T_train)``; the
density at a target temperature ``T`` is ``q^beta`` with ``beta = T_train / T``. This module runs
:func:`fkc.sample` on ``fkc.anneal(expert, beta)`` and writes a sample file (:mod:`fkc.io`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .compose import anneal
from .io import SampleFile, save_samples
from .sampler import sample
from .sampler.moves import resolve_kind

CHECKPOINT_NAMES = ("model.safetensors", "last.safetensors", "best.safetensors")


def resolve_checkpoint(model: str | Path) -> Path:
    """A checkpoint file, or the first of :data:`CHECKPOINT_NAMES` inside a model folder."""
    p = Path(model)
    if p.is_file():
        return p
    if p.is_dir():
        for name in CHECKPOINT_NAMES:
            if (p / name).is_file():
                return p / name
        raise ValueError(f"model folder {p} holds none of {list(CHECKPOINT_NAMES)}")
    raise ValueError(f"model {p} does not exist")


def anneal_model(model: str | Path, temperature: float, n_particles: int, *, seed: int = 0,
                 noise: str | float = "target", correct: bool = True, n_steps: int = 500,
                 ess_threshold: float = 0.5, resample_window: tuple[float, float] = (1.0, 0.0),
                 grid: str = "edm", t_min: float = 1e-3,
                 weight_window: tuple[float, float] = (1.0, 0.0), denoise: bool = True,
                 mcmc_steps: int = 0, mcmc: str = "auto", mcmc_step_size: float = 0.5,
                 mcmc_window: tuple[float, float] = (1.0, 0.0), mcmc_adapt: bool = False,
                 weights: str = "fkc", device: str | None = None, progress: bool = True) -> SampleFile:
    """Sample a trained model's Boltzmann density at ``temperature`` (FKC or uncorrected).

    ``mcmc_steps`` Langevin moves per step (:mod:`fkc.sampler.moves`); ``mcmc="auto"`` takes MALA
    when the model has a log density (energy-parameterised) and ULA otherwise; the kind used is
    recorded in the metadata; ``mcmc_adapt`` tunes MALA's step size to 0.57 acceptance;
    ``weights="density"`` uses the exact discrete-time weights of an energy-parameterised model
    (:mod:`fkc.sampler.density_weights`), ``weights="ais"`` annealed importance sampling with the
    MCMC moves and no SDE step (see :func:`fkc.sample`).

    Returns the :class:`~fkc.io.SampleFile` (``x: (n_particles, n_atoms, 3)``) with diagnostics
    and metadata (beta, temperatures, noise, seed, score evaluations, wall time).
    """
    from .experts.score_model import ScoreModelExpert

    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    path = resolve_checkpoint(model)
    expert = ScoreModelExpert.from_checkpoint(path, device=device)
    t_train = expert.metadata.get("training_temperature")
    if t_train is None:
        raise ValueError(f"{path} records no training_temperature in its metadata; cannot "
                         "convert a temperature into beta")
    beta = float(t_train) / float(temperature)
    mcmc = resolve_kind(mcmc, expert)
    start = time.perf_counter()
    res = sample(anneal(expert, beta), n_particles, n_steps=n_steps, noise=noise,
                 ess_threshold=ess_threshold, resample_window=resample_window,
                 correct=correct, grid=grid, t_min=t_min, weight_window=weight_window,
                 denoise=denoise, generator=torch.Generator(device or "cpu").manual_seed(seed),
                 device=device, progress=progress, mcmc_steps=mcmc_steps, mcmc=mcmc,
                 mcmc_step_size=mcmc_step_size, mcmc_window=mcmc_window, mcmc_adapt=mcmc_adapt,
                 weights=weights)
    wall = time.perf_counter() - start
    n_eval = (n_steps + (1 if correct else 0) + (1 if denoise else 0)
              + res.moves_per_particle) * n_particles
    meta = {"model": str(path), "temperature": float(temperature),
            "training_temperature": float(t_train), "beta": beta, "noise": noise,
            "noise_level": res.noise_level, "correct": correct, "seed": seed,
            "n_particles": n_particles, "n_steps": n_steps, "ess_threshold": ess_threshold,
            "resample_window": list(resample_window), "grid": grid, "t_min": t_min,
            "weight_window": list(weight_window), "denoise": denoise,
            "mcmc_steps": mcmc_steps, "mcmc": mcmc if mcmc_steps > 0 else None,
            "mcmc_step_size": mcmc_step_size, "mcmc_window": list(mcmc_window),
            "mcmc_adapt": mcmc_adapt, "weights": weights if correct else None,
            "score_evaluations": n_eval,
            "wall_time_s": wall, "system": expert.metadata.get("system"),
            "length_unit": expert.metadata.get("length_unit")}
    return SampleFile(
        x=res.samples.detach().cpu().numpy(),
        log_weights=res.log_weights.cpu().numpy(),
        log_z=res.log_z,
        diagnostics={"times": res.times.numpy(), "ess": res.ess.numpy(),
                     "resampled": res.resampled.numpy(), "n_unique": res.n_unique.numpy(),
                     **({} if res.acceptance is None
                        else {"mcmc_acceptance": res.acceptance.numpy(),
                              "mcmc_step_size": res.mcmc_step_sizes.numpy()})},
        metadata=meta,
    )


def anneal_to_file(out: str | Path, **kwargs) -> Path:
    """:func:`anneal_model` and write the result atomically to ``out`` (npz)."""
    return save_samples(out, anneal_model(**kwargs))
