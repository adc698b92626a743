"""``fkc conformers`` and ``fkc evaluate-conformers`` (wired into :mod:`fkc.cli`)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def _molecules(args: argparse.Namespace) -> dict:
    """``{id: SMILES or Mol}`` from ``--smiles`` (repeatable) or ``--from-sdf``."""
    from fkc.conformers.evaluate import read_conformer_sdf

    mols: dict = {}
    for k, s in enumerate(args.smiles or []):
        mols[f"mol{k}" if len(args.smiles) > 1 else "mol"] = s
    if args.from_sdf:
        ref, _ = read_conformer_sdf(args.from_sdf)
        for mol_id, m in ref.items():
            if mol_id in mols:
                raise ValueError(f"molecule id {mol_id!r} given twice")
            mols[mol_id] = m
    if not mols:
        raise ValueError("give --smiles SMILES (repeatable) or --from-sdf FILE")
    return mols


def _particles(args: argparse.Namespace, n: int) -> int:
    if args.oversample < 1:
        raise ValueError(f"--oversample must be an integer >= 1, got {args.oversample}")
    if args.oversample > 1 and args.method != "sde":
        raise ValueError(f"--oversample {args.oversample} is for --method sde (tempering returns "
                         "its weighted particles)")
    return args.oversample * n


def _conformers(args: argparse.Namespace) -> int:
    from rdkit import Chem

    from fkc.conformers.evaluate import write_conformer_sdf
    from fkc.conformers.generate import conformer_arrays, generate

    out, props = {}, {}
    inputs = _molecules(args)
    for mol_id, m in inputs.items():
        n = args.n
        if n is None:
            if not isinstance(m, Chem.Mol):
                raise ValueError("--n is required with --smiles")
            n = args.per_reference * m.GetNumConformers()
        template = m
        if isinstance(m, Chem.Mol):  # a reference record: its graph, not its coordinates
            template = Chem.Mol(m)
            template.RemoveAllConformers()
        res = generate(template, n, temperature=args.temperature, model=args.model,
                       seed=args.seed, correct=not args.no_correct, noise=args.noise,
                       n_steps=args.steps, ess_threshold=args.ess_threshold,
                       final_resample=args.final_resample, n_particles=_particles(args, n),
                       relax=args.relax, mcmc_steps=args.mcmc_steps,
                       fix_chirality=args.fix_chirality, method=args.method,
                       tempering_steps=args.tempering_steps, torsion_steps=args.torsion_steps,
                       burn_in=args.burn_in, start=args.start,
                       device=args.device, progress=not args.no_progress)
        arr = conformer_arrays(res)
        out[mol_id] = res
        props[mol_id] = {"log_weight": arr["log_weight"], "energy": arr["energy"],
                         "stereo_ok": arr["stereo_ok"].astype(float)}
        if not arr["finite"].all():
            raise ValueError(f"{mol_id}: {int((~arr['finite']).sum())} conformers have "
                             "non-finite coordinates; nothing written")
        print(f"{mol_id}: {n} conformers ({res.GetProp('fkc_method')}), "
              f"beta = {res.GetDoubleProp('fkc_beta'):.3f}, "
              f"{int(res.GetDoubleProp('fkc_n_resampling'))} resamplings, "
              f"stereo kept in {100 * res.GetDoubleProp('fkc_stereo_ok_fraction'):.0f} % "
              f"({int(res.GetDoubleProp('fkc_n_mirrored'))} mirrored), "
              f"{res.GetDoubleProp('fkc_wall_time_s'):.1f} s")
    write_conformer_sdf(args.out, out, props)
    print(f"wrote {args.out}")
    return 0


def _evaluate_conformers(args: argparse.Namespace) -> int:
    from fkc.conformers.evaluate import evaluate_sets, format_table, read_conformer_sdf

    gen, gen_props = read_conformer_sdf(args.generated)
    ref, _ = read_conformer_sdf(args.reference)
    missing = sorted(set(gen) - set(ref))
    if missing:
        raise ValueError(f"{args.generated}: molecules {missing[:5]} are not in {args.reference}")
    ref_e = None
    if args.reference_energies:
        with np.load(args.reference_energies, allow_pickle=False) as f:
            ref_e = {k: f[k] for k in f.files}
    weights = {}
    for k, p in gen_props.items():
        if "log_weight" in p and not args.unweighted:
            lw = np.asarray(p["log_weight"], dtype=np.float64)
            weights[k] = np.exp(lw - np.logaddexp.reduce(lw))
    res = evaluate_sets(((k, gen[k], ref[k]) for k in gen), gen_weights=weights or None,
                        ref_energies=ref_e)
    print(f"{res['n_molecules']} molecules: {args.generated} vs {args.reference}")
    print(format_table(res["summary"]))
    if args.json:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        rows = [{k: clean(v) for k, v in r.items()} for r in res["rows"]]
        summary = {k: {kk: clean(vv) for kk, vv in v.items()} for k, v in res["summary"].items()}
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
        print(f"wrote {args.json}")
    return 0


def add_parsers(sub) -> None:
    """Add ``conformers`` and ``evaluate-conformers`` to the ``fkc`` subparsers."""
    from fkc.cli import _noise

    c = sub.add_parser("conformers", help="FKC-annealed conformer ensembles from SMILES")
    c.add_argument("--smiles", action="append", help="SMILES (repeat for several molecules)")
    c.add_argument("--from-sdf", default=None,
                   help="molecules of a reference SDF (grouped by fkc_id), e.g. "
                        "datasets/conformers/T300_test.sdf")
    c.add_argument("--n", type=int, default=None, help="conformers per molecule")
    c.add_argument("--per-reference", type=int, default=2,
                   help="with --from-sdf and no --n: this many conformers per reference "
                        "conformer (default: %(default)s, the field's 2K)")
    c.add_argument("--temperature", type=float, default=300.0, help="K (default: %(default)s)")
    c.add_argument("--model", default=None,
                   help="checkpoint or model folder (default: models/conformers-tp-T500)")
    c.add_argument("--steps", type=int, default=200, help="SDE steps (default: %(default)s)")
    c.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    c.add_argument("--noise", type=_noise, default="target",
                   help="'target', 'tempered' or a noise level >= 0 (default: %(default)s)")
    c.add_argument("--no-correct", action="store_true", help="uncorrected sampler (baseline)")
    c.add_argument("--ess-threshold", type=float, default=0.5, help="(default: %(default)s)")
    c.add_argument("--final-resample", action="store_true",
                   help="resample at the end (equal weights, duplicates possible) instead of "
                        "writing weighted conformers")
    c.add_argument("--oversample", type=int, default=1,
                   help="--method sde: run the SMC with this many times more particles than "
                        "conformers and keep --n of them by systematic resampling (default: "
                        "%(default)s)")
    c.add_argument("--fix-chirality", action="store_true",
                   help="--method sde: mirror conformers whose mirror image has the input's "
                        "stereochemistry (counted in the output; tempering always does this to "
                        "its start conformers)")
    c.add_argument("--relax", action="store_true", help="MMFF-minimise each conformer")
    c.add_argument("--mcmc-steps", type=int, default=None,
                   help="--method sde: Langevin moves per SDE step on the annealed target (ULA "
                        "for score networks; each costs one score evaluation; default 0); "
                        "--method tempering: MALA moves on MMFF94 per rung (default 2)")
    c.add_argument("--method", choices=("tempering", "sde"), default="tempering",
                   help="tempering: the model's conformers at its training temperature "
                        "tempered on the MMFF94 Boltzmann density to --temperature (weighted "
                        "SMC); sde: FKC on the model's own q^beta (default: %(default)s)")
    c.add_argument("--start", choices=("auto", "model", "etkdg"), default="auto",
                   help="--method tempering: start conformers from the model (wrong-stereo ones "
                        "replaced by ETKDGv3 conformers with 'auto', by copies of right ones with "
                        "'model') or from ETKDGv3 only (default: %(default)s)")
    c.add_argument("--tempering-steps", type=int, default=100,
                   help="--method tempering: rungs of the temperature ladder (default: %(default)s)")
    c.add_argument("--torsion-steps", type=int, default=2,
                   help="--method tempering: torsion moves per rung (default: %(default)s)")
    c.add_argument("--burn-in", type=int, default=200,
                   help="--method tempering: moves at the training temperature before the first "
                        "reweighting (default: %(default)s)")
    c.add_argument("--device", default=None, help="torch device (default: cpu)")
    c.add_argument("--out", required=True, help="output SDF (one record per conformer)")
    c.add_argument("--no-progress", action="store_true", help="hide progress bars")
    c.set_defaults(func=_conformers)

    e = sub.add_parser("evaluate-conformers",
                       help="COV-R/MAT-R, COV-P/MAT-P, energy W1 and failures against references")
    e.add_argument("generated", help="SDF from `fkc conformers` (grouped by fkc_id)")
    e.add_argument("--reference", required=True,
                   help="reference SDF, e.g. datasets/conformers/T300_test.sdf")
    e.add_argument("--reference-energies", default=None,
                   help="npz of reference energies per id (e.g. T300_test_energies.npz); "
                        "default: MMFF energies of the reference conformers")
    e.add_argument("--unweighted", action="store_true",
                   help="ignore log_weight when computing energy W1")
    e.add_argument("--json", default=None, help="also write per-molecule rows and summary")
    e.set_defaults(func=_evaluate_conformers)
