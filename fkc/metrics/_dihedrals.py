r"""Alanine-dipeptide metrics: backbone dihedrals, Ramachandran maps, basins, chirality, bonds.

Angles are radians in ``[-pi, pi)``; positions are nm, ``(n, 22, 3)``; energies kJ/mol.

* ``phi = C(ACE)-N-CA-C``, ``psi = N-CA-C-N(NME)`` (``mdtraj.compute_dihedrals``; the IUPAC
  sign convention, the same as ``mdtraj.compute_phi``/``compute_psi``).
* Torus ``W2``: the square root of the optimal-transport cost between the empirical measures on
  the flat torus ``[-pi, pi)^d`` with cost ``sum_k wrap(a_k - b_k)^2``, ``wrap(t)`` = the
  representative of ``t`` in ``[-pi, pi)`` (exact OT with POT ``ot.emd2``). Same convention as
  the other ``W2`` of :mod:`fkc.metrics` (the root, not the squared cost).
* Ramachandran histograms: ``bins x bins`` equal-width bins on ``[-pi, pi)^2`` (default 36, i.e.
  10 degrees), counts smoothed by a periodic Gaussian of ``smoothing`` bins standard deviation
  (default 1 bin; 0 = none), normalised, then a probability floor ``floor`` (default 1e-6) added
  to every bin and renormalised, so logarithms stay finite. KL and JS are in nats.
* Basins (degrees; a partition of the torus, boundaries at the density minima of 300-1000 K MD
  with ff99SB/OBC). Right-handed side ``phi in [-180, 0) or [120, 180)``, left-handed side
  ``phi in [0, 120)``:

  - ``beta`` (C5, C7eq, PPII): right-handed side, ``psi in [80, 180) or [-180, -110)``;
  - ``alphaR``: right-handed side, ``psi in [-110, 80)``;
  - ``alphaL``: left-handed side, any ``psi`` (alpha-L and C7ax; crossing into it is the slow
    ``phi`` transition).
* Chirality: the sign of the signed volume ``(N - CA) . ((C - CA) x (CB - CA))`` at the alanine
  CA; the openmmtools structure (L-alanine, CIP S) has positive volume. A mirror image has the
  opposite sign; a classical force field with fixed topology cannot change it except by passing
  through a planar CA (very high energy).
* Bond stretch: a sample counts as stretched if any of its 21 bonds has ``|r / r0 - 1| >
  tolerance`` with ``r0`` the force-field equilibrium length (default tolerance 0.15; 300 K MD
  never exceeds 0.13, 800 K MD exceeds 0.15 in about 1 % of frames).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fkc.metrics._validation import as_float64
from fkc.metrics._wasserstein import wasserstein_1d
from fkc.systems._aldp import CHIRAL_INDICES, PHI_INDICES, PSI_INDICES, AlanineDipeptide

TWO_PI = 2.0 * math.pi

#: Basin names in the order of :func:`assign_basins` labels.
BASIN_NAMES: tuple[str, ...] = ("beta", "alphaR", "alphaL")
#: Basin boundaries in degrees (see the module docstring).
BASIN_BOUNDARIES_DEG = {"phi_left": (0.0, 120.0), "psi_alphaR": (-110.0, 80.0)}


def wrap_angle(a):
    """``a`` (radians, any shape) mapped to ``[-pi, pi)``."""
    return np.mod(np.asarray(a, dtype=np.float64) + math.pi, TWO_PI) - math.pi


def _check_angles(a, what: str, d: int | None = None) -> np.ndarray:
    arr = as_float64(a, what)
    if arr.ndim != 2 or arr.shape[0] == 0 or (d is not None and arr.shape[1] != d):
        want = f"(n, {d})" if d is not None else "(n, d)"
        raise ValueError(f"{what} must be a non-empty array of angles {want} in radians, got "
                         f"shape {arr.shape}")  # fmt: skip
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{what} has non-finite angles in {bad.size} rows (first: {bad[:5].tolist()})")
    return wrap_angle(arr)


# ---------------------------------------------------------------------- dihedrals
def phi_psi(x, system: AlanineDipeptide) -> np.ndarray:
    """Backbone dihedrals. x: ``(n, 22, 3)`` nm; returns ``(n, 2)`` float64 ``(phi, psi)`` radians
    in ``[-pi, pi)`` (computed by ``mdtraj.compute_dihedrals``)."""
    import mdtraj

    traj = system.to_mdtraj(x)
    ang = mdtraj.compute_dihedrals(traj, np.array([PHI_INDICES, PSI_INDICES]))
    return wrap_angle(ang.astype(np.float64))


def torus_w2(a, b, *, max_samples: int = 2000, seed: int = 0) -> float:
    """``W2`` between angle sets ``a: (n, d)`` and ``b: (m, d)`` on the flat torus.

    ``sqrt`` of the exact OT cost with cost ``sum_k wrap(a_k - b_k)^2`` (POT ``ot.emd2``, uniform
    weights). A set larger than ``max_samples`` is subsampled without replacement to
    ``max_samples`` points with ``numpy.random.default_rng(seed)`` (a ``max_samples^2`` float64
    cost matrix: 32 MB and about a second at 2000). Units: radians.
    """
    import ot

    if not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(f"max_samples must be an int >= 1, got {max_samples!r}")
    a, b = _check_angles(a, "a"), _check_angles(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of angles, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    if len(a) > max_samples:
        a = a[rng.choice(len(a), max_samples, replace=False)]
    if len(b) > max_samples:
        b = b[rng.choice(len(b), max_samples, replace=False)]
    cost = (wrap_angle(a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    n, m = len(a), len(b)
    value = ot.emd2(np.full(n, 1.0 / n), np.full(m, 1.0 / m), cost, numItermax=10_000_000)
    return float(math.sqrt(max(float(value), 0.0)))


# ---------------------------------------------------------------------- Ramachandran
def ramachandran_histogram(phi_psi, bins: int = 36, smoothing: float = 1.0, floor: float = 1e-6) -> np.ndarray:  # fmt: skip
    """Normalised 2-D histogram ``(bins, bins)`` of ``phi_psi: (n, 2)`` radians, ``[i_phi, i_psi]``.

    Equal-width bins on ``[-pi, pi)^2`` (bin ``i`` covers ``[-pi + i w, -pi + (i+1) w)``,
    ``w = 2 pi / bins``); counts are smoothed with a periodic Gaussian of standard deviation
    ``smoothing`` bins (``scipy.ndimage.gaussian_filter``, ``mode="wrap"``; 0 = none), normalised,
    and ``floor`` is added to every bin before renormalising (``p -> (p + floor) / (1 + bins^2
    floor)``), so every bin is positive for ``floor > 0``.
    """
    from scipy.ndimage import gaussian_filter

    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    if not (math.isfinite(smoothing) and smoothing >= 0):
        raise ValueError(f"smoothing must be a finite number of bins >= 0, got {smoothing!r}")
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"floor must be a finite probability >= 0, got {floor!r}")
    a = _check_angles(phi_psi, "phi_psi", d=2)
    idx = np.minimum(np.floor((a + math.pi) / (TWO_PI / bins)).astype(np.int64), bins - 1)
    counts = np.zeros((bins, bins))
    np.add.at(counts, (idx[:, 0], idx[:, 1]), 1.0)
    if smoothing > 0:
        counts = gaussian_filter(counts, sigma=smoothing, mode="wrap")
    p = counts / counts.sum()
    return (p + floor) / (1.0 + floor * p.size)


def _check_distributions(p, q) -> tuple[np.ndarray, np.ndarray]:
    p, q = as_float64(p, "p"), as_float64(q, "q")
    if p.shape != q.shape or p.size == 0:
        raise ValueError(f"p and q must be non-empty histograms of the same shape, got {p.shape} "
                         f"and {q.shape}")  # fmt: skip
    for arr, what in ((p, "p"), (q, "q")):
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"{what} must be finite and non-negative")
        if abs(arr.sum() - 1.0) > 1e-6:
            raise ValueError(f"{what} must sum to 1 (a normalised histogram), sums to {arr.sum()!r}")
    return p, q


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    if (q[mask] == 0).any():
        return math.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def ramachandran_kl(p, q) -> float:
    """``KL(p || q) = sum_b p_b log(p_b / q_b)`` in nats (``0 log 0 = 0``; ``inf`` if ``q_b = 0 <
    p_b``) between normalised histograms of the same shape (e.g. from
    :func:`ramachandran_histogram`; ``p`` = reference, ``q`` = model is the usual order)."""
    p, q = _check_distributions(p, q)
    return _kl(p, q)


def ramachandran_js(p, q) -> float:
    """Jensen-Shannon divergence ``(KL(p||m) + KL(q||m)) / 2``, ``m = (p + q) / 2``, in nats
    (symmetric, in ``[0, log 2]``), between normalised histograms of the same shape."""
    p, q = _check_distributions(p, q)
    m = 0.5 * (p + q)
    return 0.5 * (_kl(p, m) + _kl(q, m))


def assign_basins(phi_psi) -> np.ndarray:
    """Basin label per sample ``(n,)`` int: index into :data:`BASIN_NAMES` (module docstring)."""
    a = np.degrees(_check_angles(phi_psi, "phi_psi", d=2))
    phi, psi = a[:, 0], a[:, 1]
    lo, hi = BASIN_BOUNDARIES_DEG["phi_left"]
    left = (phi >= lo) & (phi < hi)
    lo, hi = BASIN_BOUNDARIES_DEG["psi_alphaR"]
    alpha = (psi >= lo) & (psi < hi)
    return np.where(left, 2, np.where(alpha, 1, 0))


def basin_populations(phi_psi) -> dict[str, float]:
    """Fractions of ``phi_psi: (n, 2)`` (radians) in ``beta``, ``alphaR``, ``alphaL`` (sum 1).

    Boxes (degrees): ``alphaL``: ``0 <= phi < 120``; otherwise ``alphaR`` if ``-110 <= psi <
    80``, else ``beta`` (C5/C7eq/PPII). See the module docstring.
    """
    labels = assign_basins(phi_psi)
    counts = np.bincount(labels, minlength=len(BASIN_NAMES))
    return {name: float(c / len(labels)) for name, c in zip(BASIN_NAMES, counts, strict=True)}


def ramachandran_free_energy_plot(
    panels,
    *,
    bins: int = 72,
    smoothing: float = 1.0,
    max_kT: float = 10.0,
    show_basins: bool = True,
    title: str | None = None,
    path: str | Path | None = None,
):
    """Ramachandran free-energy maps side by side (matplotlib ``Figure``, Agg; no pyplot state).

    Args:
        panels: ``{label: phi_psi (n, 2) radians}`` or one ``(n, 2)`` array.
        bins, smoothing: as in :func:`ramachandran_histogram` (no floor: empty bins are blank).
        max_kT: colour scale ``F in [0, max_kT]`` with ``F = -log p - min(-log p)`` in units of
            ``k_B T`` of each panel's own ensemble (higher values are clipped to the top colour).
        show_basins: draw the basin boundaries of :func:`basin_populations` (dashed).
        path: if given, the figure is saved there (PNG/PDF by extension).

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sets = dict(panels) if isinstance(panels, Mapping) else {"samples": panels}
    if not sets:
        raise ValueError("panels is empty")
    fig = Figure(figsize=(3.2 * len(sets) + 1.0, 3.4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(sets), squeeze=False)[0]
    edges = np.degrees(np.linspace(-math.pi, math.pi, bins + 1))
    mesh = None
    for ax, (label, pp) in zip(axes, sets.items(), strict=True):
        n = len(_check_angles(pp, label, d=2))
        p = ramachandran_histogram(pp, bins=bins, smoothing=smoothing, floor=0.0)
        with np.errstate(divide="ignore"):
            f = -np.log(p)
        f = f - f[np.isfinite(f)].min()
        f[~np.isfinite(f)] = np.nan
        mesh = ax.pcolormesh(edges, edges, np.minimum(f, max_kT).T, cmap="viridis", vmin=0,
                             vmax=max_kT, shading="flat")  # fmt: skip
        if show_basins:
            kw = {"color": "w", "lw": 0.8, "ls": "--"}
            for phi in BASIN_BOUNDARIES_DEG["phi_left"]:
                ax.axvline(phi, **kw)
            for psi in BASIN_BOUNDARIES_DEG["psi_alphaR"]:
                ax.plot([-180, 0], [psi, psi], **kw)
                ax.plot([120, 180], [psi, psi], **kw)
        ax.set_xlim(-180, 180), ax.set_ylim(-180, 180)
        ax.set_xticks([-180, -90, 0, 90, 180]), ax.set_yticks([-180, -90, 0, 90, 180])
        ax.set_aspect("equal")
        ax.set_xlabel("phi (deg)")
        ax.set_title(f"{label} (n={n})", fontsize=9)
    axes[0].set_ylabel("psi (deg)")
    fig.colorbar(mesh, ax=list(axes), label="free energy (kT)", shrink=0.9)
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path)
    return fig


# ---------------------------------------------------------------------- geometry checks
def _signed_volume(x: np.ndarray) -> np.ndarray:
    n, ca, c, cb = (x[:, i] for i in CHIRAL_INDICES)
    return np.einsum("ij,ij->i", n - ca, np.cross(c - ca, cb - ca))


def chirality_fraction(x, system: AlanineDipeptide) -> float:
    """Fraction of samples ``x: (n, 22, 3)`` with L chirality at the alanine CA: signed volume
    ``(N - CA) . ((C - CA) x (CB - CA))`` of the same sign as in the reference (L) structure
    (a zero volume counts as not L)."""
    arr = system.check_positions(x)
    ref = np.sign(_signed_volume(system.reference_positions[None]))[0]
    return float(np.mean(np.sign(_signed_volume(arr)) == ref))


def reflect_to_l(x, system: AlanineDipeptide) -> tuple[np.ndarray, int]:
    """Mirror (``x -> -x``) every sample ``x: (n, 22, 3)`` whose CA is not L; returns the new
    positions (float64) and the number mirrored.

    Valid as a post-processing step when the sampled density is (close to) mirror symmetric,
    ``q(R x) = q(x)``, e.g. for E(3)-equivariant networks or chiral networks that did not learn
    the handedness, and the target is too: force-field energies are reflection invariant, so
    ``E(-x) = E(x)`` and the Boltzmann density on the L half is the density of ``q`` folded onto
    it (the Equivariant Flow Matching convention for alanine dipeptide, Klein et al. 2023).
    Reflection changes (phi, psi) to (-phi, -psi), so D samples in alpha-L become L samples in
    alpha-R. Report the raw chirality (:func:`chirality_fraction`) alongside."""
    arr = system.check_positions(x).copy()
    ref = np.sign(_signed_volume(system.reference_positions[None]))[0]
    bad = np.sign(_signed_volume(arr)) != ref
    arr[bad] *= -1.0
    return arr, int(bad.sum())


def bond_stretch_fraction(x, system: AlanineDipeptide, tolerance: float = 0.15) -> float:
    """Fraction of samples ``x: (n, 22, 3)`` (nm) with any bond length ``r`` off its force-field
    equilibrium length ``r0`` by more than ``tolerance`` relative: ``max_bonds |r / r0 - 1| >
    tolerance``."""
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a finite relative deviation > 0, got {tolerance!r}")
    arr = system.check_positions(x)
    i, j = system.bonds[:, 0], system.bonds[:, 1]
    r = np.linalg.norm(arr[:, i] - arr[:, j], axis=-1)
    return float(np.mean((np.abs(r / system.bond_lengths - 1.0) > tolerance).any(axis=1)))


# ---------------------------------------------------------------------- all together
def evaluate_aldp(
    samples,
    reference,
    system: AlanineDipeptide,
    *,
    bins: int = 36,
    smoothing: float = 1.0,
    floor: float = 1e-6,
    w2_max_samples: int = 2000,
    bond_tolerance: float = 0.15,
    seed: int = 0,
    nonfinite: str = "raise",
    fix_chirality: bool = False,
) -> dict[str, float | int]:
    """Every alanine-dipeptide metric of ``samples`` against ``reference`` (e.g. long 300 K MD).

    Args:
        samples: ``(n, 22, 3)`` nm, array or tensor (translations do not matter).
        reference: ``(m, 22, 3)`` nm, or an object with ``x`` (and optionally ``energy``, used
            instead of recomputing, e.g. :class:`fkc.systems.MDData`).
        system: gives energies (kJ/mol), bonds and the reference chirality.
        bins, smoothing, floor: Ramachandran histograms (:func:`ramachandran_histogram`).
        w2_max_samples, seed: subsampling of :func:`torus_w2`.
        bond_tolerance: of :func:`bond_stretch_fraction`.
        nonfinite: ``"raise"`` if a sample has non-finite coordinates or energy; ``"drop"``
            removes such samples and reports how many in ``n_dropped``.
        fix_chirality: mirror D samples to L (:func:`reflect_to_l`) before the other metrics;
            ``chirality_L`` is then the raw fraction before mirroring and ``n_reflected`` counts
            the mirrored samples.

    Returns:
        ``energy_w1``, ``energy_w2`` (kJ/mol; exact 1-D, W2 = root of the OT cost),
        ``energy_mean``, ``energy_mean_reference``, ``torus_w2`` (rad), ``rama_kl`` =
        KL(reference || samples), ``rama_kl_reverse`` = KL(samples || reference), ``rama_js``
        (nats), ``pop_<basin>`` and ``pop_<basin>_reference`` for ``beta``, ``alphaR``,
        ``alphaL``, ``chirality_L`` (+ ``_reference``), ``bond_stretch`` (+ ``_reference``),
        ``n_samples``, ``n_reference``, ``n_dropped``.
    """
    if nonfinite not in ("raise", "drop"):
        raise ValueError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")
    ref = system.check_positions(getattr(reference, "x", reference), "reference")
    e_ref = getattr(reference, "energy", None)
    e_ref = system.energy(ref) if e_ref is None else as_float64(e_ref, "reference.energy")
    if e_ref.shape != (len(ref),):
        raise ValueError(f"reference.energy must have shape ({len(ref)},), got {e_ref.shape}")
    x = as_float64(samples, "samples")
    if x.ndim != 3 or x.shape[1:] != system.event_shape or len(x) == 0:
        raise ValueError(f"samples must have shape (n, 22, 3) in nm, got {x.shape}")
    ok = np.isfinite(x).all(axis=(1, 2))
    e = np.full(len(x), np.nan)
    if ok.any():
        e[ok] = system.energy(x[ok])
    ok &= np.isfinite(e)
    n_bad = int((~ok).sum())
    if n_bad and nonfinite == "raise":
        raise ValueError(f"{n_bad} of {len(x)} samples have non-finite coordinates or energy "
                         f"(first: {np.flatnonzero(~ok)[:5].tolist()}); pass nonfinite='drop' to "
                         "drop them (and report n_dropped)")  # fmt: skip
    x, e = x[ok], e[ok]
    if len(x) == 0:
        raise ValueError("no finite samples left to evaluate")
    chirality_raw = chirality_fraction(x, system)
    n_reflected = 0
    if fix_chirality:  # energies are reflection invariant: e stays valid
        x, n_reflected = reflect_to_l(x, system)
    ang, ang_ref = phi_psi(x, system), phi_psi(ref, system)
    hist = {"bins": bins, "smoothing": smoothing, "floor": floor}
    p_ref, p = ramachandran_histogram(ang_ref, **hist), ramachandran_histogram(ang, **hist)
    out: dict[str, float | int] = {
        "energy_w1": wasserstein_1d(e, e_ref, p=1),
        "energy_w2": wasserstein_1d(e, e_ref, p=2),
        "energy_mean": float(e.mean()),
        "energy_mean_reference": float(e_ref.mean()),
        "torus_w2": torus_w2(ang, ang_ref, max_samples=w2_max_samples, seed=seed),
        "rama_kl": ramachandran_kl(p_ref, p),
        "rama_kl_reverse": ramachandran_kl(p, p_ref),
        "rama_js": ramachandran_js(p_ref, p),
    }
    pops, pops_ref = basin_populations(ang), basin_populations(ang_ref)
    for name in BASIN_NAMES:
        out[f"pop_{name}"] = pops[name]
        out[f"pop_{name}_reference"] = pops_ref[name]
    out["chirality_L"] = chirality_raw
    out["chirality_L_reference"] = chirality_fraction(ref, system)
    out["bond_stretch"] = bond_stretch_fraction(x, system, bond_tolerance)
    out["bond_stretch_reference"] = bond_stretch_fraction(ref, system, bond_tolerance)
    out.update(n_samples=int(len(x)), n_reference=int(len(ref)), n_dropped=n_bad,
               n_reflected=n_reflected)
    return out
