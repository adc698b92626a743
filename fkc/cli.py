"""The ``fkc`` command line: ``demo``, ``anneal``, ``train``, ``evaluate``, ``conformers``,
``evaluate-conformers``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    if args.workload == "lj13":
        from .demo_lj13 import format_lj13_table, run_lj13_demo

        rows = run_lj13_demo(out=args.out, n_particles=args.particles or 256,
                             n_steps=args.steps or 200, seed=args.seed,
                             progress=not args.no_progress)
        print(format_lj13_table(rows))
    else:
        from .demo import format_table, run_demo

        rows = run_demo(out=args.out, n_particles=args.particles or 10000,
                        n_steps=args.steps or 400, seed=args.seed, progress=not args.no_progress)
        print(format_table(rows))
    print(f"\nwrote {args.out}")
    return 0


def _is_md_file(path: str) -> bool:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            return "topology_pdb" in f.files
    except (OSError, ValueError):
        return False


def _evaluate_aldp(args: argparse.Namespace, samples) -> int:
    """Alanine-dipeptide samples against MD (``fkc.metrics.evaluate_aldp``) + Ramachandran plot."""
    import numpy as np

    from .metrics import evaluate_aldp, phi_psi, ramachandran_free_energy_plot, reflect_to_l
    from .systems import AlanineDipeptide, load_md, samples_in_nm

    ref = load_md(args.reference)
    system = AlanineDipeptide()
    x = samples_in_nm(samples.x, samples.metadata)
    metrics = evaluate_aldp(x, ref, system, nonfinite="drop" if args.drop_nonfinite else "raise",
                            fix_chirality=args.fix_chirality)  # fmt: skip
    print(f"samples:   {args.samples} ({metrics['n_samples']} used, {metrics['n_dropped']} dropped"
          f", {metrics['n_reflected']} mirrored D -> L)")
    print(f"reference: {args.reference} ({metrics['n_reference']} frames, T = {ref.temperature:g} K)")
    for key, v in metrics.items():
        if not key.startswith("n_"):
            print(f"{key:<28}{v:>12.4f}")
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.samples).with_suffix("")
    out_dir.mkdir(parents=True, exist_ok=True)
    x = x[np.isfinite(x).all(axis=(1, 2))]
    if args.fix_chirality:  # the plot shows what the metrics saw
        x, _ = reflect_to_l(x, system)
    png = out_dir / "ramachandran.png"
    ramachandran_free_energy_plot({"samples": phi_psi(x, system),
                                   f"MD {ref.temperature:g} K": phi_psi(ref.x, system)},
                                  title=Path(args.samples).name, path=png)  # fmt: skip
    print(f"wrote {png}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.json}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .io import load_samples
    from .metrics import evaluate_samples, plot_histograms
    from .systems.reference import load_reference

    samples = load_samples(args.samples)
    if _is_md_file(args.reference):
        return _evaluate_aldp(args, samples)
    ref = load_reference(args.reference)
    system = ref.system()
    metrics = evaluate_samples(samples.x, ref, system, nonfinite="drop" if args.drop_nonfinite else "raise")
    print(f"samples:   {args.samples} ({metrics['n_samples']} used, {metrics['n_dropped']} dropped)")
    print(f"reference: {args.reference} ({metrics['n_reference']}, T = {ref.temperature:g})")
    for key in ("distance_w2", "energy_w1", "energy_w2", "distance_tv", "energy_mean",
                "energy_mean_reference"):
        print(f"{key:<24}{metrics[key]:>12.4f}")
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.samples).with_suffix("")
    paths = plot_histograms({"samples": samples.x}, ref, system, out_dir,
                            title=f"{Path(args.samples).name} vs T = {ref.temperature:g}")
    for p in paths.values():
        print(f"wrote {p}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.json}")
    return 0


def _noise(value: str) -> str | float:
    if value in ("target", "tempered"):
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"noise must be 'target', 'tempered' or a number >= 0, got {value!r}") from None


def _anneal(args: argparse.Namespace) -> int:
    from .annealing import anneal_to_file

    path = anneal_to_file(args.out, model=args.model, temperature=args.temperature,
                          n_particles=args.particles, seed=args.seed, noise=args.noise,
                          correct=not args.no_correct, n_steps=args.steps,
                          ess_threshold=args.ess_threshold,
                          resample_window=tuple(args.resample_window), grid=args.grid,
                          t_min=args.t_min, weight_window=tuple(args.weight_window),
                          denoise=not args.no_denoise, mcmc_steps=args.mcmc_steps,
                          mcmc=args.mcmc, mcmc_step_size=args.mcmc_step_size,
                          mcmc_window=tuple(args.mcmc_window), mcmc_adapt=args.mcmc_adapt,
                          weights=args.weights, method=args.method,
                          tempering_steps=args.tempering_steps, burn_in=args.burn_in,
                          torsion_steps=args.torsion_steps,
                          force_field_steps=args.force_field_steps, device=args.device,
                          progress=not args.no_progress)
    print(f"wrote {path}")
    if args.trajectory:
        from .io import load_samples
        from .systems import samples_in_nm, save_trajectory

        samples = load_samples(path)
        if samples.metadata.get("system") != "aldp":
            raise ValueError(f"--trajectory needs an alanine-dipeptide model (metadata system "
                             f"'aldp'), got system {samples.metadata.get('system')!r}")  # fmt: skip
        for p in save_trajectory(samples_in_nm(samples.x, samples.metadata), args.trajectory):
            print(f"wrote {p}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import main as train_main

    return train_main([args.config, *args.options])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fkc", description="Feynman-Kac corrected diffusion sampling")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="anneal the shipped LJ-13 model from T=2 to T=1.5 (default), "
                                    "or anneal/multiply 2-D Gaussian-mixture experts")
    d.add_argument("--workload", choices=["lj13", "gmm"], default="lj13",
                   help="lj13: FKC vs uncorrected vs parallel tempering, about a minute on one "
                        "core; gmm: exact 2-D targets (default: %(default)s)")
    d.add_argument("--out", default="fkc_demo.png", help="PNG to write (default: %(default)s)")
    d.add_argument("--particles", type=int, default=None,
                   help="particles (default: 256 for lj13, 10000 for gmm)")
    d.add_argument("--steps", type=int, default=None,
                   help="SDE steps (default: 200 for lj13, 400 for gmm)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.add_argument("--no-progress", action="store_true", help="hide progress bars")
    d.set_defaults(func=_demo)

    a = sub.add_parser("anneal", help="sample a trained model at another temperature (FKC)")
    a.add_argument("--model", required=True, help="checkpoint file or model folder")
    a.add_argument("--temperature", type=float, required=True,
                   help="target temperature; beta = T_train / T")
    a.add_argument("--particles", type=int, default=1000, help="(default: %(default)s)")
    a.add_argument("--steps", type=int, default=500, help="SDE steps (default: %(default)s)")
    a.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    a.add_argument("--noise", type=_noise, default="target",
                   help="'target', 'tempered' or a noise level >= 0 (default: %(default)s)")
    a.add_argument("--no-correct", action="store_true", help="uncorrected sampler (baseline)")
    a.add_argument("--ess-threshold", type=float, default=0.5, help="(default: %(default)s)")
    a.add_argument("--resample-window", type=float, nargs=2, default=[1.0, 0.0],
                   metavar=("T_HI", "T_LO"),
                   help="resample only at times T_LO <= t <= T_HI (default: 1 0)")
    a.add_argument("--grid", choices=["uniform", "edm"], default="edm",
                   help="time grid: uniform in t or EDM-style, dense at small noise "
                        "(default: %(default)s)")
    a.add_argument("--t-min", type=float, default=1e-3, help="last time (default: %(default)s)")
    a.add_argument("--weight-window", type=float, nargs=2, default=[1.0, 0.0],
                   metavar=("T_HI", "T_LO"),
                   help="accumulate weights only for T_LO <= t <= T_HI; anything but 1 0 is an "
                        "approximation (default: 1 0, exact)")
    a.add_argument("--no-denoise", action="store_true",
                   help="return the particles at t_min as they are, without the final Tweedie "
                        "denoising step")
    a.add_argument("--mcmc-steps", type=int, default=0,
                   help="Langevin moves per step on the current target (resample-move; each "
                        "costs one score evaluation per particle; default: %(default)s)")
    a.add_argument("--mcmc", choices=["auto", "mala", "ula"], default="auto",
                   help="MALA (exact, needs an energy-parameterised model) or ULA (scores only, "
                        "approximate); auto: MALA when the model has a log density "
                        "(default: %(default)s)")
    a.add_argument("--mcmc-step-size", type=float, default=0.5,
                   help="Langevin step relative to sigma_t^2 / beta (default: %(default)s)")
    a.add_argument("--mcmc-window", type=float, nargs=2, default=[1.0, 0.0],
                   metavar=("T_HI", "T_LO"), help="moves only for T_LO <= t <= T_HI "
                                                  "(default: 1 0)")
    a.add_argument("--mcmc-adapt", action="store_true",
                   help="tune the MALA step size along the run to 0.57 acceptance "
                        "(--mcmc-step-size is the initial value)")
    a.add_argument("--weights", choices=["fkc", "density", "ais"], default="fkc",
                   help="'fkc': continuous-time FKC weights (scores suffice); 'density': exact "
                        "discrete-time SMC weights from an energy-parameterised model's log "
                        "density (any step count); 'ais': annealed importance sampling, no SDE "
                        "step, needs --mcmc-steps (default: %(default)s)")
    a.add_argument("--method", choices=["sde", "tempering"], default="sde",
                   help="'sde': the (weighted) annealed reverse SDE; 'tempering': the model's own "
                        "reverse SDE to t_min, then SMC tempering at t_min from beta = 1 to beta "
                        "with --mcmc-steps MALA moves per rung (energy-parameterised models; "
                        "default: %(default)s)")
    a.add_argument("--tempering-steps", type=int, default=100,
                   help="rungs of the tempering ladder, geometric in beta (--method tempering; "
                        "default: %(default)s)")
    a.add_argument("--burn-in", type=int, default=20,
                   help="single adaptive MALA moves at beta = 1 before tempering (--method "
                        "tempering; default: %(default)s)")
    a.add_argument("--torsion-steps", type=int, default=0,
                   help="Metropolis torsion moves (rigid rotations about the rotatable bonds of "
                        "the model's molecule) before every burn-in move and every rung: they "
                        "cross the barriers between conformational basins (--method tempering; "
                        "default: %(default)s)")
    a.add_argument("--force-field-steps", type=int, default=0,
                   help="then temper on from the model's q^beta to the force field's Boltzmann "
                        "density exp(-U/kT) in this many rungs, which removes the model's error "
                        "(--method tempering; alanine dipeptide; default: %(default)s)")
    a.add_argument("--device", default=None, help="torch device (default: cpu)")
    a.add_argument("--out", required=True, help="output npz")
    a.add_argument("--trajectory", default=None,
                   help="also write the samples as a trajectory (.dcd/.pdb/.xtc/.h5, with a .pdb "
                        "topology beside .dcd/.xtc); alanine-dipeptide models")
    a.add_argument("--no-progress", action="store_true", help="hide progress bars")
    a.set_defaults(func=_anneal)

    tr = sub.add_parser("train", help="train a score model from a YAML config")
    tr.add_argument("config", help="YAML config, e.g. configs/lj13_egnn_T2.yaml")
    tr.add_argument("options", nargs=argparse.REMAINDER,
                    help="passed on to `python -m fkc.train` (e.g. --set train.n_steps=300)")
    tr.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="metrics of a sample file against reference samples")
    e.add_argument("samples", help="npz with x (n, n_atoms, 3), e.g. from `fkc anneal`")
    e.add_argument("--reference", required=True,
                   help="reference npz, e.g. datasets/lj13/T1.5.npz, or an alanine-dipeptide MD "
                        "file (datasets/aldp/T300_s0.npz): then the dihedral metrics")
    e.add_argument("--out-dir", default=None, help="where to write histogram PNGs "
                   "(default: next to the samples)")
    e.add_argument("--json", default=None, help="also write the metrics as JSON here")
    e.add_argument("--fix-chirality", action="store_true",
                   help="alanine dipeptide: mirror D samples to L before the metrics "
                        "(fkc.metrics.reflect_to_l; chirality_L stays the raw fraction)")
    e.add_argument("--drop-nonfinite", action="store_true",
                   help="drop (and count) non-finite samples instead of failing")
    e.set_defaults(func=_evaluate)

    from .conformers.cli import add_parsers

    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
