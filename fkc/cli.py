"""The ``fkc`` command line: ``fkc demo`` (more subcommands arrive with the molecular workflows)."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import format_table, run_demo

    rows = run_demo(out=args.out, n_particles=args.particles, n_steps=args.steps, seed=args.seed,
                    progress=not args.no_progress)
    print(format_table(rows))
    print(f"\nwrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fkc", description="Feynman-Kac corrected diffusion sampling")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="anneal and multiply built-in 2-D Gaussian-mixture experts")
    d.add_argument("--out", default="fkc_demo.png", help="PNG to write (default: %(default)s)")
    d.add_argument("--particles", type=int, default=10000, help="particles (default: %(default)s)")
    d.add_argument("--steps", type=int, default=400, help="SDE steps (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.add_argument("--no-progress", action="store_true", help="hide progress bars")
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
