r"""From the model's conformers to MMFF94 Boltzmann conformers at ``T``: SMC tempering.

The score model's own ``q^beta`` is not the MMFF94 ensemble at ``T`` (README: its raw conformers
sit hundreds of kcal/mol above it, and its density ranks conformers differently), so FKC weights
that are exact for ``q^beta`` cannot reach the force field's ensemble. ``generate(method=
"tempering")`` uses the model for what it is good at, torsional diversity at its training
temperature ``T_train``, and the force field for the thermodynamics:

1. ``n`` samples of the model at ``T_train`` (its reverse SDE, no weights: ``beta = 1`` needs
   none; or, with ``start="etkdg"``, RDKit ETKDGv3 embeddings);
2. each particle is MMFF-minimised (``start_relax_iters``), which removes the model's bond and
   angle errors, and mirrored if only its mirror image has the input's stereochemistry (MMFF94
   is reflection invariant);
3. the start is restricted to the input's stereoisomer: particles with the wrong tetrahedral or
   double-bond stereo have zero density under the target (the moves below never change stereo),
   so they are replaced by MMFF-minimised ETKDGv3 conformers (``start="auto"``, the default) or
   by copies of right ones (``start="model"``); ``burn_in`` MALA + torsion moves on ``pi_0``
   then heat the particles to ``T_train``;
4. SMC tempering (:func:`fkc.temper`) along the temperature ladder

       log pi_lambda(x) = -(1 - lambda + lambda beta) E(x) / (k_B T_train),  beta = T_train / T,

   (``fkc.anneal`` of the Boltzmann expert ``exp(-E / k_B T_train)``; geometric in ``1/T``) with
   incremental weights ``-(lambda_{k+1} - lambda_k) (beta - 1) E(x) / (k_B T_train)``, MALA
   moves on all atoms and Metropolis torsion moves about the single, non-ring bonds (rigid
   rotations: they change neither bond lengths nor stereo; double bonds are left out so E/Z is
   kept).

The weighted particles target ``pi_lambda`` exactly if the start is ``pi_0`` = MMFF94 at
``T_train``; steps 1-3 only approximate it (the model's basin shares, re-equilibrated by the
torsion moves during burn-in and along the ladder). Energies in kcal/mol, positions in Å.
"""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem

from fkc.conformers.mmff import KB_KCAL, MMFFEnergy
from fkc.datasets.smiles import embed_etkdg, mol_label
from fkc.experts.boltzmann import BoltzmannExpert
from fkc.sampler.torsion_moves import TorsionSet


def mmff_energy_and_forces(energy: MMFFEnergy):
    """``x (n, n_atoms, 3) -> (E (n,), F = -dE/dx (n, n_atoms, 3))`` for
    :class:`~fkc.experts.boltzmann.BoltzmannExpert`; non-finite positions give ``E = +inf``
    (zero density, so a move there is rejected) and ``F = 0``. The function's ``calls``
    attribute counts the configurations evaluated."""

    def energy_and_forces(x: np.ndarray):
        energy_and_forces.calls += x.shape[0]
        u = np.full(x.shape[0], np.inf)
        f = np.zeros_like(x)
        for i, xi in enumerate(x):
            if np.isfinite(xi).all():
                e, g = energy.energy_grad(xi)
                if np.isfinite(e) and np.isfinite(g).all():
                    u[i], f[i] = e, -g
        return u, f

    energy_and_forces.calls = 0
    return energy_and_forces


def mmff_expert(energy: MMFFEnergy, temperature: float, process) -> BoltzmannExpert:
    """``exp(-E_MMFF94(x) / (k_B T))`` as an expert on ``(n_atoms, 3)`` Å coordinates with the
    model's noise ``process`` (for its CoM-free projection; the expert is the ``t = 0``
    density)."""
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0 K, got {temperature!r}")
    return BoltzmannExpert(mmff_energy_and_forces(energy), KB_KCAL * float(temperature), process,
                           (energy.n_atoms, 3))


def single_bond_torsions(mol: Chem.Mol) -> TorsionSet | None:
    """Torsions about the single, non-ring bonds of ``mol`` (explicit hydrogens) whose atoms both
    have another neighbour (methyl and hydroxyl rotors included; double, triple and aromatic bonds
    left out so E/Z stereo is kept). ``None`` if there is none (rigid molecules)."""
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    if not bonds:
        return None
    try:
        ts = TorsionSet.from_bonds(bonds, mol.GetNumAtoms())
    except ValueError:  # no rotatable bond at all
        return None
    keep = [k for k, (i, j) in enumerate(ts.axes.tolist())
            if mol.GetBondBetweenAtoms(i, j).GetBondType() == Chem.BondType.SINGLE]
    if not keep:
        return None
    idx = torch.tensor(keep, dtype=torch.long)
    return TorsionSet(ts.axes[idx], ts.moving[idx])


def restrict_to_stereo(x: np.ndarray, ok: np.ndarray, generator: torch.Generator,
                       label: str) -> tuple[np.ndarray, int]:
    """Replace the conformers of ``x (n, n_atoms, 3)`` with ``ok[i] = False`` by copies of right
    ones drawn uniformly with replacement (the start distribution restricted to the right
    stereoisomer). Returns ``(x, n_replaced)``; raises ``ValueError`` naming the molecule if no
    conformer is right."""
    ok = np.asarray(ok, dtype=bool)
    good = np.flatnonzero(ok)
    if good.size == 0:
        raise ValueError(f"none of the {x.shape[0]} start conformers of {label!r} has the "
                         "input's stereochemistry (even after mirroring); use start='auto' "
                         "(ETKDGv3 conformers in their place) or start='etkdg'")
    bad = np.flatnonzero(~ok)
    if bad.size:
        pick = torch.randint(good.size, (bad.size,), generator=generator,
                             device=generator.device).cpu().numpy()
        x = x.copy()
        x[bad] = x[good[pick]]
    return x, int(bad.size)


def model_start(expert, energy: MMFFEnergy, mol: Chem.Mol, n: int, *,
                generator: torch.Generator, noise="target", n_steps: int = 200,
                start_relax_iters: int = 200, fill: str = "copies", seed: int = 0,
                progress: bool = False) -> tuple[np.ndarray, dict]:
    """Steps 1-3 of the module docstring: ``n`` start conformers ``(n, n_atoms, 3)`` Å (CoM at 0)
    from the model at its training temperature (``n_steps`` reverse-SDE steps, no weights),
    MMFF-minimised (``start_relax_iters`` iterations), mirrored where only the mirror image has the
    input's stereo. Those that still have the wrong stereo (or non-finite positions) are
    replaced: ``fill="copies"`` by copies of right ones (:func:`restrict_to_stereo`; raises if
    there is none), ``fill="etkdg"`` by MMFF-minimised ETKDGv3 conformers (:func:`etkdg_start` with ``seed``), which keep the
    start diverse when the model gets the stereo of few conformers right.

    Returns ``(x, props)`` with ``fkc_stereo_ok_raw_fraction`` (the model's raw conformers),
    ``fkc_n_mirrored``, ``fkc_n_stereo_replaced`` and ``fkc_score_evaluations``.
    """
    from fkc.conformers.generate import stereo_fix, stereo_ok
    from fkc.sampler import sample

    if isinstance(start_relax_iters, bool) or not isinstance(start_relax_iters, int) \
            or start_relax_iters < 0:
        raise ValueError(f"start_relax_iters must be an integer >= 0, got {start_relax_iters!r}")
    if fill not in ("copies", "etkdg"):
        raise ValueError(f"fill must be 'copies' or 'etkdg', got {fill!r}")
    res = sample(expert, n, n_steps=n_steps, noise=noise, correct=False, grid="edm",
                 denoise=True, generator=generator, progress=progress)
    x = res.samples.detach().cpu().double().numpy()
    n_raw_ok = sum(stereo_ok(mol, xi) for xi in x)
    for i in range(n):
        if np.isfinite(x[i]).all():  # non-finite ones stay so: never the right stereo
            x[i], _ = energy.minimize(x[i], max_iters=start_relax_iters)
    _, n_mirrored = stereo_fix(mol, x, apply=True)
    ok = np.array([stereo_ok(mol, xi) for xi in x])
    if fill == "copies":
        x, n_replaced = restrict_to_stereo(x, ok, generator, mol_label(mol))
    else:
        n_replaced = int((~ok).sum())
        if n_replaced:
            x[~ok] = etkdg_start(energy, mol, n_replaced, seed=seed,
                                 start_relax_iters=start_relax_iters)[0]
    x = x - x.mean(axis=1, keepdims=True)
    props = {"fkc_stereo_ok_raw_fraction": n_raw_ok / n, "fkc_n_mirrored": float(n_mirrored),
             "fkc_n_stereo_replaced": float(n_replaced),
             "fkc_score_evaluations": float((n_steps + 1) * n)}
    return x, props


def etkdg_start(energy: MMFFEnergy, mol: Chem.Mol, n: int, *, seed: int,
                start_relax_iters: int = 200) -> tuple[np.ndarray, dict]:
    """``n`` start conformers ``(n, n_atoms, 3)`` Å (CoM at 0) from RDKit ETKDGv3 (seeded; it
    enforces the input's stereo), MMFF-minimised; fewer embeddings than ``n`` are cycled.
    Returns ``(x, props)`` like :func:`model_start` (no score evaluations)."""
    from fkc.conformers.generate import stereo_ok

    emb = embed_etkdg(mol, n, seed, min_confs=1)
    confs = list(emb.GetConformers())
    relaxed = [energy.minimize(c.GetPositions(), max_iters=start_relax_iters)[0] for c in confs]
    x = np.stack([relaxed[i % len(relaxed)] for i in range(n)])
    ok = np.array([stereo_ok(mol, xi) for xi in x])
    x, n_replaced = restrict_to_stereo(x, ok, torch.Generator().manual_seed(seed),
                                       mol_label(mol))
    props = {"fkc_stereo_ok_raw_fraction": float(ok.mean()), "fkc_n_mirrored": 0.0,
             "fkc_n_stereo_replaced": float(n_replaced), "fkc_score_evaluations": 0.0}
    return x - x.mean(axis=1, keepdims=True), props


def temper_mmff(x: np.ndarray, energy: MMFFEnergy, mol: Chem.Mol, *, t_start: float,
                temperature: float, process, generator: torch.Generator, correct: bool = True,
                tempering_steps: int = 100, mcmc_steps: int = 2, mcmc_step_size: float = 0.5,
                torsion_steps: int = 2, burn_in: int = 200, t: float = 1e-3,
                ess_threshold: float = 0.5, final_resample: bool = False,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Step 4 of the module docstring: SMC tempering of conformers ``x (n, n_atoms, 3)`` Å, taken
    as samples of MMFF94 at ``t_start`` K, to MMFF94 at ``temperature`` K.

    Args:
        process: a noise process on CoM-free ``(n_atoms, 3)`` coordinates (the model's; only its
            projection and ``sigma_t`` at ``t`` are used).
        tempering_steps, mcmc_steps, mcmc_step_size, torsion_steps, burn_in, ess_threshold,
            final_resample: as in :func:`fkc.temper` (torsions: :func:`single_bond_torsions`);
            ``correct=False`` keeps the moves but drops weights and resampling.
        t: the (small) time of the path; the MALA step scales with ``sigma_t^2``.

    Returns ``(x (n, n_atoms, 3), log_weights (n,) (zeros if not correct), props)``; props:
    ``fkc_n_resampling``, ``fkc_min_ess``, ``fkc_log_z`` (``log Z_T / Z_start``),
    ``fkc_force_field_evaluations``, ``fkc_mcmc_acceptance``, ``fkc_torsion_acceptance``,
    ``fkc_n_torsions``, ``fkc_mcmc_steps``, ``fkc_tempering_steps``, ``fkc_torsion_steps``.
    """
    from fkc.compose import anneal
    from fkc.sampler.tempering import temper

    for name, v in (("tempering_steps", tempering_steps), ("mcmc_steps", mcmc_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"tempering on MMFF94 needs {name} >= 1, got {v!r}")
    if not (np.isfinite(t_start) and t_start > 0):
        raise ValueError(f"t_start must be finite and > 0 K, got {t_start!r}")
    n = x.shape[0]
    torsions = single_bond_torsions(mol)
    ff = mmff_expert(energy, t_start, process)
    target = anneal(ff, t_start / float(temperature))
    x0 = torch.as_tensor(np.asarray(x, dtype=np.float64), device=generator.device)
    res = temper(target, x0, t=t, n_steps=tempering_steps, mcmc_steps=mcmc_steps,
                 mcmc_step_size=mcmc_step_size, burn_in=burn_in, torsions=torsions,
                 torsion_steps=torsion_steps if torsions is not None else 0,
                 ess_threshold=ess_threshold if correct else 0.0,
                 final_resample=final_resample and correct, generator=generator,
                 progress=progress)
    xs = res.samples.detach().cpu().double().numpy()
    lw = res.log_weights.double().cpu().numpy() if correct else np.zeros(n)
    ta = res.torsion_acceptance
    props = {"fkc_n_resampling": int(res.resampled[:-1].sum()),
             "fkc_min_ess": float(res.ess.min()),
             "fkc_log_z": float(res.log_z) if correct else float("nan"),
             "fkc_force_field_evaluations": float(ff.energy_and_forces.calls),
             "fkc_mcmc_steps": float(mcmc_steps), "fkc_tempering_steps": float(tempering_steps),
             "fkc_torsion_steps": float(torsion_steps if torsions is not None else 0),
             "fkc_n_torsions": float(0 if torsions is None else len(torsions)),
             "fkc_mcmc_acceptance": float(np.nanmean(res.acceptance.numpy())),
             "fkc_torsion_acceptance": (float(np.nanmean(ta.numpy())) if ta is not None
                                        else float("nan"))}
    return xs, lw, props


START = ("auto", "model", "etkdg")


def temper_conformers(expert, energy: MMFFEnergy, mol: Chem.Mol, n: int, *, t_train: float,
                      temperature: float, generator: torch.Generator, seed: int = 0,
                      start: str = "auto", noise="target", n_steps: int = 200,
                      start_relax_iters: int = 200, progress: bool = False,
                      **kwargs) -> tuple[np.ndarray, np.ndarray, dict]:
    """Start conformers, then :func:`temper_mmff` from ``t_train`` to ``temperature``
    (``kwargs``: those of :func:`temper_mmff`).

    ``start``: ``"model"`` (:func:`model_start`; wrong-stereo conformers replaced by copies of
    right ones, raises if there is none), ``"etkdg"`` (:func:`etkdg_start`, no model) or
    ``"auto"`` (the model's conformers with the right stereo, MMFF-minimised ETKDGv3 conformers in
    place of the others: a molecule with many stereocentres, whose stereo the model rarely gets
    right, still starts from diverse conformers). ``props["fkc_start"]`` records the source:
    ``"model"``, ``"etkdg"`` or ``"model+etkdg"`` (how many from ETKDG:
    ``fkc_n_stereo_replaced``). Returns ``(x, log_weights, props)``.
    """
    if start not in START:
        raise ValueError(f"start must be one of {START}, got {start!r}")
    if start == "etkdg":
        x, props = etkdg_start(energy, mol, n, seed=seed, start_relax_iters=start_relax_iters)
        used = "etkdg"
    else:
        x, props = model_start(expert, energy, mol, n, generator=generator, noise=noise,
                               n_steps=n_steps, start_relax_iters=start_relax_iters,
                               fill="copies" if start == "model" else "etkdg", seed=seed,
                               progress=progress)
        used = "model+etkdg" if start == "auto" and props["fkc_n_stereo_replaced"] else "model"
    x, lw, more = temper_mmff(x, energy, mol, t_start=t_train, temperature=temperature,
                              process=expert.process, generator=generator, progress=progress,
                              **kwargs)
    return x, lw, {**props, **more, "fkc_n_particles": float(n), "fkc_start": used}
