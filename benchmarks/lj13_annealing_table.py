"""LJ-13 temperature annealing: the README results table (FKC Table 3 columns).

Runs ``fkc anneal`` (through :func:`fkc.annealing.anneal_to_file`) for every row, target
temperature and seed, evaluates each sample file against ``datasets/lj13/T{T}.npz`` with
:func:`fkc.metrics.evaluate_samples`, and prints a markdown table of mean +- sd over seeds.

Rows: the T = 2 model annealed with the target-score and tempered-noise SDEs, each with and
without FKC, and a model trained directly at T (``models/lj13-egnn-T{T}``, sampled at its own
temperature, beta = 1). Sample files go to ``--out`` and are reused when present, so the
script resumes after an interruption; ``--shard i/k`` splits the runs over k processes:

    python benchmarks/lj13_annealing_table.py --shard 0/2 &
    python benchmarks/lj13_annealing_table.py --shard 1/2 &
    wait; python benchmarks/lj13_annealing_table.py --report

``--temperatures 2.0`` gives the T = 2 model's own sample quality (its model card).
Not part of the test suite (each run takes minutes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _tables import finished, write_between_markers

ROOT = Path(__file__).resolve().parents[1]
ROWS = {  # label: (model folder or None for models/lj13-egnn-T{T}, noise, correct)
    "target-score, uncorrected": ("models/lj13-egnn-T2", "target", False),
    "target-score, FKC": ("models/lj13-egnn-T2", "target", True),
    "tempered noise, uncorrected": ("models/lj13-egnn-T2", "tempered", False),
    "tempered noise, FKC": ("models/lj13-egnn-T2", "tempered", True),
    "model trained at T": (None, "target", False),
}
PAPER = {  # FKC paper (Skreta et al. 2025), Table 3: distance W2, energy W1, energy W2
    1.5: ("tempered noise, FKC", (0.066, 0.77, 0.94)),
    0.8: ("target-score, FKC", (0.048, 6.25, 6.36)),
}


def runs(temps, seeds):
    for seed in seeds:
        for T in temps:
            for label, (model, noise, correct) in ROWS.items():
                if T == 2.0 and model is not None:
                    continue  # T = 2 is the training temperature: only the model's own row
                yield T, label, model or f"models/lj13-egnn-T{T:g}", noise, correct, seed


def run_name(T, label, seed):
    slug = label.replace(", ", "_").replace(" ", "-")
    return f"T{T:g}_{slug}_seed{seed}.npz"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/lj13_annealing"))
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.5, 0.8])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--particles", type=int, default=1000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--shard", default="0/1", help="i/k: run every k-th job starting at i")
    p.add_argument("--rows", nargs="+", default=None, choices=list(ROWS), metavar="ROW",
                   help=f"only these rows (default: all of {list(ROWS)})")
    p.add_argument("--report", action="store_true", help="only evaluate and print the table")
    p.add_argument("--readme", default=None,
                   help="with --report: also write the table between the <!-- lj13-table --> "
                        "markers of this file")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if not args.report:
        i, k = (int(v) for v in args.shard.split("/"))
        from fkc.annealing import anneal_to_file

        for j, (T, label, model, noise, correct, seed) in enumerate(runs(args.temperatures,
                                                                         args.seeds)):
            path = out / run_name(T, label, seed)
            if j % k != i or path.exists() or (args.rows and label not in args.rows):
                continue
            if not finished(ROOT / model):
                print(f"skip {path.name}: {model} is missing or still training")
                continue
            print(f"run {path.name}", flush=True)
            anneal_to_file(path, model=ROOT / model, temperature=T, n_particles=args.particles,
                           n_steps=args.steps, seed=seed, noise=noise, correct=correct,
                           progress=False)
        return 0
    table = report(out, args.temperatures, args.seeds)
    print(table)
    if args.readme:
        write_between_markers(args.readme, "lj13-table", table)
    return 0


def report(out: Path, temps, seeds) -> str:
    from fkc.io import load_samples
    from fkc.metrics import evaluate_samples
    from fkc.systems.reference import load_reference

    cache = out / "metrics.json"
    metrics = json.loads(cache.read_text()) if cache.exists() else {}
    lines = ["| T | sampler | distance W2 | energy W1 | energy W2 | min ESS / n | resamplings "
             "| wall s | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for T in temps:
        ref = load_reference(ROOT / f"datasets/lj13/T{T:.1f}.npz")
        system = ref.system()
        for label in ROWS:
            vals = []
            for seed in seeds:
                path = out / run_name(T, label, seed)
                if not path.exists():
                    continue
                if path.name not in metrics:
                    s = load_samples(path)
                    m = evaluate_samples(s.x, ref, system, nonfinite="drop")
                    ess = s.diagnostics["ess"] / s.x.shape[0]
                    m.update(min_ess=float(np.min(ess)),
                             n_resampled=int(np.sum(s.diagnostics["resampled"])),
                             wall=float(s.metadata["wall_time_s"]),
                             correct=bool(s.metadata["correct"]))
                    metrics[path.name] = m
                vals.append(metrics[path.name])
            if not vals:
                continue

            def ms(key, fmt, vals=vals):
                a = np.array([v[key] for v in vals], dtype=float)
                if len(a) == 1:
                    return f"{a[0]:{fmt}}"
                return f"{a.mean():{fmt}} ± {a.std(ddof=1):{fmt}}"

            fkc = vals[0]["correct"]
            ess = ms("min_ess", ".2f") if fkc else "–"
            nres = ms("n_resampled", ".1f") if fkc else "–"
            lines.append(f"| {T:g} | {label} | {ms('distance_w2', '.3f')} | {ms('energy_w1', '.2f')} "
                         f"| {ms('energy_w2', '.2f')} | {ess} | {nres} | {ms('wall', '.0f')} "
                         f"| {len(vals)} |")
            dropped = sum(v["n_dropped"] for v in vals)
            if dropped:
                lines[-1] += f" ({dropped} non-finite samples dropped)"
        if T in PAPER:
            label, (d, e1, e2) = PAPER[T]
            lines.append(f"| {T:g} | paper: {label} | {d:.3f} | {e1:.2f} | {e2:.2f} | | | | |")
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=1))
    tmp.replace(cache)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
