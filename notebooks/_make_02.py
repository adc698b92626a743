"""Writes notebooks/02_lj13_annealing.ipynb (run: python notebooks/_make_02.py)."""

from _nb import code, md, write

md(r"""
# LJ-13: temperature annealing of a trained score model with FKC

A score model trained on Boltzmann samples of the 13-particle Lennard-Jones cluster at $T_{train} = 2$
represents $q \propto e^{-E/T_{train}}$. The density at a lower temperature $T$ is
$q^\beta$ with $\beta = T_{train}/T$. We sample it with the Feynman–Kac corrected sampler
(`fkc.anneal(expert, beta)`) and with the uncorrected sampler (same drift, noise and seed, no
weights), for the target-score SDE and the tempered-noise SDE, and compare with parallel-tempering
reference samples at $T$ (`datasets/lj13/`).

This notebook runs in CI at a **small size** (128 particles, 200 steps), so its numbers are noisy;
the README table (1000 particles, 500 steps, 3 seeds; `benchmarks/lj13_annealing_table.py`) is the
measurement. Settings that matter (measured, see the README): an EDM-style time grid that is
dense at small noise (`grid="edm"`) and a final Tweedie denoising step (`denoise=True`) reduce the
energy bias of every sampler; FKC needs enough steps (at 60 uniform steps its weights are
dominated by discretisation error).
""")
code(r"""
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import fkc
from fkc.experts import ScoreModelExpert
from fkc.metrics import evaluate_samples
from fkc.systems.reference import load_reference

torch.set_num_threads(1)
ROOT = Path.cwd() if (Path.cwd() / "models").exists() else Path.cwd().parent
CKPT = ROOT / "models/lj13-egnn-T2/last.safetensors"
T = 1.5                        # target temperature
N, STEPS, SEEDS = 128, 200, (0, 1, 2)   # CI size; the README table uses 1000 particles, 500 steps
expert = ScoreModelExpert.from_checkpoint(CKPT)
T_train = expert.metadata["training_temperature"]
beta = T_train / T
ref = load_reference(ROOT / f"datasets/lj13/T{T}.npz")
ref_train = load_reference(ROOT / "datasets/lj13/T2.0.npz")
system = ref.system()
print(f"T_train = {T_train}, T = {T}, beta = {beta:.3f}; reference: {len(ref.x)} samples")
""")
md(r"""
## FKC vs uncorrected

`noise="target"` is the target-score SDE (full noise, drift with $\beta s$); `noise="tempered"`
scales the noise by $1/\beta$. Each pair of runs shares seed, drift and noise.
""")
code(r"""
def run(noise, correct, seed=0, n=N):
    return fkc.sample(fkc.anneal(expert, beta), n, n_steps=STEPS, noise=noise, correct=correct,
                      grid="edm", denoise=True, generator=torch.Generator().manual_seed(seed),
                      progress=False)

runs = {}
for noise in ("target", "tempered"):
    for correct in (True, False):
        label = f"{noise}, {'FKC' if correct else 'uncorrected'}"
        start = time.perf_counter()
        runs[label] = run(noise, correct)
        print(f"{label}: {time.perf_counter() - start:.1f} s")

rows = {label: evaluate_samples(r.samples.numpy(), ref, system) for label, r in runs.items()}
rows["reference T=2 (no annealing)"] = evaluate_samples(ref_train.x[:N], ref, system)
print(f"{'':<30}{'dist W2':>10}{'energy W1':>11}{'energy W2':>11}")
for label, m in rows.items():
    print(f"{label:<30}{m['distance_w2']:>10.3f}{m['energy_w1']:>11.2f}{m['energy_w2']:>11.2f}")
""")
code(r"""
fig, ax = plt.subplots(1, 2, figsize=(12, 3.8))
energy = lambda x: system.energy(torch.as_tensor(x, dtype=torch.float64)).numpy()
bins = np.linspace(-70, 40, 60)
ax[0].hist(ref.energy, bins, density=True, alpha=0.4, label=f"reference T={T}")
ax[0].hist(ref_train.energy, bins, density=True, histtype="step", color="gray", label="reference T=2")
for label, r in runs.items():
    ax[0].hist(energy(r.samples.numpy()), bins, density=True, histtype="step", lw=2, label=label)
ax[0].set_xlabel("energy"); ax[0].legend(fontsize=8)
for label, r in runs.items():
    if "FKC" in label:
        line, = ax[1].plot(r.times.numpy(), r.ess.numpy() / N, label=label)
        res = r.resampled.numpy()
        ax[1].plot(r.times.numpy()[res], r.ess.numpy()[res] / N, "x", color=line.get_color())
ax[1].invert_xaxis(); ax[1].set_xlabel("t (x: resampled)"); ax[1].set_ylabel("ESS / n"); ax[1].legend()
plt.tight_layout()
""")
md(r"""
## Spread of log Z across seeds

`log_z` estimates $\log \int q_{t_{min}}(x)^\beta\,dx$ relative to the model's prior; its spread across
seeds shows how hard the annealing is at this particle count.
""")
code(r"""
log_z = [run("tempered", True, seed=s).log_z for s in SEEDS]
print("log Z per seed:", np.round(log_z, 3), " sd:", np.std(log_z, ddof=1).round(3))
""")

write("02_lj13_annealing.ipynb")
