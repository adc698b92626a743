r"""The alanine-dipeptide MD data recipe: ``python -m fkc.systems.aldp_md <command>``.

Commands:

* ``recipe --out datasets/aldp [--jobs 2] [--quick] [--length-scale f]``: every run of
  :data:`RECIPE` (resumable: rerunning continues unfinished files), then ``CONVERGENCE.md`` /
  ``convergence.json`` (:func:`convergence_report`), ``aldp.pdb`` and ``SHA256SUMS``.
* ``run --temperature 300 --ns 10 --out FILE.npz [--save-every-ps 1 --seed 0 ...]``: one run
  (:func:`fkc.systems.run_md`); rerun with a larger ``--ns`` to extend it.
* ``check FILE.npz ... [--json PATH] [--markdown PATH]``: convergence report.
* ``training-set FILE.npz ... --out TRAIN.npz [--stride 1 --max-frames N]``: score-model training
  file (angstrom + molecular graph, :func:`fkc.systems.aldp_training_set`).
* ``training-set-from-samples SAMPLES.npz ... --out TRAIN.npz [--pool equal|z]``: FKC samples (``fkc
  anneal`` outputs at one temperature) as a training file, for an annealing ladder
  (:func:`fkc.systems.aldp_training_set_from_samples`).
* ``subsample FILE.npz ... --every N --out SMALL.npz``: pooled every-N-th frames (shipped files).
* ``checksums DIR [--verify]``: write (or verify) ``DIR/SHA256SUMS``.
* ``speed --temperature 300 [--platform Reference] [--steps 20000]``: measured ns/day.

The convergence report (per file) gives the mean potential energy with its standard error (from
the integrated autocorrelation time), the mean kinetic temperature, the number of ``phi``
crossings between the right-handed core ``phi in [-180, -20) or [140, 180)`` and the left-handed
core ``phi in [20, 100)`` degrees (transition-based: excursions into the gap are not counted),
basin populations of the whole run, of its two halves and of 10 blocks (standard error = sd of
block means / sqrt(10)), the Jensen-Shannon divergence between the halves' Ramachandran histograms
(36 x 36 bins, 1-bin periodic smoothing), and, for several files at one temperature, the
difference between the runs in units of the combined standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from fkc.systems._aldp import MOLAR_GAS_CONSTANT, AlanineDipeptide
from fkc.systems._aldp_data import aldp_training_set, aldp_training_set_from_samples
from fkc.systems._md import (
    MDConfig,
    benchmark_md,
    load_md,
    run_md,
    subsample_md,
    timing_path,
    write_sha256sums,
    write_topology_pdb,
)
from fkc.systems.diagnostics import integrated_autocorr_time
from fkc.systems.reference import verify_checksums

#: High temperature of the training data (K); see datasets/aldp/README.md for the choice.
HIGH_TEMPERATURE = 800.0

#: ``(file stem, config)`` of every run of the data set. 300 K: the evaluation reference, two
#: independent 1 us runs saved every 10 ps; 800 K: training data, two 50 ns runs saved every ps.
RECIPE: tuple[tuple[str, MDConfig], ...] = (
    ("T300_s0", MDConfig(temperature=300.0, n_frames=100_000, save_interval=10_000, seed=0)),
    ("T300_s1", MDConfig(temperature=300.0, n_frames=100_000, save_interval=10_000, seed=1)),
    ("T800_s2", MDConfig(temperature=HIGH_TEMPERATURE, n_frames=50_000, save_interval=1000, seed=2)),
    ("T800_s3", MDConfig(temperature=HIGH_TEMPERATURE, n_frames=50_000, save_interval=1000, seed=3)),
)

_R_CORE = ((-180.0, -20.0), (140.0, 180.0))
_L_CORE = (20.0, 100.0)
_N_BLOCKS = 10


def quick_recipe() -> tuple[tuple[str, MDConfig], ...]:
    """Seconds-long smoke version of :data:`RECIPE` (same files, 20 frames of 0.1 ps each)."""
    return tuple((name, replace(c, n_frames=20, save_interval=100, equilibration_steps=500,
                                chunk_frames=10)) for name, c in RECIPE)  # fmt: skip


def scaled_recipe(factor: float) -> tuple[tuple[str, MDConfig], ...]:
    """:data:`RECIPE` with every run ``factor`` times as long (at least one frame)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"length scale must be a finite number > 0, got {factor!r}")
    return tuple((name, replace(c, n_frames=max(1, round(c.n_frames * factor))))
                 for name, c in RECIPE)  # fmt: skip


def phi_crossings(phi_deg: np.ndarray) -> int:
    """Transitions between the right- and left-handed ``phi`` cores (degrees; see module doc)."""
    phi = np.asarray(phi_deg, dtype=np.float64)
    right = np.zeros(phi.shape, bool)
    for lo, hi in _R_CORE:
        right |= (phi >= lo) & (phi < hi)
    left = (phi >= _L_CORE[0]) & (phi < _L_CORE[1])
    state = np.where(right, 0, np.where(left, 1, -1))
    visited = state[state >= 0]
    return int(np.count_nonzero(np.diff(visited))) if visited.size else 0


def _populations(labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    counts = np.bincount(labels, minlength=len(names))
    return {n: float(c / max(len(labels), 1)) for n, c in zip(names, counts, strict=True)}


def file_report(path: str | os.PathLike, system: AlanineDipeptide | None = None) -> dict:
    """Convergence numbers of one MD file (see the module docstring)."""
    from fkc.metrics._dihedrals import (
        BASIN_NAMES,
        assign_basins,
        bond_stretch_fraction,
        chirality_fraction,
        phi_psi,
        ramachandran_histogram,
        ramachandran_js,
    )

    system = system or AlanineDipeptide()
    d = load_md(path)
    n = d.n_frames
    ang = phi_psi(d.x, system)
    labels = assign_basins(ang)
    half = n // 2
    e = d.energy
    tau = integrated_autocorr_time(e) if n >= 4 else 1.0
    blocks = np.array_split(labels, _N_BLOCKS) if n >= _N_BLOCKS else [labels]
    block_pops = np.array([[np.mean(b == k) for k in range(len(BASIN_NAMES))] for b in blocks])
    se = block_pops.std(axis=0, ddof=1) / math.sqrt(len(blocks)) if len(blocks) > 1 else np.full(len(BASIN_NAMES), np.nan)  # fmt: skip
    crossings = phi_crossings(np.degrees(ang[:, 0]))
    n_dof = d.metadata["n_dof"]
    return {
        "file": Path(path).name,
        "temperature": d.temperature,
        "n_frames": n,
        "length_ns": d.length_ns,
        "frame_interval_ps": d.config.frame_interval_ps,
        "energy_mean": float(e.mean()),
        "energy_se": float(e.std() * math.sqrt(tau / n)),
        "energy_tau_frames": float(tau),
        "kinetic_temperature": float(2 * d.kinetic_energy.mean() / (n_dof * MOLAR_GAS_CONSTANT)),
        "phi_crossings": crossings,
        "phi_crossings_per_ns": crossings / d.length_ns,
        "populations": _populations(labels, BASIN_NAMES),
        "populations_se": dict(zip(BASIN_NAMES, map(float, se), strict=True)),
        "populations_halves": [_populations(labels[:half], BASIN_NAMES),
                               _populations(labels[half:], BASIN_NAMES)],  # fmt: skip
        "js_halves": ramachandran_js(ramachandran_histogram(ang[:half]),
                                     ramachandran_histogram(ang[half:])) if half else float("nan"),  # fmt: skip
        "chirality_L": chirality_fraction(d.x, system),
        "bond_stretch_0.15": bond_stretch_fraction(d.x, system, 0.15),
        "resumes": d.metadata["resumes"],
        "ns_per_day": _ns_per_day(path),
    }


def _ns_per_day(path) -> float:
    """Overall speed of a run from its timing side file (NaN if absent)."""
    try:
        chunks = json.loads(timing_path(path).read_text())
        days = sum(c["wall_s"] for c in chunks) / 86400
        ns = sum(c["ns_per_day"] * c["wall_s"] / 86400 for c in chunks)
        return float(ns / days) if days > 0 else float("nan")
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")


def convergence_report(paths: Sequence[str | os.PathLike]) -> dict:
    """Per-file reports plus, per temperature with several files, run-to-run comparisons."""
    system = AlanineDipeptide()
    files = [file_report(p, system) for p in paths]
    by_t: dict[float, list[dict]] = {}
    for f in files:
        by_t.setdefault(f["temperature"], []).append(f)
    groups = []
    for t, fs in sorted(by_t.items()):
        if len(fs) < 2:
            continue
        names = list(fs[0]["populations"])
        w = np.array([f["n_frames"] for f in fs], float)
        pooled = {k: float(np.average([f["populations"][k] for f in fs], weights=w)) for k in names}
        zmax = {}
        for k in names:
            z = 0.0
            for i in range(len(fs)):
                for j in range(i + 1, len(fs)):
                    diff = fs[i]["populations"][k] - fs[j]["populations"][k]
                    s = math.hypot(fs[i]["populations_se"][k], fs[j]["populations_se"][k])
                    z = max(z, abs(diff) / s if s > 0 else (0.0 if diff == 0 else math.inf))
            zmax[k] = z
        groups.append({"temperature": t, "files": [f["file"] for f in fs], "pooled": pooled,
                       "max_abs_z_between_runs": zmax,
                       "length_ns_total": float(sum(f["length_ns"] for f in fs))})  # fmt: skip
    return {"files": files, "groups": groups}


def report_markdown(report: dict) -> str:
    """The report as Markdown tables."""
    lines = [
        "| file | T (K) | ns | frames | E (kJ/mol) ± se | T_kin (K) | phi crossings (/ns) | "
        "beta: all (1st / 2nd half) ± se | alphaR | alphaL | JS halves | L chirality |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in report["files"]:
        pops = []
        for k in ("beta", "alphaR", "alphaL"):
            h1, h2 = (h[k] for h in f["populations_halves"])
            pops.append(f"{f['populations'][k]:.4f} ({h1:.4f} / {h2:.4f}) ± "
                        f"{f['populations_se'][k]:.4f}")  # fmt: skip
        lines.append(
            f"| {f['file']} | {f['temperature']:g} | {f['length_ns']:.3g} | {f['n_frames']} | "
            f"{f['energy_mean']:.2f} ± {f['energy_se']:.2f} | {f['kinetic_temperature']:.1f} | "
            f"{f['phi_crossings']} ({f['phi_crossings_per_ns']:.3g}) | {' | '.join(pops)} | "
            f"{f['js_halves']:.2e} | {f['chirality_L']:.4f} | {f['ns_per_day']:.0f} |"
        )  # fmt: skip
    if report["groups"]:
        lines += ["", "| T (K) | runs | total ns | pooled beta / alphaR / alphaL | "
                  "max abs z between runs (beta / alphaR / alphaL) |", "|---|---|---|---|---|"]  # fmt: skip
        for g in report["groups"]:
            p, z = g["pooled"], g["max_abs_z_between_runs"]
            lines.append(
                f"| {g['temperature']:g} | {', '.join(g['files'])} | {g['length_ns_total']:.3g} | "
                f"{p['beta']:.4f} / {p['alphaR']:.4f} / {p['alphaL']:.4f} | "
                f"{z['beta']:.2f} / {z['alphaR']:.2f} / {z['alphaL']:.2f} |"
            )  # fmt: skip
    lines += ["", "se: standard error from 10 block means; z = run difference / combined se. "
              "Few phi crossings mean the alphaL numbers (and their se) are unreliable."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _run_one(args: tuple[str, MDConfig, str, bool]) -> str:
    name, config, out_dir, progress = args
    run_md(config, Path(out_dir) / f"{name}.npz", progress=progress)
    return name


def run_recipe(out_dir: str | os.PathLike, recipe=RECIPE, *, jobs: int = 1, progress: bool = True) -> dict:  # fmt: skip
    """Run every ``(name, config)`` of ``recipe`` into ``out_dir`` (``jobs`` processes), then write
    ``CONVERGENCE.md``, ``convergence.json``, ``aldp.pdb`` and ``SHA256SUMS``; returns the report."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_topology_pdb(out_dir)
    tasks = [(name, c, str(out_dir), progress) for name, c in recipe]
    if jobs == 1:
        for t in tasks:
            _run_one(t)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(_run_one, tasks))
    report = convergence_report([out_dir / f"{name}.npz" for name, _ in recipe])
    (out_dir / "convergence.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    (out_dir / "CONVERGENCE.md").write_text(
        "# Convergence of the alanine-dipeptide MD data\n\nWritten by "
        "`python -m fkc.systems.aldp_md recipe`; see `fkc/systems/aldp_md.py` for the definitions."
        "\n\n" + report_markdown(report)
    )  # fmt: skip
    write_sha256sums(out_dir)
    return report


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, required=True, help="thermostat temperature (K)")
    p.add_argument("--solvent", default="obc", choices=("obc", "vacuum"))
    p.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    p.add_argument("--threads", type=int, default=1, help="threads of the CPU platform")
    p.add_argument("--timestep-fs", type=float, default=1.0)
    p.add_argument("--friction-per-ps", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)


def _frames(ns: float, every_ps: float, timestep_fs: float) -> tuple[int, int]:
    save_interval = every_ps * 1000.0 / timestep_fs
    if save_interval < 1 or abs(save_interval - round(save_interval)) > 1e-9:
        raise SystemExit(f"--save-every-ps {every_ps} is not a whole number of {timestep_fs} fs steps")
    n_frames = ns * 1000.0 / every_ps
    if n_frames < 1 or abs(n_frames - round(n_frames)) > 1e-6:
        raise SystemExit(f"--ns {ns} is not a whole number of {every_ps} ps frames")
    return round(n_frames), round(save_interval)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m fkc.systems.aldp_md``)."""
    p = argparse.ArgumentParser(prog="python -m fkc.systems.aldp_md",
                                description="Alanine-dipeptide Langevin MD data (OpenMM).")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("recipe", help="generate the whole data set (resumable)")
    r.add_argument("--out", required=True, help="output folder, e.g. datasets/aldp")
    r.add_argument("--jobs", type=int, default=1, help="runs in parallel (one core each)")
    r.add_argument("--quick", action="store_true", help="seconds-long smoke test, not converged")
    r.add_argument("--length-scale", type=float, default=1.0, help="scale every run's length")
    r.add_argument("--no-progress", action="store_true")

    o = sub.add_parser("run", help="one MD run (resumable; a larger --ns extends it)")
    _add_config_args(o)
    o.add_argument("--ns", type=float, required=True, help="production length (ns)")
    o.add_argument("--save-every-ps", type=float, default=1.0)
    o.add_argument("--equilibration-ps", type=float, default=100.0)
    o.add_argument("--chunk-frames", type=int, default=5000)
    o.add_argument("--out", required=True, help="output .npz")
    o.add_argument("--no-progress", action="store_true")

    c = sub.add_parser("check", help="convergence report of MD files")
    c.add_argument("files", nargs="+")
    c.add_argument("--json", help="also write the report as JSON here")
    c.add_argument("--markdown", help="also write the Markdown tables here")

    s = sub.add_parser("checksums", help="write or verify DIR/SHA256SUMS (*.npz, *.pdb)")
    s.add_argument("dir")
    s.add_argument("--verify", action="store_true")

    ts = sub.add_parser("training-set", help="MD frames + molecular graph for score-model training")
    ts.add_argument("files", nargs="+", help="MD .npz files of one temperature")
    ts.add_argument("--out", required=True)
    ts.add_argument("--stride", type=int, default=1)
    ts.add_argument("--max-frames", type=int, default=None, help="per file, after striding")

    tf = sub.add_parser("training-set-from-samples",
                        help="FKC samples of one temperature as a training file (annealing ladder)")
    tf.add_argument("files", nargs="+", help="fkc anneal output .npz files")
    tf.add_argument("--out", required=True)
    tf.add_argument("--pool", choices=("equal", "z"), default="equal",
                    help="pool runs equally (default) or weighted by their log_z estimates")
    tf.add_argument("--seed", type=int, default=0, help="seeds the resampling")

    ss = sub.add_parser("subsample", help="every N-th frame of MD files, pooled (shipped data)")
    ss.add_argument("files", nargs="+")
    ss.add_argument("--every", type=int, required=True)
    ss.add_argument("--out", required=True)

    b = sub.add_parser("speed", help="measure ns/day")
    _add_config_args(b)
    b.add_argument("--steps", type=int, default=20_000)

    args = p.parse_args(argv)
    try:
        return _dispatch(args)
    except ValueError as e:  # bad configs, corrupt or mismatched files: one clear line
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "recipe":
        recipe = quick_recipe() if args.quick else scaled_recipe(args.length_scale)
        report = run_recipe(args.out, recipe, jobs=args.jobs, progress=not args.no_progress)
        print(report_markdown(report))
    elif args.command == "run":
        n_frames, save_interval = _frames(args.ns, args.save_every_ps, args.timestep_fs)
        eq = args.equilibration_ps * 1000.0 / args.timestep_fs
        config = MDConfig(temperature=args.temperature, n_frames=n_frames,
                          save_interval=save_interval, timestep_fs=args.timestep_fs,
                          friction_per_ps=args.friction_per_ps, equilibration_steps=round(eq),
                          seed=args.seed, solvent=args.solvent, platform=args.platform,
                          threads=args.threads, chunk_frames=args.chunk_frames)  # fmt: skip
        d = run_md(config, args.out, progress=not args.no_progress)
        print(f"{args.out}: {d.n_frames} frames, {d.length_ns:g} ns at {d.temperature:g} K")
    elif args.command == "training-set":
        out = aldp_training_set(args.files, args.out, stride=args.stride,
                                max_frames=args.max_frames)  # fmt: skip
        with np.load(out) as f:
            print(f"{out}: {f['x'].shape[0]} frames at {float(f['temperature']):g} K (angstrom)")
    elif args.command == "training-set-from-samples":
        out = aldp_training_set_from_samples(args.files, args.out, pool=args.pool,
                                             seed=args.seed)  # fmt: skip
        with np.load(out) as f:
            meta = json.loads(str(f["metadata"]))
            n_unique = sum(m["unique"] for m in meta["samples"])
            print(f"{out}: {f['x'].shape[0]} frames ({n_unique} distinct) at "
                  f"{float(f['temperature']):g} K (angstrom); effective runs "
                  f"{meta['effective_runs']:.2f} of {len(meta['samples'])}")
    elif args.command == "subsample":
        d = subsample_md(args.files, args.out, args.every)
        print(f"{args.out}: {d.n_frames} frames at {d.temperature:g} K")
    elif args.command == "check":
        report = convergence_report(args.files)
        text = report_markdown(report)
        print(text)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        if args.markdown:
            Path(args.markdown).write_text(text)
    elif args.command == "checksums":
        if args.verify:
            bad = verify_checksums(args.dir)
            print("OK" if not bad else f"checksum mismatch: {bad}")
            return 1 if bad else 0
        for name, digest in write_sha256sums(args.dir).items():
            print(f"{digest}  {name}")
    elif args.command == "speed":
        config = MDConfig(temperature=args.temperature, n_frames=1, timestep_fs=args.timestep_fs,
                          friction_per_ps=args.friction_per_ps, seed=args.seed,
                          solvent=args.solvent, platform=args.platform, threads=args.threads)  # fmt: skip
        rate = benchmark_md(config, args.steps)
        print(f"{rate:.0f} ns/day ({args.platform}, {args.solvent}, {args.temperature:g} K, "
              f"{args.timestep_fs:g} fs, {args.steps} steps)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
