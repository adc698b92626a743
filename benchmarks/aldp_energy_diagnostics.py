"""How good is an energy-parameterised alanine-dipeptide model's log density? (issue 5)

For MD frames ``x`` at temperature ``T_md`` with potential energies ``U`` (``fkc.systems.load_md``
files), prints

* the residual ``r = E_theta(x, t0) - U/kT_train`` (median removed): robust sd (IQR / 1.35) and
  its mean / median per Ramachandran basin (an exact model has ``r = const``);
* the basin populations of the model's annealed density ``q^beta`` at ``T_md``
  (``beta = T_train / T_md``), estimated by importance-reweighting the frames, which are samples
  of ``exp(-U/kT_md)``: ``log w = -beta E_theta(x, t0) + U/kT_md``, with the ESS of the weights
  within each basin. This is what an exact sampler of ``q^beta`` would give, the limit of any
  annealing of this model.

    python benchmarks/aldp_energy_diagnostics.py --model models/aldp-energy-em-T800 \\
        datasets/aldp/T300_sub.npz datasets/aldp/T800_sub.npz

Not part of the test suite.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.special import logsumexp


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("md", nargs="+", help="MD files (fkc.systems.load_md)")
    p.add_argument("--model", default="models/aldp-energy-em-T800")
    p.add_argument("--t0", type=float, default=1e-3, help="time of the log density (default: 1e-3)")
    args = p.parse_args(argv)
    from fkc.annealing import resolve_checkpoint
    from fkc.experts.score_model import ScoreModelExpert
    from fkc.metrics import phi_psi
    from fkc.metrics._dihedrals import BASIN_NAMES, assign_basins
    from fkc.systems import AlanineDipeptide, load_md
    from fkc.systems._aldp import kT
    from fkc.systems._aldp_data import ANGSTROM_PER_NM

    torch.set_num_threads(1)
    expert = ScoreModelExpert.from_checkpoint(resolve_checkpoint(args.model))
    if not expert.has_log_density:
        p.error(f"{args.model} has no log density (not an energy-parameterised model)")
    t_train = float(expert.metadata["training_temperature"])
    scale = ANGSTROM_PER_NM if expert.metadata.get("length_unit") == "angstrom" else 1.0
    system = AlanineDipeptide()
    for path in args.md:
        md = load_md(path)
        x = torch.tensor(md.x * scale, dtype=torch.float32)
        x = expert.process.space.project(x)
        energy = []
        with torch.no_grad():
            for i in range(0, len(x), 250):
                xb = x[i:i + 250]
                energy.append(-expert.log_density(xb, torch.full((len(xb),), args.t0)).double())
        e = torch.cat(energy).numpy()
        r = e - md.energy / kT(t_train)
        r -= np.median(r)
        basins = assign_basins(phi_psi(md.x, system))
        beta = t_train / md.temperature
        log_w = -beta * e + md.energy / kT(md.temperature)
        w = np.exp(log_w - logsumexp(log_w))
        iqr = np.subtract(*np.percentile(r, [75, 25]))
        print(f"{path}: {len(r)} frames at {md.temperature:g} K; residual robust sd "
              f"{iqr / 1.35:.2f} nats, 1-99 pct {np.percentile(r, 1):.1f} .. "
              f"{np.percentile(r, 99):.1f}")
        print(f"  model q^beta at {md.temperature:g} K (beta = {beta:.3f}) by reweighting, "
              f"total ESS {1 / np.sum(w ** 2):.0f}")
        for k, name in enumerate(BASIN_NAMES):
            m = basins == k
            if not m.any():
                continue
            lw = log_w[m]
            ess = np.exp(2 * logsumexp(lw) - logsumexp(2 * lw)) / m.sum()
            print(f"  {name:7s} MD {m.mean():.3f}  model {w[m].sum():.3f}  (ESS {100 * ess:.0f} % "
                  f"of {m.sum()})  residual mean {r[m].mean():+.3f} median {np.median(r[m]):+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
