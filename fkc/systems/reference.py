"""Reference (ground-truth) sample sets from parallel tempering, and their files.

``python -m fkc.systems.reference --system lj13 --out datasets/lj13 [--quick]`` regenerates every
reference set of a system; :func:`generate_reference` does the same from Python.

Procedure (all numbers are fields of :class:`ReferenceSpec`):

1. Pilot: one parallel-tempering run (``n_burn_in`` + ``n_pilot`` sweeps) measures the integrated
   autocorrelation time ``tau_T`` of the energy at every target temperature ``T``.
2. Thinning: configurations at ``T`` are stored every ``thin_T = ceil(thin_factor * tau_T)`` sweeps.
3. Production: ``n_runs`` independent runs (own seeds, own random start, own burn-in with step-size
   adaptation, then frozen step sizes), each long enough to store its share of every set.
4. Splits: at a temperature in ``train_temperatures`` each run's stored sequence is cut into a
   training block (first), ``split_gap`` discarded samples, and a held-out block.
5. Files: ``T{T}.npz`` (held-out/evaluation set) and ``T{T}_train.npz``, each with arrays
   ``x (n, n_atoms, n_dim)`` float32 (zero centre of mass up to float32 rounding), ``energy (n,)``
   float64 (recomputed in float64 from the stored float32 coordinates), ``temperature`` and a JSON
   string ``metadata`` (system parameters, convention, seeds, ladder, thinning); plus
   ``diagnostics.json``, ``README.md`` and ``SHA256SUMS``.

Same spec and seed give bit-identical ``.npz`` files on the same platform (``SHA256SUMS`` covers
them; README and diagnostics also record timings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from fkc.systems._base import System
from fkc.systems._pt import PTConfig, parallel_tempering
from fkc.systems._registry import get_system
from fkc.systems.diagnostics import (
    effective_sample_size,
    gelman_rubin,
    integrated_autocorr_time,
    mean_difference_z,
)


@dataclass(frozen=True)
class ReferenceSpec:
    """How a system's reference sets are generated.

    Attributes:
        system: name for :func:`~fkc.systems.get_system` (e.g. ``"lj13"``).
        system_params: field overrides for the system (e.g. ``{"pair_convention": "unordered"}``).
        temperatures: target temperatures; each gets a held-out set ``T{T}.npz``. Must be in
            ``ladder``.
        ladder: PT temperature ladder (strictly increasing).
        n_samples: samples per held-out set.
        train_temperatures: targets that also get ``T{T}_train.npz``.
        n_train: samples per training set.
        n_runs: independent PT runs (>= 2; R-hat uses them).
        n_burn_in: adaptive burn-in sweeps per run (pilot included).
        n_pilot: production sweeps of the pilot run used to choose the thinning.
        thin_factor: store every ``ceil(thin_factor * tau_T)`` sweeps.
        split_gap: stored samples discarded between a run's training and held-out blocks.
        target_accept: target single-atom acceptance during burn-in.
        seed: master seed; the pilot and the runs get seeds from ``SeedSequence(seed)``.
    """

    system: str
    temperatures: tuple[float, ...]
    ladder: tuple[float, ...]
    n_samples: int
    n_runs: int
    n_burn_in: int
    n_pilot: int
    system_params: dict = field(default_factory=dict)
    train_temperatures: tuple[float, ...] = ()
    n_train: int = 0
    thin_factor: float = 5.0
    split_gap: int = 5
    target_accept: float = 0.4
    seed: int = 0

    def __post_init__(self) -> None:
        for t in self.temperatures:
            if not any(math.isclose(t, s, rel_tol=1e-9) for s in self.ladder):
                raise ValueError(f"target temperature {t} is not in the ladder {self.ladder}")
        for t in self.train_temperatures:
            if not any(math.isclose(t, s, rel_tol=1e-9) for s in self.temperatures):
                raise ValueError(
                    f"train temperature {t} is not a target temperature {self.temperatures}"
                )
        if self.n_samples < 1 or self.n_train < 0:
            raise ValueError(f"need n_samples >= 1, n_train >= 0; got {self.n_samples}, "
                             f"{self.n_train}")  # fmt: skip
        if self.train_temperatures and self.n_train < 1:
            raise ValueError(f"train_temperatures {self.train_temperatures} need n_train >= 1")
        if self.n_runs < 2:
            raise ValueError(f"n_runs must be >= 2 (for R-hat), got {self.n_runs}")
        if self.n_pilot < 100 or self.n_burn_in < 0:
            raise ValueError(f"need n_pilot >= 100, n_burn_in >= 0; got {self.n_pilot}, "
                             f"{self.n_burn_in}")  # fmt: skip
        if not self.thin_factor > 0:
            raise ValueError(f"thin_factor must be > 0, got {self.thin_factor}")
        PTConfig(temperatures=self.ladder, n_burn_in=self.n_burn_in, n_sweeps=1)  # validates

    def make_system(self) -> System:
        return get_system(self.system, **self.system_params)


# Ladder for LJ-13 (ordered convention, k = 1): rungs below 0.8 and above 2.0 shorten the energy
# autocorrelation at the end targets (Sokal-window estimates at T = 0.8: ~20 sweeps, vs ~100 with
# 0.8 at the bottom of the ladder); neighbour swap rates 0.43-0.75.
_LJ13_LADDER = (0.7, 0.75, 0.8, 0.87, 0.93, 1.0, 1.1, 1.2, 1.35, 1.5, 1.66, 1.83, 2.0, 2.4)

DEFAULT_SPECS: dict[str, ReferenceSpec] = {
    "lj13": ReferenceSpec(
        system="lj13",
        temperatures=(2.0, 1.5, 1.0, 0.8),
        ladder=_LJ13_LADDER,
        n_samples=20_000,
        train_temperatures=(2.0,),
        n_train=40_000,
        n_runs=8,
        n_burn_in=50_000,
        n_pilot=500_000,
        thin_factor=5.0,
        seed=20_240_613,
    ),
    # Independent runs (own seed) giving training sets at the annealing targets, for the
    # "model trained directly at T" reference rows; datasets/lj13/train_low/.
    "lj13-low-train": ReferenceSpec(
        system="lj13",
        temperatures=(1.5, 0.8),
        ladder=_LJ13_LADDER,
        n_samples=2_000,
        train_temperatures=(1.5, 0.8),
        n_train=20_000,
        n_runs=8,
        n_burn_in=50_000,
        n_pilot=500_000,
        thin_factor=5.0,
        seed=20_240_615,
    ),
    "dw4": ReferenceSpec(
        system="dw4",
        temperatures=(1.0,),
        ladder=(1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0),
        n_samples=10_000,
        train_temperatures=(1.0,),
        n_train=20_000,
        n_runs=4,
        n_burn_in=20_000,
        n_pilot=100_000,
        thin_factor=5.0,
        seed=20_240_614,
    ),
}


def quick_spec(spec: ReferenceSpec) -> ReferenceSpec:
    """A seconds-long smoke-test version of ``spec`` (not converged; for testing the pipeline)."""
    return ReferenceSpec(
        **{
            **asdict(spec),
            "n_samples": 200,
            "n_train": 400 if spec.train_temperatures else 0,
            "n_runs": 2,
            "n_burn_in": 1_000,
            "n_pilot": 5_000,
            "thin_factor": 1.0,
            "split_gap": 1,
        }
    )


def _tag(t: float) -> str:
    return f"T{t:.1f}" if round(t, 1) == t else f"T{t:g}"


def file_names(spec: ReferenceSpec) -> dict[str, tuple[float, str]]:
    """``{file name: (temperature, split)}`` with split ``"test"`` or ``"train"``."""
    names = {f"{_tag(t)}.npz": (t, "test") for t in spec.temperatures}
    names.update({f"{_tag(t)}_train.npz": (t, "train") for t in spec.train_temperatures})
    return names


@dataclass(frozen=True)
class ReferenceData:
    """One reference file: ``x (n, n_atoms, n_dim)`` float32, ``energy (n,)`` float64."""

    x: np.ndarray
    energy: np.ndarray
    temperature: float
    split: str
    metadata: dict

    def system(self) -> System:
        """The system (with this file's temperature) the samples were drawn from."""
        meta = self.metadata
        return get_system(meta["system"], **meta["system_params"], temperature=self.temperature)


def load_reference(path: str | os.PathLike) -> ReferenceData:
    """Load a reference ``.npz`` written by :func:`generate_reference`."""
    with np.load(path, allow_pickle=False) as f:
        missing = {"x", "energy", "temperature", "metadata"} - set(f.files)
        if missing:
            raise ValueError(f"{path} is not a reference file: missing arrays {sorted(missing)}")
        meta = json.loads(str(f["metadata"]))
        return ReferenceData(
            x=f["x"], energy=f["energy"], temperature=float(f["temperature"]),
            split=meta.get("split", "test"), metadata=meta,
        )  # fmt: skip


def sha256sums(out_dir: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every data file (``*.npz``) in ``out_dir``.

    README and diagnostics are not covered: they record timings, which differ between runs.
    """
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(out_dir).glob("*.npz"))
    }


def verify_checksums(out_dir: str | os.PathLike) -> list[str]:
    """Names of files whose SHA-256 differs from ``SHA256SUMS`` (empty list = all good)."""
    out_dir = Path(out_dir)
    bad = []
    for line in (out_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        p = out_dir / name
        if not p.exists() or hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            bad.append(name)
    return bad


def _float32_set(system: System, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = x - x.mean(axis=1, keepdims=True)
    x32 = x.astype(np.float32)
    with torch.no_grad():
        energy = system.energy(torch.from_numpy(x32.astype(np.float64))).numpy()
    return x32, energy


def generate_reference(
    spec: ReferenceSpec | str,
    out_dir: str | os.PathLike,
    quick: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Generate every reference set of ``spec`` into ``out_dir`` (see module docstring).

    Runs single-threaded Numba code; set ``NUMBA_NUM_THREADS=1`` and use ``nice`` for long runs.

    Args:
        spec: a :class:`ReferenceSpec` or a key of :data:`DEFAULT_SPECS` (``"lj13"``, ``"dw4"``).
        out_dir: folder (created); existing files of the same names are overwritten.
        quick: use :func:`quick_spec` (seconds; for smoke tests, not converged).
        log: progress printer, or ``None``.

    Returns:
        The diagnostics dict also written to ``diagnostics.json``.
    """
    if isinstance(spec, str):
        if spec not in DEFAULT_SPECS:
            raise ValueError(f"no default reference spec for {spec!r}; have {list(DEFAULT_SPECS)}")
        spec = DEFAULT_SPECS[spec]
    if quick:
        spec = quick_spec(spec)
    say = log or (lambda s: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system = spec.make_system()
    t_start, cpu_start = time.time(), time.process_time()
    pilot_seed, *run_seeds = (
        int(s) for s in np.random.SeedSequence(spec.seed).generate_state(spec.n_runs + 1)
    )

    # 1. pilot -> thinning
    pilot = parallel_tempering(
        system,
        PTConfig(spec.ladder, spec.n_burn_in, spec.n_pilot, target_accept=spec.target_accept),
        seed=pilot_seed,
    )
    idx = [pilot.index_of(t) for t in spec.temperatures]
    tau_pilot = pilot.autocorr_times()[idx]
    thin = [max(1, math.ceil(spec.thin_factor * tau)) for tau in tau_pilot]
    say(f"pilot: tau {np.round(tau_pilot, 1).tolist()} sweeps -> thin {thin}")
    del pilot

    # 2. production runs
    def n_per_run(t: float) -> tuple[int, int]:
        n_test = math.ceil(spec.n_samples / spec.n_runs)
        is_train = any(math.isclose(t, s, rel_tol=1e-9) for s in spec.train_temperatures)
        n_train = math.ceil(spec.n_train / spec.n_runs) + spec.split_gap if is_train else 0
        return n_train, n_test

    need = [sum(n_per_run(t)) for t in spec.temperatures]
    n_sweeps = max(n * th for n, th in zip(need, thin, strict=True))
    store_every = [0] * len(spec.ladder)
    for k, th in zip(idx, thin, strict=True):
        store_every[k] = th
    config = PTConfig(
        spec.ladder, spec.n_burn_in, n_sweeps, store_every=tuple(store_every),
        target_accept=spec.target_accept,
    )  # fmt: skip
    runs = []
    for r, seed in enumerate(run_seeds):
        res = parallel_tempering(system, config, seed=seed)
        runs.append({
            "seed": seed,
            "trace": res.energy_trace[idx].copy(),
            "samples": [res.samples[k] for k in idx],
            "step_sizes": res.step_sizes.tolist(),
            "acceptance": res.acceptance.tolist(),
            "burn_in_acceptance": res.burn_in_acceptance.tolist(),
            "swap_rates": res.swap_rates.tolist(),
            "round_trips": res.round_trips,
        })  # fmt: skip
        del res
        say(f"run {r + 1}/{spec.n_runs} done ({time.time() - t_start:.0f} s)")

    # 3. split, write files
    files = file_names(spec)
    per_t: dict[str, dict] = {}
    base_meta = {
        "system": spec.system,
        "system_params": {k: v for k, v in system.parameters().items() if k != "temperature"},
        "generator": "fkc.systems.reference (parallel tempering, random-walk Metropolis)",
        "ladder": list(spec.ladder),
        "n_runs": spec.n_runs,
        "run_seeds": run_seeds,
        "master_seed": spec.seed,
        "n_burn_in": spec.n_burn_in,
        "n_sweeps": n_sweeps,
    }
    for j, t in enumerate(spec.temperatures):
        n_train_run, n_test_run = n_per_run(t)
        blocks_train, blocks_test = [], []
        for run in runs:
            s = run["samples"][j]
            if len(s) < n_train_run + n_test_run:
                raise RuntimeError(f"run stored {len(s)} samples at T={t}, needed "
                                   f"{n_train_run + n_test_run}")  # fmt: skip
            if n_train_run:
                blocks_train.append(s[: n_train_run - spec.split_gap])
            blocks_test.append(s[n_train_run : n_train_run + n_test_run])
        sets = {"test": np.concatenate(blocks_test)[: spec.n_samples]}
        if n_train_run:
            sets["train"] = np.concatenate(blocks_train)[: spec.n_train]
        for name, (tt, split) in files.items():
            if tt != t:
                continue
            x32, energy = _float32_set(system, sets[split])
            meta = {**base_meta, "temperature": t, "split": split, "thin_sweeps": thin[j],
                    "n": len(x32)}  # fmt: skip
            np.savez_compressed(
                out_dir / name, x=x32, energy=energy, temperature=np.float64(t),
                metadata=np.array(json.dumps(meta, sort_keys=True)),
            )  # fmt: skip
            per_t.setdefault(_tag(t), {})[f"{split}_n"] = len(x32)
            per_t[_tag(t)][f"{split}_energy_mean"] = float(energy.mean())
            per_t[_tag(t)][f"{split}_energy_sd"] = float(energy.std(ddof=1))
        # thinned stored energies per run: residual autocorrelation after thinning
        m = min(len(run["samples"][j]) for run in runs)
        thinned = np.stack([
            system.energy(torch.from_numpy(run["samples"][j][:m])).numpy() for run in runs
        ])  # fmt: skip
        chains = np.stack([run["trace"][j] for run in runs])
        k = idx[j]
        zs = [abs(mean_difference_z(chains[i], np.delete(chains, i, axis=0)))
              for i in range(len(chains))]  # fmt: skip
        tau = integrated_autocorr_time(chains)
        ess = effective_sample_size(chains)
        per_t[_tag(t)].update({
            "temperature": t,
            "thin_sweeps": thin[j],
            "tau_pilot_sweeps": float(tau_pilot[j]),
            "tau_sweeps": tau,
            "tau_thinned": integrated_autocorr_time(thinned),
            "ess_trace": ess,
            "trace_energy_mean": float(chains.mean()),
            "trace_energy_sd": float(chains.std(ddof=1)),
            "trace_energy_se": float(chains.std(ddof=1) / math.sqrt(ess)),
            "rhat": gelman_rubin(chains),
            "max_abs_z_run_vs_rest": float(max(zs)),
            "run_energy_means": chains.mean(axis=1).tolist(),
            "acceptance": [run["acceptance"][k] for run in runs],
            "step_size": [run["step_sizes"][k] for run in runs],
        })  # fmt: skip
    elapsed, cpu = time.time() - t_start, time.process_time() - cpu_start
    diagnostics = {
        "spec": asdict(spec),
        "quick": quick,
        "n_sweeps_per_run": n_sweeps,
        "wall_seconds": round(elapsed, 1),
        "cpu_seconds": round(cpu, 1),
        "per_temperature": per_t,
        "swap_rates": [run["swap_rates"] for run in runs],
        "round_trips": [run["round_trips"] for run in runs],
        "burn_in_acceptance": [run["burn_in_acceptance"] for run in runs],
        "files": {name: {"temperature": t, "split": s} for name, (t, s) in files.items()},
    }
    (out_dir / "diagnostics.json").write_text(json.dumps(diagnostics, indent=1) + "\n")
    (out_dir / "README.md").write_text(_readme(spec, system, diagnostics, out_dir))
    sums = sha256sums(out_dir)
    (out_dir / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    say(f"wrote {len(files)} sets to {out_dir} in {elapsed:.0f} s")
    return diagnostics


def _dispersion(d: dict, n_sweeps: int) -> float:
    """Between-run variance of mean energies over its prediction ``sd^2 tau / n_sweeps``."""
    means = np.asarray(d["run_energy_means"])
    return float(means.var(ddof=1) / (d["trace_energy_sd"] ** 2 * d["tau_sweeps"] / n_sweeps))


def _readme(spec: ReferenceSpec, system: System, diag: dict, out_dir: Path) -> str:
    params = ", ".join(f"{k} = {v}" for k, v in system.parameters().items() if k != "temperature")
    per_t = diag["per_temperature"].values()
    table = [
        "| T | file | n | E mean ± sd |",
        "|---|---|---|---|",
    ]
    for d in per_t:
        tag = _tag(d["temperature"])
        for split, suffix in (("test", ""), ("train", "_train")):
            if f"{split}_n" in d:
                table.append(
                    f"| {d['temperature']:g} | `{tag}{suffix}.npz` | {d[f'{split}_n']} | "
                    f"{d[f'{split}_energy_mean']:.3f} ± {d[f'{split}_energy_sd']:.3f} |"
                )
    diag_table = [
        "| T | E traces: mean ± se | thin | τ | τ thinned | ESS | R-hat | max abs z | disp. "
        "| acc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in per_t:
        diag_table.append(
            f"| {d['temperature']:g} | {d['trace_energy_mean']:.3f} ± {d['trace_energy_se']:.3f} | "
            f"{d['thin_sweeps']} | {d['tau_sweeps']:.1f} | {d['tau_thinned']:.2f} | "
            f"{d['ess_trace']:.0f} | {d['rhat']:.4f} | {d['max_abs_z_run_vs_rest']:.2f} | "
            f"{_dispersion(d, diag['n_sweeps_per_run']):.2f} | {np.mean(d['acceptance']):.2f} |"
        )
    rhat = max(d["rhat"] for d in per_t)
    zmax = max(d["max_abs_z_run_vs_rest"] for d in per_t)
    tau_thin = max(d["tau_thinned"] for d in per_t)
    disp = max(_dispersion(d, diag["n_sweeps_per_run"]) for d in per_t)
    swap = np.mean(diag["swap_rates"], axis=0)
    sizes = [
        f"- `{p.name}`: {p.stat().st_size / 1e6:.2f} MB" for p in sorted(out_dir.glob("*.npz"))
    ]
    quick = diag["quick"]
    cmd = f"python -m fkc.systems.reference --system {spec.system} --out <dir>"
    lines = [
        f"# Reference samples: {spec.system}",
        "",
        *(["**QUICK MODE: smoke-test data, not converged.**", ""] if quick else []),
        f"Generated by `{cmd}{' --quick' if quick else ''}`",
        "(`fkc.systems.reference.generate_reference`); do not edit by hand, regenerate instead.",
        "Same spec and seed give bit-identical data files on the same platform",
        "(`sha256sum -c SHA256SUMS` covers the `.npz` files; this README and `diagnostics.json`",
        "also record timings).",
        "",
        "## System",
        f"`{type(system).__name__}`: {params}.",
        "Density ∝ exp(−E/T) on the zero-centre-of-mass subspace (see the docstring of",
        f"`fkc.systems.{type(system).__name__}` for E and the pair convention).",
        "",
        "## Files",
        f"Each `.npz` has `x (n, {system.n_atoms}, {system.n_dim})` float32 (CoM-free up to",
        "float32 rounding), `energy (n,)` float64 (E of the stored float32 coordinates,",
        "computed in float64), `temperature`, and a JSON string `metadata` (system parameters,",
        "seeds, ladder, thinning, split). Load with `fkc.systems.reference.load_reference(path)`.",
        "`T<T>.npz` is the evaluation (held-out) set; `T<T>_train.npz` is a training set from the",
        "same runs: each run's stored sequence at that temperature is cut into a training block,",
        f"{spec.split_gap} discarded samples, then the held-out block.",
        "",
        *table,
        "",
        *sizes,
        "",
        "## How they were generated",
        f"- Parallel tempering over the ladder T = {list(spec.ladder)}. One sweep = for every",
        "  replica, a Gaussian random-walk Metropolis move of each atom in turn (recentred after",
        "  each move), then swaps between neighbouring temperatures (alternating even/odd pairs).",
        f"- {spec.n_runs} independent runs (seeds from master seed {spec.seed}), each from its own",
        f"  random start: {spec.n_burn_in} burn-in sweeps with step-size adaptation (target",
        f"  single-atom acceptance {spec.target_accept}), discarded; then",
        f"  {diag['n_sweeps_per_run']} production sweeps with frozen step sizes.",
        f"- Thinning: a pilot run ({spec.n_burn_in} + {spec.n_pilot} sweeps) measured the energy's",
        "  integrated autocorrelation time τ at each target; configurations are stored",
        f"  every ⌈{spec.thin_factor} τ⌉ sweeps.",
        f"- Compute: {diag['cpu_seconds']:.0f} s CPU ({diag['wall_seconds']:.0f} s wall),",
        "  single-threaded.",
        "",
        "## Convergence diagnostics",
        "Per temperature (T): mean ± standard error of the pooled production energy traces (all",
        "runs, every sweep; SE from the ESS); thin = sweeps between stored samples; τ = integrated",
        "autocorrelation time of the energy traces (sweeps; Geyer's initial monotone sequence",
        "estimator); τ thinned = the same for the stored energies (in stored samples; ≈ 1 means",
        "decorrelated); ESS of the traces; split R-hat over the runs; max abs z = largest |z| of",
        "one run's mean energy against the other runs pooled (z in units of the standard error);",
        "disp. = variance of the runs' mean energies divided by its prediction sd² τ / n_sweeps",
        f"(≈ 1 ± {np.sqrt(2 / (spec.n_runs - 1)):.2f} for {spec.n_runs} runs if τ is right; a",
        "larger value means τ is underestimated by about that factor); acc = mean single-atom",
        "acceptance.",
        "",
        *diag_table,
        "",
        f"Summary: max R-hat {rhat:.4f}, max |z| {zmax:.2f} (over {len(diag_table) - 2} "
        f"temperatures × {spec.n_runs} runs), max τ after thinning {tau_thin:.2f}, max dispersion "
        f"{disp:.2f} (if τ is underestimated by that factor, stored samples are still "
        f"{spec.thin_factor / max(disp, 1.0):.1f} τ apart).",
        f"Mean neighbour swap rates (ladder order): {np.round(swap, 2).tolist()}.",
        f"Replica round trips (lowest → highest → lowest T) per run: {diag['round_trips']}.",
        "These diagnostics show agreement between independent runs of the same sampler; they",
        "cannot exclude a region that no run visited. Full numbers: `diagnostics.json`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m fkc.systems.reference``)."""
    p = argparse.ArgumentParser(
        prog="python -m fkc.systems.reference", description="Regenerate reference sample sets."
    )
    p.add_argument("--system", required=True, choices=sorted(DEFAULT_SPECS))
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke test, not converged")
    p.add_argument("--seed", type=int, default=None, help="override the spec's master seed")
    p.add_argument("--verify", action="store_true", help="only check SHA256SUMS in --out")
    args = p.parse_args(argv)
    if args.verify:
        bad = verify_checksums(args.out)
        print("OK" if not bad else f"checksum mismatch: {bad}")
        return 1 if bad else 0
    spec = DEFAULT_SPECS[args.system]
    if args.seed is not None:
        spec = ReferenceSpec(**{**asdict(spec), "seed": args.seed})
    generate_reference(spec, args.out, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
