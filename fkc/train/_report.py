"""Training-curve plot from a run's ``log.jsonl`` (used for model cards)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_training_curve(log_path: str | Path, out: str | Path) -> Path:
    """Plot training loss and (EMA) validation loss against the step; writes a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, valid = [], []
    for line in Path(log_path).read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            train.append((rec["step"], rec["loss"]))
        if "valid_loss_ema" in rec:
            valid.append((rec["step"], rec["valid_loss_ema"]))
    if not train:
        raise ValueError(f"{log_path} has no training-loss records")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*train, strict=True), lw=0.8, label="training loss")
    if valid:
        ax.plot(*zip(*valid, strict=True), "o-", label="validation loss (EMA weights)")
    ax.set_xlabel("step")
    ax.set_ylabel("denoising loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
