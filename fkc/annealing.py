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
METHODS = ("sde", "tempering")


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
                 weights: str = "fkc", method: str = "sde", tempering_steps: int = 100,
                 burn_in: int = 20, torsion_steps: int = 0, device: str | None = None,
                 progress: bool = True) -> SampleFile:
    """Sample a trained model's Boltzmann density at ``temperature`` (FKC or uncorrected).

    ``mcmc_steps`` Langevin moves per step (:mod:`fkc.sampler.moves`); ``mcmc="auto"`` takes MALA
    when the model has a log density (energy-parameterised) and ULA otherwise; the kind used is
    recorded in the metadata; ``mcmc_adapt`` tunes MALA's step size to 0.57 acceptance;
    ``weights="density"`` uses the exact discrete-time weights of an energy-parameterised model
    (:mod:`fkc.sampler.density_weights`), ``weights="ais"`` annealed importance sampling with the
    MCMC moves and no SDE step (see :func:`fkc.sample`).

    ``method="tempering"``: the model's own reverse SDE at ``beta = 1`` (``n_steps`` steps to
    ``t_min`` with ``mcmc_steps`` MALA moves per step; no correction is needed for the model
    itself), then SMC tempering at ``t_min`` from
    ``q`` to ``q^beta`` (:func:`fkc.sampler.tempering.temper`: ``tempering_steps`` rungs,
    ``burn_in`` single MALA moves on ``q`` first, ``mcmc_steps`` MALA moves per rung; needs an
    energy-parameterised model). ``torsion_steps`` Metropolis torsion moves about the rotatable
    bonds of the model's molecular graph (:mod:`fkc.sampler.torsion_moves`) before every burn-in
    move and every block of MALA moves cross the torsional barriers between basins. With
    ``correct=False`` the same moves run without weights (annealed MCMC: without torsion moves,
    basin populations stay those of the start).

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
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "tempering":
        if expert.has_log_density and mcmc != "mala":  # (score-only models: error below)
            raise ValueError(f"method='tempering' moves the particles by MALA, got mcmc={mcmc!r}")
        return _anneal_tempering(expert, path, t_train, beta, temperature, n_particles, seed=seed,
                                 noise=noise, correct=correct, n_steps=n_steps,
                                 ess_threshold=ess_threshold, grid=grid, t_min=t_min,
                                 denoise=denoise, mcmc_steps=mcmc_steps,
                                 mcmc_step_size=mcmc_step_size, mcmc_adapt=mcmc_adapt,
                                 tempering_steps=tempering_steps, burn_in=burn_in,
                                 torsion_steps=torsion_steps, device=device, progress=progress)
    if torsion_steps:
        raise ValueError(f"torsion_steps={torsion_steps} needs method='tempering', got {method!r}")
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
            "weight_window": list(weight_window), "denoise": denoise, "method": "sde",
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


def _anneal_tempering(expert, path: Path, t_train: float, beta: float, temperature: float,
                      n_particles: int, *, seed: int, noise, correct: bool, n_steps: int,
                      ess_threshold: float, grid: str, t_min: float, denoise: bool,
                      mcmc_steps: int, mcmc_step_size: float, mcmc_adapt: bool,
                      tempering_steps: int, burn_in: int, torsion_steps: int,
                      device: str | None, progress: bool) -> SampleFile:
    """``method="tempering"`` of :func:`anneal_model`."""
    from .compose.corrector import score_terms, tweedie_denoise
    from .sampler.tempering import temper
    from .sampler.torsion_moves import TorsionSet

    if not expert.has_log_density:
        raise ValueError(f"method='tempering' needs an energy-parameterised model (a log "
                         f"density); {path} has scores only")
    if not t_min > 0:
        raise ValueError(f"method='tempering' runs at t_min > 0, got t_min={t_min}")
    torsions = None
    if torsion_steps:
        if expert.graph.edge_index is None:
            raise ValueError(f"torsion_steps={torsion_steps} needs the molecule's bonds, but "
                             f"{path} stores a graph without bonds")
        torsions = TorsionSet.from_bonds(expert.graph.edge_index, expert.graph.n_atoms)
    target = anneal(expert, beta)
    gen = torch.Generator(device or "cpu").manual_seed(seed)
    start = time.perf_counter()
    # the model's own reverse SDE: q_{t_min} needs no correction
    # (with the same MALA moves per step: they relax the samples towards q_t at every level)
    res0 = sample(expert, n_particles, n_steps=n_steps, noise=noise, correct=False, grid=grid,
                  t_min=t_min, generator=gen, device=device, progress=progress,
                  mcmc_steps=mcmc_steps, mcmc="mala", mcmc_step_size=mcmc_step_size,
                  mcmc_adapt=mcmc_adapt)
    step = mcmc_step_size
    if res0.mcmc_step_sizes is not None and mcmc_adapt:  # continue from the adapted step
        step = float(res0.mcmc_step_sizes[~torch.isnan(res0.mcmc_step_sizes)][-1])
    res = temper(target, res0.samples, start=expert, t=t_min, n_steps=tempering_steps,
                 mcmc_steps=mcmc_steps, mcmc_step_size=step, mcmc_adapt=mcmc_adapt,
                 burn_in=burn_in, torsions=torsions, torsion_steps=torsion_steps,
                 ess_threshold=ess_threshold if correct else 0.0,
                 final_resample=correct, generator=gen, progress=progress)
    x = res.samples
    log_w = res.log_weights if correct else torch.zeros_like(res.log_weights)
    if denoise:
        t = torch.full((x.shape[0],), t_min, dtype=x.dtype, device=x.device)
        x = tweedie_denoise(target, x, t, score_terms(target, x, t, weighted=False).S.detach())
    wall = time.perf_counter() - start
    # a torsion move evaluates the log density only (counted as one evaluation), and a block
    # of torsion moves re-evaluates the scores once
    n_blocks = res.torsion_moves_per_particle // torsion_steps if torsion_steps else 0
    n_eval = (n_steps + res0.moves_per_particle + 1 + res.moves_per_particle
              + res.torsion_moves_per_particle + n_blocks + (1 if denoise else 0)) * n_particles
    meta = {"model": str(path), "temperature": float(temperature),
            "training_temperature": float(t_train), "beta": beta, "noise": noise,
            "noise_level": res0.noise_level, "correct": correct, "seed": seed,
            "n_particles": n_particles, "n_steps": n_steps, "ess_threshold": ess_threshold,
            "grid": grid, "t_min": t_min, "denoise": denoise, "method": "tempering",
            "tempering_steps": tempering_steps, "burn_in": burn_in, "mcmc_steps": mcmc_steps,
            "torsion_steps": torsion_steps,
            "n_torsions": 0 if torsions is None else len(torsions),
            "mcmc": "mala", "mcmc_step_size": mcmc_step_size, "mcmc_adapt": mcmc_adapt,
            "weights": "tempering" if correct else None, "score_evaluations": n_eval,
            "wall_time_s": wall, "system": expert.metadata.get("system"),
            "length_unit": expert.metadata.get("length_unit")}
    return SampleFile(
        x=x.detach().cpu().numpy(), log_weights=log_w.cpu().numpy(),
        log_z=res.log_z if correct else float("nan"),
        diagnostics={"lambdas": res.lambdas.numpy(), "ess": res.ess.numpy(),
                     "resampled": res.resampled.numpy(), "n_unique": res.n_unique.numpy(),
                     "mcmc_acceptance": res.acceptance.numpy(),
                     "mcmc_step_size": res.mcmc_step_sizes.numpy(),
                     **({} if res.torsion_acceptance is None
                        else {"torsion_acceptance": res.torsion_acceptance.numpy()})},
        metadata=meta)


def anneal_to_file(out: str | Path, **kwargs) -> Path:
    """:func:`anneal_model` and write the result atomically to ``out`` (npz)."""
    return save_samples(out, anneal_model(**kwargs))
