"""Alanine dipeptide at 300 K by SMC tempering on the force field alone (issue 5 reference).

An independent check of the basin populations that does not use any model: 512 frames of
800 K MD (``datasets/aldp/T800_sub.npz``, samples of ``exp(-U/kT_800)``) are tempered to
``exp(-U/kT_300)`` at a fixed small time with :func:`fkc.temper` and two
:class:`fkc.experts.boltzmann.BoltzmannExpert` s (OpenMM energies and forces): 150 rungs
geometric in the exponent, 2 adaptive MALA moves and 2 Metropolis torsion moves per rung.
Unlike 300 K MD, which does not cross phi in 2 x 50 ns, the torsion moves reach alphaL, so this
measures the 300 K basin populations including alphaL. Prints the populations and the metrics
against the 300 K MD reference and writes them to ``--out`` (JSON, atomically).

    python benchmarks/aldp_force_field_smc.py --seeds 0 1 --out benchmarks/results/aldp_force_field_smc.json

Not part of the test suite (about 60 s per seed on one core).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(seed: int, n: int, md800: Path):
    from fkc import temper
    from fkc.experts.boltzmann import BoltzmannExpert
    from fkc.sampler import TorsionSet
    from fkc.sde import VPSDE
    from fkc.systems import AlanineDipeptide, load_md
    from fkc.systems._aldp import kT
    from fkc.systems._aldp_data import ANGSTROM_PER_NM

    system = AlanineDipeptide()
    proc = VPSDE(com_free=True)
    md = load_md(md800)
    if n > len(md.x):
        raise ValueError(f"{n} particles but {md800} has {len(md.x)} frames")
    rng = np.random.default_rng(seed)
    x0 = torch.tensor(md.x[rng.choice(len(md.x), n, replace=False)] * ANGSTROM_PER_NM,
                      dtype=torch.float64)  # angstrom, like the models
    x0 = proc.space.project(x0)

    def ff(temperature):
        return BoltzmannExpert(system.energy_and_forces, kT(temperature), proc, (22, 3),
                               length_scale=1.0 / ANGSTROM_PER_NM)

    res = temper(ff(300.0), x0, start=ff(md.temperature), t=1e-3, n_steps=150,
                 schedule="geometric", mcmc_steps=2, mcmc_step_size=0.05, burn_in=0,
                 torsions=TorsionSet.from_bonds(system.bonds, 22), torsion_steps=2,
                 generator=torch.Generator().manual_seed(seed), progress=False)
    return system, res.samples.numpy() / ANGSTROM_PER_NM, res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--particles", type=int, default=512)
    p.add_argument("--md800", default=str(ROOT / "datasets/aldp/T800_sub.npz"))
    p.add_argument("--md300", nargs="+", default=[str(ROOT / f"datasets/aldp/T300_s{i}.npz")
                                                   for i in (0, 1)])
    p.add_argument("--out", default=None, help="JSON with the metrics per seed")
    args = p.parse_args(argv)
    from aldp_annealing_table import _pooled_md

    from fkc.metrics import evaluate_aldp

    torch.set_num_threads(1)
    _, ref = _pooled_md(args.md300)
    out = {}
    for seed in args.seeds:
        system, x, res = run(seed, args.particles, Path(args.md800))
        m = evaluate_aldp(x, ref, system)
        m.update(min_ess=float(res.ess.min()), resamplings=int(res.resampled.sum()),
                 torsion_acceptance_last=float(res.torsion_acceptance[-1]))
        out[str(seed)] = m
        print(f"seed {seed}: beta / alphaR / alphaL {m['pop_beta']:.3f} / {m['pop_alphaR']:.3f} / "
              f"{m['pop_alphaL']:.3f} (MD {m['pop_beta_reference']:.3f} / "
              f"{m['pop_alphaR_reference']:.3f} / {m['pop_alphaL_reference']:.3f}); torus W2 "
              f"{m['torus_w2']:.3f}, KL {m['rama_kl']:.3f}, energy W1 {m['energy_w1']:.2f} kJ/mol; "
              f"min ESS {m['min_ess']:.0f}", flush=True)
    if args.out:
        path = Path(args.out)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
