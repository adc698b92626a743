"""Writes notebooks/03_alanine_dipeptide.ipynb (run: python notebooks/_make_03.py)."""

from _nb import code, md, write

md(r"""
# Alanine dipeptide: from 800 K to 300 K with FKC

A canonical-frame transformer score model (`models/aldp-ft-T800`: SE(3)-equivariant and chiral by
construction, conditioned on the molecular graph) was trained on Langevin MD of alanine dipeptide at $T_{train} = 800$ K (AMBER ff99SB + OBC implicit water, OpenMM). It represents
$q \propto e^{-E/k_B T_{train}}$; the 300 K Boltzmann density is $q^\beta$ with
$\beta = 800/300 \approx 2.67$. We sample it with the Feynman–Kac corrected sampler
(`fkc.anneal(expert, beta)`, target-score SDE) and with the uncorrected sampler (same drift,
noise and seed, no weights), and compare both with 300 K MD on backbone dihedrals
(Ramachandran plots, torus W2, Ramachandran KL), energies (W1/W2 under the force field), the
chirality at C$\alpha$ and bond lengths.

This notebook runs in CI at a **small size** (few particles and steps) with the shipped
subsamples of the MD data (`datasets/aldp/T300_sub.npz`, `T800_sub.npz`), so its numbers are
noisy; the README table (`benchmarks/aldp_annealing_table.py`, 3 seeds, full MD reference) is the
measurement. Positions of the model are in angstrom; `fkc.systems.samples_in_nm` converts them
for OpenMM.
""")
code(r"""
import time
from pathlib import Path

import numpy as np
import torch

import fkc
from fkc.experts import ScoreModelExpert
from fkc.metrics import evaluate_aldp, phi_psi, ramachandran_free_energy_plot, reflect_to_l
from fkc.systems import AlanineDipeptide, load_md, samples_in_nm, save_trajectory

torch.set_num_threads(1)
ROOT = Path.cwd() if (Path.cwd() / "models").exists() else Path.cwd().parent
expert = ScoreModelExpert.from_checkpoint(ROOT / "models/aldp-ft-T800/last.safetensors")
T_train, T = expert.metadata["training_temperature"], 300.0
beta = T_train / T
N, STEPS = 64, 100            # CI size; the README table uses more particles and steps
system = AlanineDipeptide()
md300 = load_md(ROOT / "datasets/aldp/T300_sub.npz")
md800 = load_md(ROOT / "datasets/aldp/T800_sub.npz")
print(f"T_train = {T_train:g} K, T = {T:g} K, beta = {beta:.3f}; "
      f"MD reference: {md300.n_frames} frames at 300 K, {md800.n_frames} at 800 K")
""")
md(r"""
## FKC vs uncorrected

Both runs share the seed, the drift $\beta\,s_\theta$ (target-score SDE: full noise) and the noise
draws; FKC adds the log-weights and resamples when the ESS drops below half the particles.
""")
code(r"""
runs = {}
for correct in (False, True):
    label = "FKC" if correct else "uncorrected"
    start = time.perf_counter()
    runs[label] = fkc.sample(fkc.anneal(expert, beta), N, n_steps=STEPS, noise="target",
                             correct=correct, grid="edm", denoise=True,
                             generator=torch.Generator().manual_seed(0), progress=False)
    print(f"{label}: {time.perf_counter() - start:.1f} s, "
          f"{int(runs[label].resampled.sum())} resamplings")

samples = {label: samples_in_nm(r.samples.numpy(), expert.metadata) for label, r in runs.items()}
rows = {"MD 800 K (no annealing)": evaluate_aldp(md800.x[::max(1, md800.n_frames // N)][:N], md300, system)}
rows.update({label: evaluate_aldp(x, md300, system, nonfinite="drop", fix_chirality=True)
             for label, x in samples.items()})
cols = ["torus_w2", "rama_kl", "energy_w1", "energy_w2", "chirality_L", "bond_stretch",
        "pop_beta", "pop_alphaR", "pop_alphaL"]
print(f"{'':<26}" + "".join(f"{c:>13}" for c in cols))
for label, m in rows.items():
    print(f"{label:<26}" + "".join(f"{m[c]:>13.3f}" for c in cols))
print(f"{'MD 300 K':<26}" + " " * 52 + "".join(
    f"{m[c + '_reference']:>13.3f}" for c in cols[4:]))
""")
md(r"""
## SMC tempering with torsion moves, and on to the force field

With an energy-parameterised model (`models/aldp-energy-em-T800`: it has a log density
$-E_\theta(x, t)$) the annealing can run at one small time $t_{min}$ instead of along the
diffusion (`fkc anneal --method tempering`): the model's own reverse SDE at $\beta = 1$, then SMC
along the ladder $q^{1 + \lambda(\beta - 1)}$ with MALA moves and Metropolis **torsion moves**
(rigid rotations about the rotatable bonds of the molecular graph, `fkc.TorsionSet`), which carry
particles between the basins. `force_field_steps` continues from the model's $q^\beta$ to the force
field's $e^{-U/k_B T}$ itself (OpenMM energies and forces), which removes the model's own error.
At this size (64 particles, 40 rungs) the basin shares are noisy; the README table uses 512
particles, 150 rungs and 3 seeds.
""")
code(r"""
from fkc.annealing import anneal_model

energy_model = ROOT / "models/aldp-energy-em-T800"
for label, ff_steps in (("tempering + torsion", 0), ("... + force field", 15)):
    start = time.perf_counter()
    s = anneal_model(energy_model, T, N, seed=0, n_steps=60, method="tempering",
                     tempering_steps=40, mcmc_steps=2, mcmc_adapt=True, burn_in=10,
                     torsion_steps=2, force_field_steps=ff_steps, progress=False)
    samples[label] = samples_in_nm(s.x, s.metadata)
    rows[label] = evaluate_aldp(samples[label], md300, system, nonfinite="drop", fix_chirality=True)
    print(f"{label}: {time.perf_counter() - start:.1f} s, {s.metadata['score_evaluations']:,} "
          f"model evaluations, torsion acceptance {np.nanmean(s.diagnostics['torsion_acceptance']):.2f}")
print(f"{'':<26}" + "".join(f"{c:>13}" for c in cols))
for label, m in rows.items():
    print(f"{label:<26}" + "".join(f"{m[c]:>13.3f}" for c in cols))
""")
md(r"""
`chirality_L` is the raw fraction of L samples. The network works in the right-handed frame of
Cα, C and N, so a mirror image is a different input and the model has learned the L handedness
(raw L fraction 1.0). The metrics mirror any D sample to L (`fix_chirality=True`,
`fkc.metrics.reflect_to_l`; the force field is reflection invariant), which changes nothing here.

## Ramachandran free-energy maps

$F(\phi, \psi) = -\log p$ in units of each ensemble's own $k_B T$; dashed lines are the basin
boundaries (β/C5 + C7eq, αR, αL).
""")
code(r"""
panels = {"MD 300 K": phi_psi(md300.x, system), "MD 800 K (training)": phi_psi(md800.x, system)}
panels.update({label: phi_psi(reflect_to_l(x[np.isfinite(x).all(axis=(1, 2))], system)[0], system)
               for label, x in samples.items()})
ramachandran_free_energy_plot(panels, bins=36)
""")
md(r"""
## Samples as a trajectory

`save_trajectory` writes DCD (plus a PDB topology), PDB, XTC or HDF5 through mdtraj, for VMD,
PyMOL, MDAnalysis or mdtraj (`fkc anneal ... --trajectory samples.dcd` does the same from the
command line).
""")
code(r"""
import tempfile

import mdtraj

with tempfile.TemporaryDirectory() as d:
    paths = save_trajectory(samples["FKC"], Path(d) / "fkc_300K.dcd", system)
    traj = mdtraj.load(str(paths[0]), top=str(paths[1]))
    print(traj)
""")

write("03_alanine_dipeptide.ipynb")
