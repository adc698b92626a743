"""Drug-like conformers at 300 K: the README results table (issue 6).

For every test-split molecule with a reference ensemble (``datasets/conformers/T300_test.sdf``,
``K`` distinct conformers picked from replica-exchange HMC MMFF94 samples at 300 K), generate
``2K`` conformers with each method, then evaluate with :func:`fkc.conformers.evaluate.evaluate_sets`
(COV-R/MAT-R, COV-P/MAT-P with heavy-atom symmetry-aware RMSD, MMFF94 energy W1 against all
reference samples, failure fraction). Methods:

* ``FKC``: the 500 K model annealed to 300 K (beta = 5/3) with Feynman-Kac weights and SMC
  (weighted conformers; energy W1 uses the weights);
* ``uncorrected``: the same annealed SDE without weights;
* ``model at 500 K``: the model at its training temperature (beta = 1, no annealing);
* ``FKC + MMFF relax`` / ``uncorrected + MMFF relax``: those conformers MMFF-minimised
  (200 iterations, as ``generate(relax=True)``);
* ``FKC 4x particles`` (+ MMFF relax): SMC with ``4 x 2K`` particles, ``2K`` conformers kept by
  systematic resampling on the final weights (``generate(n_particles=...)``; 4x the cost);
* ``FKC, 2 ULA moves/step`` / ``uncorrected, 2 ULA moves/step``: two unadjusted Langevin moves on
  the annealed target between SDE steps (``generate(mcmc_steps=2)``; 3x the score evaluations);

The model rows use ``generate(fix_chirality=True)`` (wrong-handed conformers whose mirror image
is right are mirrored; the raw fraction with the right stereo is reported as "stereo raw").
* ``ETKDGv3`` and ``ETKDGv3 + MMFF``: RDKit embeddings (seeded), raw and MMFF-minimised;
* ``ETKDGv3 + MMFF, equal time``: as many RDKit conformers as fit in FKC's wall-clock time for
  that molecule (COV-P then uses more conformers than 2K; reported for the time budget);
* ``FKC tempering on MMFF94``: ``generate(method="tempering")``: the model's 500 K conformers,
  MMFF-minimised and restricted to the input's stereo, tempered on the MMFF94 Boltzmann density
  from 500 K to 300 K (100 rungs, 2 MALA + 2 torsion moves each, 200 burn-in moves; weighted);
* ``tempering on MMFF94 without weights``: the same moves, no weights or resampling;
* ``FKC tempering on MMFF94 from ETKDGv3 starts``: the same tempering from MMFF-minimised
  ETKDGv3 conformers instead of the model's (``start="etkdg"``: what the model contributes);
* ``FKC tempering on MMFF94, 50 SDE steps``: the model's start samples from 50 instead of 200
  reverse-SDE steps (they are MMFF-minimised anyway; 4x fewer score evaluations).

Generated SDFs go to ``--out`` and are reused, so the script resumes; ``--shard i/k`` splits the
molecules between processes. ``--report`` combines them into ``metrics.json`` and a markdown
table; ``--readme README.md`` writes it between ``<!-- conformers-table -->`` markers.

    python benchmarks/conformers_table.py --shard 0/2 & python benchmarks/conformers_table.py --shard 1/2 &
    wait; python benchmarks/conformers_table.py --report --readme README.md

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from _tables import write_between_markers
from rdkit import Chem, rdBase
from rdkit.Chem import rdForceFieldHelpers

from fkc.conformers.evaluate import (
    evaluate_sets,
    metric_key,
    read_conformer_sdf,
    write_conformer_sdf,
)
from fkc.systems._md import file_sha256

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models/conformers-tp-T500"
REFERENCE = ROOT / "datasets/conformers/T300_test.sdf"
ENERGIES = ROOT / "datasets/conformers/T300_test_energies.npz"
METHODS = ("FKC", "uncorrected", "model at 500 K", "FKC + MMFF relax",
           "uncorrected + MMFF relax", "FKC 4x particles", "FKC 4x particles + MMFF relax",
           "FKC, 2 ULA moves/step", "uncorrected, 2 ULA moves/step",
           "ETKDGv3", "ETKDGv3 + MMFF", "ETKDGv3 + MMFF, equal time",
           "FKC tempering on MMFF94", "tempering on MMFF94 without weights",
           "FKC tempering on MMFF94 from ETKDGv3 starts",
           "FKC tempering on MMFF94, 50 SDE steps")
TEMPERING = ("FKC tempering on MMFF94", "tempering on MMFF94 without weights",
             "FKC tempering on MMFF94 from ETKDGv3 starts", "FKC tempering on MMFF94, 50 SDE steps")
START_STEPS = 50  # "..., 50 SDE steps": the model's start samples from a shorter reverse SDE
MOVES = 2  # "..., 2 ULA moves/step": Langevin moves on the annealed target between SDE steps
OVERSAMPLE = 4  # "FKC 4x particles": SMC with 4 x 2K particles, 2K kept by systematic resampling
RELAX_ITERS = 200  # as generate(relax=True)


def slug(method: str) -> str:
    return (method.replace(" + ", "_").replace(", ", "_").replace(" ", "-")
            .replace("/", "-per-"))


def _etkdg(template: Chem.Mol, n: int, seed: int, mmff: bool) -> Chem.Mol:
    from fkc.datasets import embed_etkdg

    m = embed_etkdg(template, n, seed, min_confs=1)
    if mmff:
        with rdBase.BlockLogs():
            rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(m, maxIters=2000)
    return m


def run_method(method: str, template: Chem.Mol, n: int, seed: int, steps: int,
               fkc_time: float | None, base: tuple | None = None) -> tuple[Chem.Mol, dict]:
    from fkc.conformers import conformer_arrays, generate

    t0 = time.perf_counter()
    props: dict = {}
    if method in ("FKC", "uncorrected", "model at 500 K", "FKC 4x particles",
                  "FKC, 2 ULA moves/step", "uncorrected, 2 ULA moves/step"):
        temperature = 500.0 if method == "model at 500 K" else 300.0
        n_particles = OVERSAMPLE * n if method == "FKC 4x particles" else n
        mol = generate(template, n, temperature=temperature, model=MODEL, seed=seed,
                       correct=method.startswith("FKC"), n_steps=steps, fix_chirality=True,
                       method="sde",
                       n_particles=n_particles,
                       mcmc_steps=MOVES if "ULA moves" in method else 0)
        a = conformer_arrays(mol)
        props = {"log_weight": a["log_weight"]}
        n_eval = mol.GetDoubleProp("fkc_score_evaluations")
        extra = {"n_resampling": mol.GetDoubleProp("fkc_n_resampling"),
                 "min_ess": mol.GetDoubleProp("fkc_min_ess"),
                 "stereo_ok_raw": mol.GetDoubleProp("fkc_stereo_ok_raw_fraction"),
                 "n_mirrored": mol.GetDoubleProp("fkc_n_mirrored"),
                 "n_distinct": mol.GetDoubleProp("fkc_n_distinct")}
    elif method in TEMPERING:
        mol = generate(template, n, temperature=300.0, model=MODEL, seed=seed,
                       n_steps=START_STEPS if method.endswith("50 SDE steps") else steps,
                       method="tempering", correct=method.startswith("FKC"),
                       start="etkdg" if method.endswith("ETKDGv3 starts") else "auto")
        a = conformer_arrays(mol)
        props = {"log_weight": a["log_weight"]}
        n_eval = mol.GetDoubleProp("fkc_score_evaluations")
        extra = {k: mol.GetDoubleProp(f"fkc_{k}") for k in (
            "n_resampling", "min_ess", "n_mirrored", "n_stereo_replaced",
            "force_field_evaluations", "mcmc_acceptance", "torsion_acceptance", "n_torsions")}
        extra["stereo_ok_raw"] = mol.GetDoubleProp("fkc_stereo_ok_raw_fraction")
        extra["start"] = mol.GetProp("fkc_start")
    elif method.endswith("MMFF relax"):  # the model's conformers, MMFF-minimised
        (mol, props), info = base
        mol = Chem.Mol(mol)
        with rdBase.BlockLogs():
            rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(mol, maxIters=RELAX_ITERS)
        wall = time.perf_counter() - t0 + info["wall_time_s"]
        return mol, {**info, "wall_time_s": wall, "_props": props}
    else:
        if method.endswith("equal time"):
            # as many conformers as fit in FKC's time: measure the rate on 2K first
            t1 = time.perf_counter()
            _etkdg(template, n, seed, mmff=True)
            rate = n / max(time.perf_counter() - t1, 1e-6)
            n = max(n, int(rate * (fkc_time or 0.0)))
            t0 = time.perf_counter()
        mol = _etkdg(template, n, seed, mmff=method != "ETKDGv3")
        n_eval = 0.0
        extra = {}
    wall = time.perf_counter() - t0
    return mol, {"wall_time_s": wall, "score_evaluations": n_eval,
                 "n_conformers": mol.GetNumConformers(), **extra} | {"_props": props}


def generate_all(args) -> None:
    refs, _ = read_conformer_sdf(REFERENCE)
    ids = sorted(refs)[: args.limit]
    i, k = (int(v) for v in args.shard.split("/"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for mol_id in ids[i::k]:
        ref = refs[mol_id]
        template = Chem.Mol(ref)
        template.RemoveAllConformers()
        n = 2 * ref.GetNumConformers()
        fkc_time = None
        for method in args.methods or METHODS:
            path = out / f"{slug(method)}__{mol_id}.sdf"
            info_path = path.with_suffix(".json")
            if path.exists() and info_path.exists():
                if method == "FKC":
                    fkc_time = json.loads(info_path.read_text())["wall_time_s"]
                continue
            base = None
            if method.endswith("MMFF relax"):
                bpath = out / f"{slug(method.removesuffix(' + MMFF relax'))}__{mol_id}.sdf"
                g, p = read_conformer_sdf(bpath)
                base = ((g[mol_id], p[mol_id]),
                        json.loads(bpath.with_suffix(".json").read_text()))
            mol, info = run_method(method, template, n, args.seed, args.steps, fkc_time, base)
            if method == "FKC":
                fkc_time = info["wall_time_s"]
            write_conformer_sdf(path, {mol_id: mol}, {mol_id: info.pop("_props")})
            info_path.write_text(json.dumps(info))
            print(f"{mol_id} {method}: {info}", flush=True)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def report(args) -> str:
    refs, _ = read_conformer_sdf(REFERENCE)
    with np.load(ENERGIES) as f:
        ref_e = {k: f[k] for k in f.files}
    out = Path(args.out)
    cache_path = out / "metrics.json"
    cache = {} if args.recompute or not cache_path.exists() else json.loads(cache_path.read_text())
    results = {}
    for method in METHODS:
        files = sorted(out.glob(f"{slug(method)}__*.sdf"))
        if not files:  # the SDFs are not kept in git: reuse the recorded evaluation if any
            if method in cache:
                results[method] = cache[method]
            continue
        fingerprint = {p.name: file_sha256(p) for p in files}
        if cache.get(method, {}).get("files") == fingerprint:
            results[method] = cache[method]  # evaluated before on byte-identical files
            continue
        gens, weights, infos = {}, {}, []
        for p in files:
            g, props = read_conformer_sdf(p)
            (mol_id, mol), = g.items()
            gens[mol_id] = mol
            if "log_weight" in props[mol_id]:
                lw = props[mol_id]["log_weight"]
                weights[mol_id] = np.exp(lw - np.logaddexp.reduce(lw))
            infos.append(json.loads(p.with_suffix(".json").read_text()))
        res = evaluate_sets(((k, gens[k], refs[k]) for k in gens), gen_weights=weights or None,
                            ref_energies=ref_e)
        s = res["summary"]
        results[method] = {
            "files": fingerprint, "summary": s, "rows": res["rows"],
            "n_molecules": res["n_molecules"],
            "wall_time_s": float(np.median([i["wall_time_s"] for i in infos])),
            "score_evaluations": float(np.median([i["score_evaluations"] for i in infos])),
            "n_conformers": float(np.median([i["n_conformers"] for i in infos])),
            "stereo_ok_raw": (float(np.mean([i["stereo_ok_raw"] for i in infos]))
                              if "stereo_ok_raw" in infos[0] else None),
            "force_field_evaluations": (
                float(np.median([i["force_field_evaluations"] for i in infos]))
                if "force_field_evaluations" in infos[0] else None),
        }
    head = ("| method | molecules | COV-R @0.75 Å % (mean / median) | MAT-R Å | "
            "COV-P @0.75 Å % | MAT-P Å | energy W1 kcal/mol | failed % | stereo raw % | "
            "conformers | wall s / molecule | score evals |")
    lines = [head, "|" + "---|" * 12]
    cr, cp = metric_key("cov_r", 0.75), metric_key("cov_p", 0.75)

    def mm(s, key, scale=1.0, d=2):
        v = s.get(key)
        if v is None or not math.isfinite(v["mean"]):
            return "n/a"
        return f"{v['mean'] * scale:.{d}f} / {v['median'] * scale:.{d}f}"

    for method, r in results.items():
        s = r["summary"]
        lines.append(
            f"| {method} | {r['n_molecules']} | {mm(s, cr, 100, 1)} | {mm(s, 'mat_r')} | "
            f"{mm(s, cp, 100, 1)} | {mm(s, 'mat_p')} | {mm(s, 'energy_w1', 1, 1)} | "
            f"{mm(s, 'failure_fraction', 100, 1)} | "
            f"{'–' if r['stereo_ok_raw'] is None else format(100 * r['stereo_ok_raw'], '.0f')} | "
            f"{r['n_conformers']:.0f} | "
            f"{r['wall_time_s']:.1f} | {r['score_evaluations']:.0f} |")
    table = "\n".join(lines) + (
        "\n\nReference: datasets/conformers/T300_test.sdf (300 K replica-exchange HMC, MMFF94); "
        f"per-molecule rows: {_shown(out / 'metrics.json')}")

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    (out / "metrics.json").write_text(json.dumps(clean(results), indent=1))
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/conformers"))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="first N test molecules (by id)")
    p.add_argument("--shard", default="0/1")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS, metavar="METHOD",
                   help="generate only these methods (default: all; 'FKC' first if equal-time "
                        "ETKDG is included)")
    p.add_argument("--report", action="store_true")
    p.add_argument("--readme", default=None)
    p.add_argument("--recompute", action="store_true",
                   help="re-evaluate every method (default: reuse metrics.json entries whose "
                        "files are unchanged)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (1: shards run side by side without contention)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.report:
        table = report(a)
        print(table)
        if a.readme:
            write_between_markers(a.readme, "conformers-table", table)
        return 0
    generate_all(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
