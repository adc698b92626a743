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
                 burn_in: int = 20, torsion_steps: int = 0, force_field_steps: int = 0,
                 device: str | None = None, progress: bool = True) -> SampleFile:
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
    basin populations stay those of the start). ``force_field_steps > 0`` (systems with a force
    field: alanine dipeptide) continues with a second path at ``t_min`` from ``q^beta`` to the
    force field's Boltzmann density ``exp(-U/kT)`` itself (:class:`fkc.experts.boltzmann.
    BoltzmannExpert`, ``force_field_steps`` rungs linear in lambda, the same moves), which removes
    the model's own error; its samples are clean, so no denoising follows.

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
                                 torsion_steps=torsion_steps,
                                 force_field_steps=force_field_steps, device=device,
                                 progress=progress)
    for name, v in (("torsion_steps", torsion_steps), ("force_field_steps", force_field_steps)):
        if v:
            raise ValueError(f"{name}={v} needs method='tempering', got {method!r}")
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
                      force_field_steps: int, device: str | None, progress: bool) -> SampleFile:
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
    force_field = _force_field(expert, path, temperature) if force_field_steps else None
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
    stages = [res]
    if force_field is not None:  # q^beta -> exp(-U/kT), starting where the first path ended
        res = temper(force_field, res.samples, start=target, t=t_min, n_steps=force_field_steps,
                     schedule="linear", log_weights=res.log_weights, mcmc_steps=mcmc_steps,
                     mcmc_step_size=float(res.mcmc_step_sizes[-1]), mcmc_adapt=mcmc_adapt,
                     torsions=torsions, torsion_steps=torsion_steps,
                     ess_threshold=ess_threshold if correct else 0.0, final_resample=correct,
                     generator=gen, progress=progress)
        stages.append(res)
        denoise = False  # samples of the clean density
    x = res.samples
    log_w = res.log_weights if correct else torch.zeros_like(res.log_weights)
    if denoise:
        t = torch.full((x.shape[0],), t_min, dtype=x.dtype, device=x.device)
        x = tweedie_denoise(target, x, t, score_terms(target, x, t, weighted=False).S.detach())
    wall = time.perf_counter() - start
    # per stage: the start, the MALA moves, the torsion moves (a log density each, counted as
    # one evaluation) and one re-evaluation of the scores per block of torsion moves
    n_eval = n_steps + res0.moves_per_particle + (1 if denoise else 0)
    for r in stages:
        n_blocks = r.torsion_moves_per_particle // torsion_steps if torsion_steps else 0
        n_eval += 1 + r.moves_per_particle + r.torsion_moves_per_particle + n_blocks
    n_eval *= n_particles
    meta = {"model": str(path), "temperature": float(temperature),
            "training_temperature": float(t_train), "beta": beta, "noise": noise,
            "noise_level": res0.noise_level, "correct": correct, "seed": seed,
            "n_particles": n_particles, "n_steps": n_steps, "ess_threshold": ess_threshold,
            "grid": grid, "t_min": t_min, "denoise": denoise, "method": "tempering",
            "tempering_steps": tempering_steps, "burn_in": burn_in, "mcmc_steps": mcmc_steps,
            "torsion_steps": torsion_steps,
            "n_torsions": 0 if torsions is None else len(torsions),
            "force_field_steps": force_field_steps,
            "target": "force field" if force_field is not None else "model",
            "mcmc": "mala", "mcmc_step_size": mcmc_step_size, "mcmc_adapt": mcmc_adapt,
            "weights": "tempering" if correct else None, "score_evaluations": n_eval,
            "wall_time_s": wall, "system": expert.metadata.get("system"),
            "length_unit": expert.metadata.get("length_unit")}
    return SampleFile(
        x=x.detach().cpu().numpy(), log_weights=log_w.cpu().numpy(),
        log_z=sum(r.log_z for r in stages) if correct else float("nan"),
        diagnostics={f"{prefix}{k}": v
                     for prefix, r in zip(("", "ff_")[:len(stages)], stages, strict=True)
                     for k, v in _tempering_diagnostics(r).items()},  # ff_: the second path
        metadata=meta)


def _tempering_diagnostics(res) -> dict:
    """Per-rung arrays of a :class:`~fkc.sampler.tempering.TemperingResult`."""
    out = {"lambdas": res.lambdas.numpy(), "ess": res.ess.numpy(),
           "resampled": res.resampled.numpy(), "n_unique": res.n_unique.numpy(),
           "mcmc_acceptance": res.acceptance.numpy(), "mcmc_step_size": res.mcmc_step_sizes.numpy()}
    if res.torsion_acceptance is not None:
        out["torsion_acceptance"] = res.torsion_acceptance.numpy()
    return out


def _force_field(expert, path: Path, temperature: float):
    """The Boltzmann density of the model's system at ``temperature`` in the model's units."""
    from .experts.boltzmann import BoltzmannExpert

    system = expert.metadata.get("system")
    if system != "aldp":
        raise ValueError(f"force_field_steps needs a system with a force field (alanine "
                         f"dipeptide, 'aldp'); {path} is for system {system!r}")
    from .systems import AlanineDipeptide
    from .systems._aldp import kT
    from .systems._aldp_data import ANGSTROM_PER_NM

    unit = expert.metadata.get("length_unit")
    if unit not in ("angstrom", "nm"):
        raise ValueError(f"{path}: length_unit must be 'angstrom' or 'nm', got {unit!r}")
    scale = 1.0 / ANGSTROM_PER_NM if unit == "angstrom" else 1.0
    return BoltzmannExpert(AlanineDipeptide().energy_and_forces, kT(temperature), expert.process,
                           expert.event_shape, length_scale=scale)


def anneal_to_file(out: str | Path, **kwargs) -> Path:
    """:func:`anneal_model` and write the result atomically to ``out`` (npz)."""
    return save_samples(out, anneal_model(**kwargs))
