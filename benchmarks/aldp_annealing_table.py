"""Alanine dipeptide 800 K -> 300 K: the README results table and Ramachandran figure (issue 5).

Runs ``fkc anneal`` (:func:`fkc.annealing.anneal_to_file`) for every row and seed, evaluates
each sample file against the 300 K MD reference (``datasets/aldp/T300_s*.npz``, all runs pooled)
with :func:`fkc.metrics.evaluate_aldp`, and prints a markdown table of mean +- sd over seeds.
Sampled D-alanine configurations are mirrored to L before the metrics (``fix_chirality=True``,
exact for a mirror-symmetric model density and the reflection-invariant force field); the table
reports the raw L fraction before mirroring.

Rows (``--preset direct``): the 800 K model sampled at 800 K (beta = 1, no annealing), and
annealed to 300 K (beta = 8/3) with the target-score and tempered-noise SDEs, each with and
without FKC; a model trained on 300 K MD (``--reference-model``) sampled at its own temperature.
``--preset energy``: an energy-parameterised 800 K model (``--model models/aldp-energy-T800``)
annealed with and without FKC, with two adaptive MALA moves per step (exact for the model's
``q^beta``), and with the weights ``"density"`` and ``"ais"`` of :func:`fkc.sample`. ``--preset tempering``: the
energy model annealed by SMC tempering at ``t_min`` (``fkc anneal --method tempering``), with and
without weights and with or without torsion moves, and continued from the model's ``q^beta`` to
the force field's Boltzmann density (``force_field_steps``), beside the diffusion samplers of the
same model. ``--preset ladder``: the last rung of an annealing ladder (``configs/aldp_ft_ladder_T*.yaml``):
the 450 K ladder model (``--model``) annealed to 300 K with and without FKC. Both add two data rows:
the 800 K MD frames and one 300 K MD run against the other (the metrics' noise floor at this
sample size). Sample files go to ``--out`` and are reused, so the script resumes after an
interruption. Several processes can share the job list (each claims a run by creating
``<run>.claim``; a crashed run leaves its claim file, delete it to retry); ``--shard i/k`` splits
the runs statically instead:

    python benchmarks/aldp_annealing_table.py & python benchmarks/aldp_annealing_table.py &
    wait; python benchmarks/aldp_annealing_table.py --report --readme README.md

Not part of the test suite (each run takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from _tables import finished, write_between_markers

ROOT = Path(__file__).resolve().parents[1]
MODEL = "models/aldp-tp-T800"
TARGET_T = 300.0
ULA2 = {"mcmc_steps": 2, "mcmc": "ula"}  # 2 Langevin moves on pi_t per step (resample-move)
MALA2 = {"mcmc_steps": 2, "mcmc": "mala", "mcmc_adapt": True}  # exact; needs an energy model
# the model's reverse SDE at 800 K to t_min with 2 adaptive MALA moves per step, 20 more moves at
# t_min, then 150 tempering rungs 800 K -> 300 K at t_min with 2 adaptive MALA moves each
TEMPERING = {"method": "tempering", "tempering_steps": 150, "mcmc_steps": 2, "mcmc_adapt": True,
             "burn_in": 20}
# the same with 2 Metropolis torsion moves (rotations about the 7 rotatable bonds) before every
# burn-in move and every rung: they cross between the basins (fkc.sampler.torsion_moves)
TORSION = {**TEMPERING, "torsion_steps": 2}
# then on from the model's q^beta to the force field's exp(-U/kT) itself at t_min (50 rungs linear
# in lambda, the same moves): uses the force field, so it removes the model's own error
FORCE_FIELD = {**TORSION, "force_field_steps": 50}
PRESETS = {  # label: (True: --model, False: --reference-model; temperature, noise, correct[,
    #                 options of fkc.annealing.anneal_model, e.g. a weight window (t_hi, t_lo):
    #                 weights accumulate only there, an approximation; or MCMC moves])
    "direct": {
        "800 K model, not annealed": (True, 800.0, "target", False),
        "target-score, uncorrected": (True, TARGET_T, "target", False),
        "target-score, FKC": (True, TARGET_T, "target", True),
        "target-score, FKC, weights for t >= 0.05": (True, TARGET_T, "target", True,
                                                     {"weight_window": (1.0, 0.05)}),
        "target-score, uncorrected, 2 ULA moves/step": (True, TARGET_T, "target", False, ULA2),
        "target-score, FKC, 2 ULA moves/step": (True, TARGET_T, "target", True, ULA2),
        "tempered noise, uncorrected": (True, TARGET_T, "tempered", False),
        "tempered noise, FKC": (True, TARGET_T, "tempered", True),
        "model trained at 300 K": (False, TARGET_T, "target", False),
    },
    # an energy-parameterised 800 K model (--model models/aldp-energy-T800): exact MALA moves
    "energy": {
        "energy model, 800 K, not annealed": (True, 800.0, "target", False),
        "energy model -> 300 K, uncorrected": (True, TARGET_T, "target", False),
        "energy model -> 300 K, uncorrected, 2 adaptive MALA moves/step": (
            True, TARGET_T, "target", False, MALA2),
        "energy model -> 300 K, FKC, 2 adaptive MALA moves/step": (
            True, TARGET_T, "target", True, MALA2),
        "energy model -> 300 K, density weights, 2 adaptive MALA moves/step": (
            True, TARGET_T, "target", True, {**MALA2, "weights": "density"}),
        "energy model -> 300 K, AIS (no SDE step), 2 adaptive MALA moves/step": (
            True, TARGET_T, "target", True, {**MALA2, "weights": "ais"}),
    },
    # the last rung of an annealing ladder: --model is the 450 K ladder model
    "ladder": {
        "ladder 450 K model -> 300 K, uncorrected": (True, TARGET_T, "target", False),
        "ladder 450 K model -> 300 K, FKC": (True, TARGET_T, "target", True),
        "ladder 450 K model -> 300 K, FKC, weights for t >= 0.05": (True, TARGET_T, "target", True,
                                                                     {"weight_window": (1.0, 0.05)}),
    },
}
# the energy model annealed at a fixed small time instead of along the diffusion (SMC tempering
# from the model's own 800 K samples; fkc.sampler.tempering), against the diffusion samplers of
# the same model: the energy preset's rows without its density and AIS weights
PRESETS["tempering"] = {
    **{k: v for k, v in PRESETS["energy"].items() if "density" not in k and "AIS" not in k},
    "energy model -> 300 K, annealed MALA at t_min without weights": (
        True, TARGET_T, "target", False, TEMPERING),
    "energy model -> 300 K, SMC tempering at t_min": (True, TARGET_T, "target", True, TEMPERING),
    "energy model -> 300 K, MALA + torsion moves at t_min without weights": (
        True, TARGET_T, "target", False, TORSION),
    "energy model -> 300 K, SMC tempering at t_min with torsion moves": (
        True, TARGET_T, "target", True, TORSION),
    "energy model -> 300 K, tempering with torsion moves, then on to the force field": (
        True, TARGET_T, "target", True, FORCE_FIELD),
}
PANELS = ("target-score, uncorrected", "target-score, FKC",
          "target-score, uncorrected, 2 ULA moves/step", "target-score, FKC, 2 ULA moves/step",
          "ladder 450 K model -> 300 K, uncorrected", "ladder 450 K model -> 300 K, FKC",
          "energy model -> 300 K, uncorrected, 2 adaptive MALA moves/step",
          "energy model -> 300 K, FKC, 2 adaptive MALA moves/step",
          "energy model -> 300 K, density weights, 2 adaptive MALA moves/step",
          "energy model -> 300 K, AIS (no SDE step), 2 adaptive MALA moves/step",
          "energy model -> 300 K, annealed MALA at t_min without weights",
          "energy model -> 300 K, SMC tempering at t_min",
          "energy model -> 300 K, SMC tempering at t_min with torsion moves",
          "energy model -> 300 K, tempering with torsion moves, then on to the force field")
ROWS = PRESETS["direct"]
KEYS = ("torus_w2", "rama_kl", "energy_w1", "energy_w2", "chirality_L", "bond_stretch",
        "pop_beta", "pop_alphaR", "pop_alphaL")  # fmt: skip


def run_name(label: str, seed: int) -> str:
    slug = label.replace(", ", "_").replace(" -> ", "_to_").replace(" ", "-")
    slug = slug.replace("(", "").replace(")", "").replace(">=", "ge").replace("/", "-per-")
    return f"{slug}_seed{seed}.npz"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/aldp_annealing"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--particles", type=int, default=500)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--model", default=MODEL)
    p.add_argument("--reference-model", default="models/aldp-tp-T300")
    p.add_argument("--md", nargs="+", default=None,
                   help="300 K MD files (default: datasets/aldp/T300_s*.npz)")
    p.add_argument("--shard", default="0/1", help="i/k: run every k-th job starting at i")
    p.add_argument("--preset", choices=list(PRESETS), default="direct",
                   help="rows: 'direct' (one jump 800 K -> 300 K), 'energy' (the same with an "
                        "energy-parameterised model and exact MALA moves), 'tempering' (SMC "
                        "tempering at t_min with that model) or 'ladder' (last rung of an "
                        "annealing ladder; --model: the 450 K ladder model)")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW", help="subset of the rows")
    p.add_argument("--report", action="store_true", help="only evaluate and print the table")
    p.add_argument("--readme", default=None,
                   help="with --report: write the table between <!-- MARKER --> markers")
    p.add_argument("--marker", default="aldp-table", help="README marker name (default: %(default)s)")
    args = p.parse_args(argv)
    rows = PRESETS[args.preset]
    bad = sorted(set(args.rows or ()) - set(rows))
    if bad:
        p.error(f"unknown rows {bad} for preset {args.preset!r}; choose from {list(rows)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if not args.report:
        from fkc.annealing import anneal_to_file

        i, k = (int(v) for v in args.shard.split("/"))
        jobs = [(label, seed) for seed in args.seeds for label in rows]
        for j, (label, seed) in enumerate(jobs):
            main_model, temp, noise, correct, *extra = rows[label]
            model = ROOT / (args.model if main_model else args.reference_model)
            path = out / run_name(label, seed)
            if j % k != i or path.exists() or (args.rows and label not in args.rows):
                continue
            if not finished(model):
                print(f"skip {path.name}: {model} is missing or still training")
                continue
            claim = path.with_suffix(".claim")
            try:  # several workers share the job list: the first to create the claim runs it
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            print(f"run {path.name}", flush=True)
            try:
                anneal_to_file(path, model=model, temperature=temp, n_particles=args.particles,
                               n_steps=args.steps, seed=seed, noise=noise, correct=correct,
                               progress=False, **(extra[0] if extra else {}))  # fmt: skip
            finally:
                claim.unlink()
        return 0
    md = args.md or sorted(str(f) for f in (ROOT / "datasets/aldp").glob("T300_s*.npz")
                           if re.fullmatch(r"T300_s\d+\.npz", f.name))  # not T300_sub.npz
    table = report(out, args.seeds, md, rows)
    print(table)
    if args.readme:
        write_between_markers(args.readme, args.marker, table)
    return 0


def _pooled_md(files):
    from fkc.systems import MDData, load_md

    runs = [load_md(f) for f in files]
    temps = {r.temperature for r in runs}
    if len(temps) != 1:
        temps_by_file = {str(f): r.temperature for f, r in zip(files, runs, strict=True)}
        raise ValueError(f"MD files at different temperatures: {temps_by_file}")
    first = runs[0]
    return runs, MDData(x=np.concatenate([r.x for r in runs]),
                        energy=np.concatenate([r.energy for r in runs]),
                        kinetic_energy=np.concatenate([r.kinetic_energy for r in runs]),
                        time_ps=np.concatenate([r.time_ps for r in runs]),
                        temperature=first.temperature, metadata=first.metadata,
                        topology_pdb=first.topology_pdb)  # fmt: skip


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def report(out: Path, seeds, md_files, rows=ROWS) -> str:
    from fkc.io import load_samples
    from fkc.metrics import evaluate_aldp, phi_psi, ramachandran_free_energy_plot, reflect_to_l
    from fkc.systems import AlanineDipeptide, load_md, samples_in_nm

    system = AlanineDipeptide()
    runs, ref = _pooled_md(md_files)
    cache = out / "metrics.json"
    metrics = json.loads(cache.read_text()) if cache.exists() else {}
    head = ("| sampler | torus W2 (rad) | Ramachandran KL | energy W1 | energy W2 | L-chirality (raw) "
            "| bond stretch | beta / alphaR / alphaL | score evals | seeds |")
    lines = [head, "|---" * 10 + "|"]

    def fmt(vals, key, f):
        a = np.array([v[key] for v in vals], dtype=float)
        return f"{a[0]:{f}}" if len(a) == 1 else f"{a.mean():{f}} ± {a.std(ddof=1):{f}}"

    def row(label, vals, evals, n_seeds):
        pops = " / ".join(fmt(vals, f"pop_{b}", ".2f") for b in ("beta", "alphaR", "alphaL"))
        lines.append(f"| {label} | {fmt(vals, 'torus_w2', '.3f')} | {fmt(vals, 'rama_kl', '.3f')} "
                     f"| {fmt(vals, 'energy_w1', '.1f')} | {fmt(vals, 'energy_w2', '.1f')} "
                     f"| {fmt(vals, 'chirality_L', '.3f')} | {fmt(vals, 'bond_stretch', '.3f')} "
                     f"| {pops} | {evals} | {n_seeds} |")  # fmt: skip
        dropped = sum(v.get("n_dropped", 0) for v in vals)
        if dropped:
            lines[-1] += f" ({dropped} non-finite samples dropped)"

    panels = {f"MD {ref.temperature:g} K": phi_psi(ref.x, system)}
    n_sub = 500
    rng = np.random.default_rng(0)
    # data rows: the metrics' noise floor (one 300 K run against the others) and the 800 K data
    if len(runs) > 1:
        key = f"md300_{Path(md_files[0]).name}_vs_rest_n{n_sub}"
        if key not in metrics:
            _, rest = _pooled_md(md_files[1:])
            idx = rng.choice(len(runs[0].x), size=min(n_sub, len(runs[0].x)), replace=False)
            metrics[key] = evaluate_aldp(runs[0].x[idx], rest, system)
        row(f"MD 300 K, {n_sub} frames of one run vs the other", [metrics[key]], "–", 1)
    hot = ROOT / "datasets/aldp/T800_s3.npz"  # regenerated MD; else the shipped subsample
    hot = hot if hot.exists() else ROOT / "datasets/aldp/T800_sub.npz"
    if hot.exists():
        d800 = load_md(hot)
        key = f"md800_{hot.name}_n{n_sub}"
        if key not in metrics:
            idx = rng.choice(len(d800.x), size=n_sub, replace=False)
            metrics[key] = evaluate_aldp(d800.x[idx], ref, system)
        row(f"MD 800 K (training temperature), {n_sub} frames", [metrics[key]], "–", 1)
        panels["MD 800 K"] = phi_psi(d800.x[:: max(1, len(d800.x) // 5000)], system)
    for label in rows:
        vals, evals, first = [], [], None
        for seed in seeds:
            path = out / run_name(label, seed)
            if not path.exists():
                continue
            s = load_samples(path)
            first = first or s
            if path.name not in metrics:
                m = evaluate_aldp(samples_in_nm(s.x, s.metadata), ref, system, nonfinite="drop",
                                  fix_chirality=True)  # fmt: skip
                m.update(score_evaluations=int(s.metadata["score_evaluations"]),
                         wall=float(s.metadata["wall_time_s"]))
                metrics[path.name] = m
            vals.append(metrics[path.name])
            evals.append(metrics[path.name]["score_evaluations"])
        if vals:
            row(label, vals, f"{int(np.mean(evals)):,}", len(vals))
            if label in PANELS:
                x = samples_in_nm(first.x, first.metadata)
                x, _ = reflect_to_l(x[np.isfinite(x).all(axis=(1, 2))], system)
                title = (label.replace("target-score, ", "").replace("energy model -> 300 K, ", "")
                         .replace(", 2 adaptive MALA moves/step", " + MALA")
                         .replace("tempering with torsion moves, then on to the force field",
                                  "tempering + torsion -> force field")
                         .replace(" at t_min with torsion moves", " + torsion"))
                panels[title] = phi_psi(x, system)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=1))
    tmp.replace(cache)
    fig_path = out / "ramachandran.png"
    ramachandran_free_energy_plot(panels, path=fig_path,
                                  title="Alanine dipeptide: MD vs samples (first seed)")
    return "\n".join(lines) + f"\n\nReference: {ref.x.shape[0]} frames of 300 K MD " \
        f"({', '.join(Path(f).name for f in md_files)}); figure: {_rel(fig_path)}"


if __name__ == "__main__":
    raise SystemExit(main())
