"""Training-curve plot from a run's ``log.jsonl`` (used for model cards)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_training_curve(log_path: str | Path, out: str | Path) -> Path:
    """Plot training loss and (EMA) validation loss against the step, plus a second panel with the
    energy-matching residual (training ``sqrt(loss_energy)``, validation sd of the residual,
    nats) when the log has one; writes a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, valid, e_train, e_valid = [], [], [], []
    for line in Path(log_path).read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            train.append((rec["step"], rec["loss"]))
        if "valid_loss_ema" in rec:
            valid.append((rec["step"], rec["valid_loss_ema"]))
        if "loss_energy" in rec:
            e_train.append((rec["step"], rec["loss_energy"] ** 0.5))
        if "valid_energy_resid_std_ema" in rec:
            e_valid.append((rec["step"], rec["valid_energy_resid_std_ema"]))
    if not train:
        raise ValueError(f"{log_path} has no training-loss records")
    if e_train:
        fig, (ax, ax_e) = plt.subplots(1, 2, figsize=(11, 3.5))
        _panel(ax_e, e_train, e_valid, ("training (batch sd)", "validation sd (EMA weights)"),
               "E_theta(x0, t0) - U/kT residual (nats)")
    else:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    _panel(ax, train, valid, ("training loss (total)", "validation loss (EMA weights)"),
           "denoising loss")
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


def _panel(ax, train, valid, labels: tuple[str, str], ylabel: str) -> None:
    """One log-scale panel: ``train`` as a line, ``valid`` (may be empty) as points, both lists
    of ``(step, value)``."""
    ax.plot(*zip(*train, strict=True), lw=0.8, label=labels[0])
    if valid:
        ax.plot(*zip(*valid, strict=True), "o-", label=labels[1])
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.legend()
