"""Sample files: NumPy ``.npz`` written atomically (temp file + ``os.replace``).

A sample file holds ``x (n, *event_shape)`` float32, optional per-sample ``log_weights (n,)``
float64, per-step diagnostics (``times``, ``ess``, ``resampled``), ``log_z`` and a JSON
``metadata`` string (what produced it: model, temperature, noise, seed, ...). No pickles.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SampleFile:
    x: np.ndarray
    log_weights: np.ndarray | None = None
    log_z: float = float("nan")
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def save_samples(path: str | os.PathLike, samples: SampleFile) -> Path:
    """Write ``samples`` to ``path`` (``.npz``) atomically; returns the path."""
    path = Path(path)
    arrays = {"x": np.asarray(samples.x, dtype=np.float32), "log_z": np.float64(samples.log_z),
              "metadata": np.array(json.dumps(samples.metadata, sort_keys=True))}
    if samples.log_weights is not None:
        arrays["log_weights"] = np.asarray(samples.log_weights, dtype=np.float64)
    for k, v in samples.diagnostics.items():
        arrays[f"diag_{k}"] = np.asarray(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_samples(path: str | os.PathLike) -> SampleFile:
    """Read a file written by :func:`save_samples` (or any npz with an ``x`` array)."""
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read sample file {path}: {e}") from e
    with f:
        if "x" not in f.files:
            raise ValueError(f"{path} has no 'x' array (found {sorted(f.files)})")
        meta = json.loads(str(f["metadata"])) if "metadata" in f.files else {}
        return SampleFile(
            x=f["x"],
            log_weights=f["log_weights"] if "log_weights" in f.files else None,
            log_z=float(f["log_z"]) if "log_z" in f.files else float("nan"),
            diagnostics={k[5:]: f[k] for k in f.files if k.startswith("diag_")},
            metadata=meta,
        )
