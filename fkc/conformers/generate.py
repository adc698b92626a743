r"""Conformer ensembles of a molecule at a chosen temperature: :func:`generate`.

The score model (``models/conformers-tp-T500``) was trained on MMFF94 Boltzmann samples at
``T_train``; for the molecule's graph it approximates the score of
``q(x) ∝ exp(-E(x) / (k_B T_train))``. Two samplers, with the conformers of one molecule as SMC
particles carried with log-weights and resampled when the effective sample size drops below
``ess_threshold * n``:

* ``method="tempering"`` (default; :mod:`fkc.conformers.mmff_tempering`) targets the MMFF94
  ensemble at ``T`` itself: the model's conformers at ``T_train`` (MMFF-minimised, restricted to
  the input's stereoisomer) start an SMC tempering path on the force field's Boltzmann density
  from ``T_train`` to ``T`` with MALA and torsion moves;
* ``method="sde"``: FKC on the model's own ``q^beta``, ``beta = T_train / T``
  (:func:`fkc.sample` on :func:`fkc.anneal`); its weights are exact for the model, not for MMFF94.

``correct=False`` gives the same sampler without weights or resampling (the baseline).

Positions are in Å. By default the conformers are returned *weighted* (no final resampling, so
no duplicates): ``log_weight`` per conformer, normalised so that ``logsumexp = 0``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from fkc.annealing import resolve_checkpoint
from fkc.conformers.featurize import mol_graph
from fkc.conformers.mmff import MMFFEnergy
from fkc.datasets.smiles import as_mol, mol_label

DEFAULT_MODEL = "models/conformers-tp-T500"
METHODS = ("sde", "tempering")


def default_model() -> Path:
    """The shipped conformer model, under the current directory or the source checkout."""
    from fkc.demo_lj13 import find_repo_file

    return find_repo_file(DEFAULT_MODEL)


def _load_expert(model, mol: Chem.Mol, device):
    from fkc.checkpoint import load_checkpoint
    from fkc.experts.score_model import ExpertContext, ScoreModelExpert

    path = resolve_checkpoint(model)
    ckpt = load_checkpoint(path)
    feat = ckpt.metadata.get("featurizer")
    if feat != "fkc.conformers.featurize":
        raise ValueError(f"{path} was not trained on fkc.conformers.featurize graphs "
                         f"(metadata featurizer={feat!r}); it cannot condition on a new molecule")
    graph = mol_graph(mol)
    return ScoreModelExpert.from_checkpoint(ckpt, ExpertContext(graph), device=device), path


def generate(mol_or_smiles: str | Chem.Mol, n: int, *, temperature: float = 300.0,
             model: str | Path | None = None, seed: int = 0, correct: bool = True,
             noise: str | float = "target", n_steps: int = 200, ess_threshold: float = 0.5,
             final_resample: bool = False, n_particles: int | None = None,
             fix_chirality: bool = False, relax: bool = False,
             max_relax_iters: int = 200, mcmc_steps: int | None = None, mcmc: str = "auto",
             mcmc_step_size: float = 0.5, method: str = "tempering", tempering_steps: int = 100,
             torsion_steps: int = 2, burn_in: int = 200, start_relax_iters: int = 200,
             start: str = "auto", device: str | None = None, progress: bool = False) -> Chem.Mol:
    """``n`` conformers of a molecule at ``temperature`` K: the score model's conformers tempered
    on MMFF94 (default) or FKC on the model's ``q^beta`` (module docstring).

    Args:
        mol_or_smiles: SMILES or RDKit ``Mol``; hydrogens are added; stereocentres given in the
            input are what the conformers are checked against. Invalid SMILES, unsupported
            elements or charges raise ``ValueError`` naming the molecule.
        n: number of conformers returned (= SMC particles unless ``n_particles`` is given).
        temperature: target temperature; ``beta = T_train / temperature``.
        model: checkpoint file or folder (default: the shipped ``models/conformers-tp-T500``).
        correct: FKC weights and resampling (True) or the uncorrected sampler (False).
        final_resample: resample once at the end (equal weights, possibly duplicates) instead of
            returning weighted conformers.
        n_particles: run the SMC with this many particles (>= ``n``; default ``n``) and return
            ``n`` of them drawn by systematic resampling on the final weights (equal
            log-weights ``-log n``; duplicates possible, ``fkc_n_distinct`` counts them). More
            particles than conformers keep more lineages alive when the weights degenerate,
            at ``n_particles / n`` times the cost.
        fix_chirality: mirror (``x -> -x``) every conformer whose stereochemistry is wrong but
            whose mirror image is right (all tetrahedral centres inverted; double bonds are
            unchanged by a reflection). MMFF94 is reflection invariant, so the mirror image of a
            Boltzmann sample of the enantiomer is a Boltzmann sample of the molecule; exact for a
            mirror-symmetric model, an approximation for a chiral one. The count is
            ``fkc_n_mirrored``; ``fkc_stereo_ok_raw_fraction`` is the fraction before mirroring.
        relax: MMFF-minimise each conformer afterwards (at most ``max_relax_iters`` iterations);
            the energies and checks are then of the relaxed conformers.
        mcmc_steps, mcmc, mcmc_step_size: ``method="sde"``: Langevin moves on the annealed
            target between SDE steps (:mod:`fkc.sampler.moves`; default 0); ``"auto"``: MALA if
            the model has a log density, else ULA. Each move costs one score evaluation per
            particle. ``method="tempering"``: MALA moves on the force field per rung (default 2).
        method: ``"tempering"`` (default: the model's ``T_train`` conformers tempered on the
            MMFF94 Boltzmann density to ``T``; :mod:`fkc.conformers.mmff_tempering`) or ``"sde"``
            (FKC on the model's own ``q^beta``, whose weights are exact for the model, not for
            MMFF94).
        tempering_steps, torsion_steps, burn_in, start_relax_iters: ``method="tempering"``:
            rungs of the temperature ladder, torsion moves before every block of MALA moves,
            burn-in moves at ``T_train`` and MMFF minimisation iterations of the start
            conformers.
        start: ``method="tempering"``: start conformers from ``"auto"`` (the model's, with
            MMFF-minimised ETKDGv3 conformers in place of those with the wrong stereo),
            ``"model"`` (wrong-stereo ones replaced by copies of right ones) or ``"etkdg"``
            (RDKit only, no model).

    Returns a copy of the molecule (explicit hydrogens) with ``n`` conformers (ids ``0..n-1``).
    Per conformer (``conf.GetDoubleProp`` / ``GetBoolProp``): ``log_weight`` (normalised),
    ``energy`` (MMFF94, kcal/mol; NaN for non-finite positions), ``stereo_ok`` (the input's
    tetrahedral and double-bond stereo is reproduced), ``finite``. Molecule properties:
    ``fkc_temperature``, ``fkc_training_temperature``, ``fkc_beta``, ``fkc_corrected``,
    ``fkc_model``, ``fkc_n_resampling``, ``fkc_min_ess``, ``fkc_log_z``,
    ``fkc_score_evaluations``, ``fkc_wall_time_s``, ``fkc_stereo_ok_fraction``,
    ``fkc_stereo_ok_raw_fraction``, ``fkc_n_mirrored``, ``fkc_n_particles``, ``fkc_n_distinct``
    (distinct particles among the returned conformers), ``fkc_mcmc_steps``, ``fkc_method``;
    with ``method="tempering"`` also ``fkc_force_field_evaluations`` (MMFF94 energy or
    energy+gradient calls), ``fkc_n_stereo_replaced`` (start conformers with the wrong stereo
    that were replaced), ``fkc_mcmc_acceptance``, ``fkc_torsion_acceptance``,
    ``fkc_n_torsions``, ``fkc_start``; ``fkc_stereo_ok_raw_fraction`` is then that of the raw
    start conformers.
    """
    from fkc.compose import anneal
    from fkc.sampler import sample
    from fkc.sampler.moves import resolve_kind
    from fkc.smc.resampling import systematic

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n_particles = n if n_particles is None else n_particles
    if isinstance(n_particles, bool) or not isinstance(n_particles, int) or n_particles < n:
        raise ValueError(f"n_particles must be an integer >= n = {n}, got {n_particles!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0 K, got {temperature!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if mcmc_steps is None:
        mcmc_steps = 2 if method == "tempering" else 0
    mol = as_mol(mol_or_smiles, add_hs=True)
    energy = MMFFEnergy(mol)
    expert, path = _load_expert(model if model is not None else default_model(), mol, device)
    t_train = float(expert.metadata["training_temperature"])
    beta = t_train / float(temperature)
    clock0 = time.perf_counter()
    gen = torch.Generator(device or "cpu").manual_seed(seed)
    if method == "tempering":
        from fkc.conformers.mmff_tempering import temper_conformers

        if n_particles != n:
            raise ValueError("method='tempering' returns its n particles (weighted); "
                             f"n_particles={n_particles} != n={n} is for method='sde'")
        x, lw, props = temper_conformers(
            expert, energy, mol, n, t_train=t_train, temperature=float(temperature),
            generator=gen, seed=seed, start=start, correct=correct, noise=noise,
            n_steps=n_steps,
            tempering_steps=tempering_steps, mcmc_steps=mcmc_steps,
            mcmc_step_size=mcmc_step_size, torsion_steps=torsion_steps, burn_in=burn_in,
            start_relax_iters=start_relax_iters, ess_threshold=ess_threshold,
            final_resample=final_resample, progress=progress)
        props["fkc_n_distinct"] = float(n)
        return _finish(mol, energy, x, lw, n, path, correct, temperature, t_train, beta,
                       clock0, relax, max_relax_iters, props | {"fkc_method": "tempering"})
    mcmc = resolve_kind(mcmc, expert)
    res = sample(anneal(expert, beta), n_particles, n_steps=n_steps, noise=noise,
                 ess_threshold=ess_threshold, correct=correct, grid="edm", denoise=True,
                 final_resample=final_resample and n_particles == n, generator=gen,
                 device=device, progress=progress, mcmc_steps=mcmc_steps, mcmc=mcmc,
                 mcmc_step_size=mcmc_step_size)
    x = res.samples.detach().cpu().double().numpy()
    lw = res.log_weights.double().cpu().numpy()
    n_distinct = n
    if n_particles > n:  # keep n of the weighted particles: systematic resampling
        idx = systematic(res.log_weights.detach(), gen, n_out=n).cpu().numpy()  # on the generator's device
        x, lw = x[idx], np.zeros(n)
        n_distinct = int(np.unique(idx).size)
    n_raw_ok, n_mirrored = stereo_fix(mol, x, apply=fix_chirality)
    n_eval = (n_steps + (1 if correct else 0) + 1 + res.moves_per_particle) * n_particles
    resampled = res.resampled.numpy()
    props = {"fkc_n_resampling": int(resampled[:-1].sum()),
             "fkc_min_ess": float(res.ess.min()),
             "fkc_log_z": float(res.log_z) if correct else float("nan"),
             "fkc_score_evaluations": float(n_eval), "fkc_stereo_ok_raw_fraction": n_raw_ok / n,
             "fkc_n_mirrored": float(n_mirrored), "fkc_n_particles": float(n_particles),
             "fkc_n_distinct": float(n_distinct), "fkc_mcmc_steps": float(mcmc_steps),
             "fkc_method": "sde"}
    return _finish(mol, energy, x, lw, n, path, correct, temperature, t_train, beta, clock0,
                   relax, max_relax_iters, props)


def _finish(mol, energy, x, lw, n, path, correct, temperature, t_train, beta, clock0, relax,
            max_relax_iters, props) -> Chem.Mol:
    """Optional relaxation, then the output ``Mol`` with per-conformer and sampler properties."""
    from fkc.conformers.evaluate import stereo_matches

    if relax:
        for i in range(n):
            if np.isfinite(x[i]).all():
                x[i], _ = energy.minimize(x[i], max_iters=max_relax_iters)
    wall = time.perf_counter() - clock0
    lw = lw - (np.logaddexp.reduce(lw) if np.isfinite(lw).any() else 0.0)

    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    n_ok = 0
    for i in range(n):
        conf = Chem.Conformer(mol.GetNumAtoms())
        finite = bool(np.isfinite(x[i]).all())
        for j in range(mol.GetNumAtoms()):
            conf.SetAtomPosition(j, x[i, j].tolist() if finite else [0.0, 0.0, 0.0])
        cid = out.AddConformer(conf, assignId=True)
        c = out.GetConformer(cid)
        e = energy.energy(x[i]) if finite else float("nan")
        ok = finite and stereo_matches(out, cid)
        n_ok += ok
        c.SetDoubleProp("log_weight", float(lw[i]))
        c.SetDoubleProp("energy", float(e))
        c.SetBoolProp("stereo_ok", bool(ok))
        c.SetBoolProp("finite", finite)
    props = {"fkc_temperature": float(temperature), "fkc_training_temperature": t_train,
             "fkc_beta": beta, "fkc_wall_time_s": wall, "fkc_stereo_ok_fraction": n_ok / n,
             **props}
    for k, v in props.items():
        if isinstance(v, str):
            out.SetProp(k, v)
        else:
            out.SetDoubleProp(k, float(v))
    out.SetBoolProp("fkc_corrected", bool(correct))
    out.SetProp("fkc_model", str(path))
    out.SetProp("_Name", mol.GetProp("_Name") if mol.HasProp("_Name") else mol_label(mol))
    return out


def stereo_ok(mol: Chem.Mol, xi: np.ndarray) -> bool:
    """Whether positions ``xi (n_atoms, 3)`` are finite and realise ``mol``'s stereochemistry."""
    from fkc.conformers.evaluate import stereo_matches

    if not np.isfinite(xi).all():
        return False
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    conf = Chem.Conformer(mol.GetNumAtoms())
    for j, p in enumerate(xi):
        conf.SetAtomPosition(j, p.tolist())
    m.AddConformer(conf, assignId=True)
    return stereo_matches(m)


def stereo_fix(mol: Chem.Mol, x: np.ndarray, *, apply: bool) -> tuple[int, int]:
    """Count conformers ``x (n, n_atoms, 3)`` with the stereochemistry of ``mol``'s graph and,
    if ``apply``, mirror in place those whose mirror image has it. Returns
    ``(n_ok_before, n_mirrored)``."""
    n_ok = n_mirrored = 0
    for i in range(x.shape[0]):
        if stereo_ok(mol, x[i]):
            n_ok += 1
        elif apply and stereo_ok(mol, -x[i]):
            x[i] = -x[i]
            n_mirrored += 1
    return n_ok, n_mirrored


def conformer_arrays(mol: Chem.Mol) -> dict[str, np.ndarray]:
    """Per-conformer properties of a :func:`generate` result as arrays ``(n_conformers,)``:
    ``log_weight``, ``energy``, ``stereo_ok``, ``finite``; and ``x (n_conformers, n_atoms, 3)``."""
    confs = list(mol.GetConformers())
    return {"x": np.stack([c.GetPositions() for c in confs]),
            "log_weight": np.array([c.GetDoubleProp("log_weight") for c in confs]),
            "energy": np.array([c.GetDoubleProp("energy") for c in confs]),
            "stereo_ok": np.array([c.GetBoolProp("stereo_ok") for c in confs]),
            "finite": np.array([c.GetBoolProp("finite") for c in confs])}
