"""``fkc demo`` (default workload): anneal the shipped LJ-13 score model from T = 2 to T = 1.5.

The EGNN in ``models/lj13-egnn-T2`` was trained on parallel-tempering samples at ``T_train = 2``;
its density at ``T`` is ``q^beta`` with ``beta = T_train / T``. The demo samples ``q^beta`` with
the FKC sampler and with the uncorrected sampler (same SDE, seed and steps), evaluates both
against the parallel-tempering reference at ``T`` (``datasets/lj13/T{T}.npz``) with
:func:`fkc.metrics.evaluate_samples`, prints a table and writes a PNG (energy histograms and the
FKC run's ESS trace). The default size takes about a minute on one CPU core; numbers at this
size are noisy (see the README table for 1000 particles, 500 steps and three seeds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LJDemoRow:
    sampler: str
    distance_w2: float
    energy_w1: float
    energy_w2: float
    energy_mean: float
    seconds: float


def find_repo_file(rel: str) -> Path:
    """``rel`` under the current directory or the source checkout that holds this package."""
    for base in (Path.cwd(), REPO):
        if (base / rel).exists():
            return base / rel
    raise FileNotFoundError(
        f"{rel} not found under {Path.cwd()} or {REPO}; the LJ-13 demo needs the repository's "
        "models/ and datasets/ folders (install with `pip install -e .` from a clone, or run "
        "from its root), or use `fkc demo --workload gmm`")


def run_lj13_demo(out: str | Path = "fkc_demo.png", n_particles: int = 256, n_steps: int = 200,
                  temperature: float = 1.5, noise: str = "tempered", seed: int = 0,
                  progress: bool = True) -> list[LJDemoRow]:
    """Run the demo; returns the table rows and writes ``out`` (PNG)."""
    from .compose import anneal
    from .experts.score_model import ScoreModelExpert
    from .metrics import evaluate_samples
    from .sampler import sample
    from .systems.reference import load_reference

    expert = ScoreModelExpert.from_checkpoint(find_repo_file("models/lj13-egnn-T2/last.safetensors"))
    t_train = float(expert.metadata["training_temperature"])
    ref = load_reference(find_repo_file(f"datasets/lj13/T{float(temperature):.1f}.npz"))
    ref_train = load_reference(find_repo_file(f"datasets/lj13/T{t_train:.1f}.npz"))
    system = ref.system()
    target = anneal(expert, t_train / temperature)
    rows, results = [], {}
    for label, correct in (("FKC", True), ("uncorrected", False)):
        start = time.perf_counter()
        res = sample(target, n_particles, n_steps=n_steps, noise=noise, correct=correct,
                     grid="edm", denoise=True, generator=torch.Generator().manual_seed(seed),
                     progress=progress)
        secs = time.perf_counter() - start
        results[label] = res
        m = evaluate_samples(res.samples.detach().numpy(), ref, system)
        rows.append(LJDemoRow(label, m["distance_w2"], m["energy_w1"], m["energy_w2"],
                              m["energy_mean"], secs))
    # what no annealing at all would give: reference samples at T_train
    m = evaluate_samples(ref_train.x[:n_particles], ref, system)
    rows.append(LJDemoRow(f"reference T={t_train:g} (no annealing)", m["distance_w2"],
                          m["energy_w1"], m["energy_w2"], m["energy_mean"], 0.0))
    rows.append(LJDemoRow(f"reference T={temperature:g}", 0.0, 0.0, 0.0,
                          float(np.mean(ref.energy)), 0.0))
    _plot(Path(out), results, ref, ref_train, system, temperature, t_train, n_particles)
    return rows


def format_lj13_table(rows: list[LJDemoRow]) -> str:
    head = (f"{'sampler':<30}{'distance W2':>12}{'energy W1':>11}{'energy W2':>11}"
            f"{'mean E':>9}{'time s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.sampler:<30}{r.distance_w2:>12.3f}{r.energy_w1:>11.2f}"
                     f"{r.energy_w2:>11.2f}{r.energy_mean:>9.2f}{r.seconds:>8.1f}")
    return "\n".join(lines)


def _plot(out: Path, results, ref, ref_train, system, temperature, t_train, n) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    lo, hi = np.percentile(np.concatenate([ref.energy, ref_train.energy]), [0.1, 99.9])
    bins = np.linspace(lo, hi, 50)
    ax[0].hist(ref.energy, bins, density=True, alpha=0.35, label=f"reference T={temperature:g}")
    ax[0].hist(ref_train.energy, bins, density=True, histtype="step", color="gray",
               label=f"reference T={t_train:g} (training)")
    for label, res in results.items():
        e = system.energy(res.samples.detach().to(torch.float64)).numpy()
        ax[0].hist(e, bins, density=True, histtype="step", lw=2, label=label)
    ax[0].set_xlabel("energy")
    ax[0].set_ylabel("density")
    ax[0].legend(fontsize=8)
    r = results["FKC"]
    ax[1].plot(r.times.numpy(), r.ess.numpy() / n, label="ESS / n")
    res = r.resampled.numpy()
    ax[1].plot(r.times.numpy()[res], r.ess.numpy()[res] / n, "rx", label="resampled")
    ax[1].invert_xaxis()
    ax[1].set_xlabel("diffusion time t (1 = noise)")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"LJ-13: model trained at T={t_train:g}, annealed to T={temperature:g} ({n} particles)")
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
