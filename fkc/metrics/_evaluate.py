"""The evaluation table and histogram plots used by ``fkc evaluate``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from fkc.metrics._validation import as_float64, check_clouds
from fkc.metrics._wasserstein import histogram_tv, pooled_distances, wasserstein_1d
from fkc.systems._base import System


def _clouds(x, what: str) -> np.ndarray:
    """Reference-like objects with an ``x`` attribute (``ReferenceData``) are accepted."""
    return as_float64(getattr(x, "x", x), what)


def _energies(system: System, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return system.energy(torch.from_numpy(x)).numpy()


def evaluate_samples(
    samples,
    reference,
    system: System,
    *,
    tv_bins: int = 100,
    nonfinite: str = "raise",
) -> dict[str, float | int]:
    """Metrics of ``samples`` against ``reference`` for ``system``.

    Args:
        samples: ``(n, n_atoms, n_dim)`` array or tensor.
        reference: ``(m, n_atoms, n_dim)`` array/tensor, or an object with an ``x`` attribute
            (e.g. :class:`fkc.systems.reference.ReferenceData`).
        system: its ``energy`` (float64) gives the energies of both sets.
        tv_bins: bins of the distance histogram for TV: equal-width on the range of the
            reference's pooled distances, plus one overflow bin on each side.
        nonfinite: ``"raise"`` (default) if a sample has non-finite coordinates or energy;
            ``"drop"`` removes such samples and reports how many in ``n_dropped``.

    Returns:
        ``energy_w1``, ``energy_w2`` (1-D W_p of the energies, W2 = sqrt of the OT cost),
        ``distance_w2`` (W2 of pooled interatomic distances), ``distance_tv`` (TV of their
        histograms), ``energy_mean``, ``energy_mean_reference``, ``n_samples``,
        ``n_reference``, ``n_dropped``.
    """
    if nonfinite not in ("raise", "drop"):
        raise ValueError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")
    x, ref = _clouds(samples, "samples"), _clouds(reference, "reference")
    shape = (system.n_atoms, system.n_dim)
    for arr, what in ((x, "samples"), (ref, "reference")):
        if arr.ndim != 3 or arr.shape[1:] != shape:
            raise ValueError(f"{what} must have shape (n, {shape[0]}, {shape[1]}) for "
                             f"{system.name}, got {arr.shape}")  # fmt: skip
    ref, _ = check_clouds(ref, ref, "reference", "reference")
    e_ref = _energies(system, ref)
    ok = np.isfinite(x).all(axis=(1, 2))
    e = np.full(len(x), np.nan)
    if ok.any():
        e[ok] = _energies(system, x[ok])
    ok &= np.isfinite(e)
    n_bad = int((~ok).sum())
    if n_bad and nonfinite == "raise":
        raise ValueError(
            f"{n_bad} of {len(x)} samples have non-finite coordinates or energy; pass "
            "nonfinite='drop' to drop them (and report n_dropped)"
        )
    x, e = x[ok], e[ok]
    if len(x) == 0:
        raise ValueError("no finite samples left to evaluate")
    d, d_ref = pooled_distances(x), pooled_distances(ref)
    return {
        "energy_w1": wasserstein_1d(e, e_ref, p=1),
        "energy_w2": wasserstein_1d(e, e_ref, p=2),
        "distance_w2": wasserstein_1d(d, d_ref, p=2),
        "distance_tv": histogram_tv(d, d_ref, bins=tv_bins, range=(d_ref.min(), d_ref.max())),
        "energy_mean": float(e.mean()),
        "energy_mean_reference": float(e_ref.mean()),
        "n_samples": int(len(x)),
        "n_reference": int(len(ref)),
        "n_dropped": n_bad,
    }


def plot_histograms(
    samples,
    reference,
    system: System,
    out_dir: str | os.PathLike,
    *,
    prefix: str = "",
    bins: int = 100,
    title: str | None = None,
) -> dict[str, Path]:
    """Write energy and interatomic-distance histograms (PNG, Agg; no pyplot global state).

    Args:
        samples: ``(n, n_atoms, n_dim)`` array/tensor, or ``{label: array}`` for several sets.
        reference: ``(m, n_atoms, n_dim)`` array/tensor or an object with ``x``.
        system: gives energies.
        out_dir: created if needed; files ``{prefix}energy_hist.png`` and
            ``{prefix}distance_hist.png``.
        bins: equal-width bins over the reference's 0.1-99.9 % range widened by 25 % of its width
            on each side (energies) or over [0, 1.25 max reference distance] (distances).
            Samples outside the range are not drawn; the legend counts them.
        title: figure title (default ``system.name``).

    Returns:
        ``{"energy": path, "distance": path}``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sets = dict(samples) if isinstance(samples, Mapping) else {"samples": samples}
    ref = _clouds(reference, "reference")
    clouds = {label: _clouds(x, label) for label, x in sets.items()}
    for label, x in {**clouds, "reference": ref}.items():
        if x.ndim != 3 or x.shape[1:] != (system.n_atoms, system.n_dim):
            raise ValueError(f"{label} must have shape (n, {system.n_atoms}, {system.n_dim}), "
                             f"got {x.shape}")  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    e_ref = _energies(system, ref)
    lo, hi = np.quantile(e_ref, [0.001, 0.999])
    e_range = (lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo))
    d_ref = pooled_distances(ref)
    d_range = (0.0, 1.25 * d_ref.max())
    panels = {
        "energy": (
            "energy E(x)", e_range, e_ref,
            {k: _energies(system, x[np.isfinite(x).all(axis=(1, 2))]) for k, x in clouds.items()},
        ),
        "distance": (
            "interatomic distance", d_range, d_ref,
            {k: pooled_distances(x[np.isfinite(x).all(axis=(1, 2))]) for k, x in clouds.items()},
        ),
    }  # fmt: skip
    paths = {}
    for name, (xlabel, rng, ref_vals, values) in panels.items():
        fig = Figure(figsize=(5.5, 4.0), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        edges = np.linspace(rng[0], rng[1], bins + 1)
        ax.hist(ref_vals, edges, density=True, histtype="stepfilled", alpha=0.35, color="k",
                label=f"reference ({len(ref)} clouds)")  # fmt: skip
        for label, v in values.items():
            v = v[np.isfinite(v)]
            outside = int(((v < rng[0]) | (v > rng[1])).sum())
            extra = f", {outside} values outside" if outside else ""
            ax.hist(v, edges, density=True, histtype="step", linewidth=1.5,
                    label=f"{label} ({len(clouds[label])} clouds{extra})")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.set_title(title or system.name)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{prefix}{name}_hist.png"
        fig.savefig(path)
        paths[name] = path
    return paths
