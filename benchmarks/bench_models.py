"""Throughput and peak memory of the score networks on CPU.

For each network (EGNN, tensor-product), system size (13, 22, 55 atoms: LJ13, alanine dipeptide,
LJ55) and batch size (256, 1024 configurations), measure

* ``fwd``: forward pass under ``torch.no_grad()`` (sampling), configurations / s;
* ``fwd+bwd``: forward, ``loss = mean(out^2)``, backward to the parameters (training step without
  the optimiser), configurations / s;
* ``fwd/chunked``: the same forward pass as ``fwd`` evaluated in chunks of about
  ``--chunk-edges`` edges (``model(..., chunk_size=c)``, ``c = chunk_edges // (n (n - 1))``): on
  CPU, cache-resident intermediates make this faster than one large call, and it bounds the memory
  of sampling;
* peak memory: increase of the process's peak resident set size (``ru_maxrss``) over the RSS just
  before the timed calls. Every measurement runs in a fresh subprocess, so peaks do not mix.

The networks use complete graphs (``cutoff=None`` for EGNN; the tensor-product network's radius
graph with ``cutoff=5`` in unit-variance network coordinates includes nearly all pairs), random
atom types (5), a random bond tree (4 bond types) and unit-variance Gaussian positions.

Configurations whose projected peak memory (per-edge memory of the largest run so far, times the
number of edges) exceeds ``--memory-budget-gb``, or whose projected time per call exceeds
``--time-budget-s``, are not run; the table shows the projection instead.

Usage (from the repository root; the machine is shared, so be nice)::

    nice -n 10 python benchmarks/bench_models.py --out benchmarks/RESULTS_models.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

MODELS = ("egnn", "tensor_product")
MODES = ("fwd", "fwd+bwd", "fwd/chunked")


def chunk_size(n_atoms: int, chunk_edges: int) -> int:
    """Configurations per chunk so that one call sees about ``chunk_edges`` edges."""
    return max(1, chunk_edges // (n_atoms * (n_atoms - 1)))


def model_config(name: str) -> dict:
    common = {"n_atom_types": 5, "n_bond_types": 4}
    if name == "egnn":
        return {"name": "egnn", "hidden": 64, "n_layers": 4, **common}
    if name == "tensor_product":
        return {
            "name": "tensor_product",
            "hidden_scalars": 32,
            "hidden_vectors": 8,
            "hidden_tensors": 4,
            "lmax": 2,
            "n_layers": 3,
            "cutoff": 5.0,
            "chiral": True,
            **common,
        }
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_child(args) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able record."""
    import torch

    from fkc.models import build_model
    from fkc.testing import random_molecular_graph

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    net = build_model(model_config(args.model), dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    graph = random_molecular_graph(args.atoms, n_atom_types=5, n_bond_types=4, generator=gen)
    pos = torch.randn(args.batch, args.atoms, 3, generator=gen).to(dtype)
    pos = pos - pos.mean(1, keepdim=True)
    t = torch.rand(args.batch, generator=gen).to(dtype)

    def call():
        if args.mode == "fwd":
            with torch.no_grad():
                net(pos, t, graph)
        elif args.mode == "fwd/chunked":
            with torch.no_grad():
                net(pos, t, graph, chunk_size=chunk_size(args.atoms, args.chunk_edges))
        else:
            net.zero_grad(set_to_none=True)
            out = net(pos, t, graph)
            out.square().mean().backward()

    # warm-up on a small batch (lazy initialisation), then timed calls at full size
    with torch.no_grad():
        net(pos[:4], t[:4], graph)
    rss0 = _rss_mb()
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if len(times) >= args.max_reps or time.perf_counter() - start > args.min_time_s:
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = min(times)
    return {
        "model": args.model,
        "atoms": args.atoms,
        "batch": args.batch,
        "mode": args.mode,
        "reps": len(times),
        "sec_per_call": best,
        "conf_per_s": args.batch / best,
        "peak_mb": max(peak - rss0, 0.0),
        "edges": args.batch * args.atoms * (args.atoms - 1),
        "n_params": sum(p.numel() for p in net.parameters()),
    }


def _machine_info(threads: int) -> list[str]:
    import e3nn
    import torch
    import torch_geometric

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024**2:.1f} GB"
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores (shared with other jobs), RAM {mem}",
        f"- load average at start: {', '.join(f'{x:.2f}' for x in load)}",
        f"- python {platform.python_version()}, torch {torch.__version__}, "
        f"e3nn {e3nn.__version__}, torch-geometric {torch_geometric.__version__}",
        f"- torch threads: {threads}; run under `nice -n 10`",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--atoms", default="13,22,55")
    p.add_argument("--batches", default="256,1024")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory-budget-gb", type=float, default=6.0)
    p.add_argument("--time-budget-s", type=float, default=90.0)
    p.add_argument("--min-time-s", type=float, default=3.0)
    p.add_argument("--max-reps", type=int, default=5)
    p.add_argument("--chunk-edges", type=int, default=16384)
    p.add_argument("--out", default=None, help="write a markdown report here")
    # child mode (one measurement)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        args.atoms = int(args.atoms)
        print(json.dumps(run_child(args)))
        return

    models = args.models.split(",")
    atoms = sorted(int(a) for a in args.atoms.split(","))
    batches = sorted(int(b) for b in args.batches.split(","))
    modes = args.modes.split(",")
    for m in models:
        model_config(m)
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"--modes: unknown mode {m!r}; choose from {MODES}")

    rows = []
    for model in models:
        for mode in modes:
            per_edge_mb = per_edge_s = None
            for n in atoms:
                for b in batches:
                    edges = b * n * (n - 1)
                    chunk = min(b, chunk_size(n, args.chunk_edges))
                    mem_edges = chunk * n * (n - 1) if mode == "fwd/chunked" else edges
                    proj_mb = None if per_edge_mb is None else per_edge_mb * mem_edges
                    proj_s = None if per_edge_s is None else per_edge_s * edges
                    base = {"model": model, "atoms": n, "batch": b, "mode": mode, "edges": edges}
                    if proj_mb is not None and proj_mb > args.memory_budget_gb * 1024:
                        rows.append({**base, "skipped": f"projected peak {proj_mb / 1024:.1f} GB"})
                    elif proj_s is not None and proj_s > args.time_budget_s:
                        rows.append({**base, "skipped": f"projected {proj_s:.0f} s per call"})
                    else:
                        cmd = [
                            sys.executable, __file__, "--child", "--model", model,
                            "--atoms", str(n), "--batch", str(b), "--mode", mode,
                            "--dtype", args.dtype, "--threads", str(args.threads),
                            "--min-time-s", str(args.min_time_s), "--max-reps", str(args.max_reps),
                            "--chunk-edges", str(args.chunk_edges),
                        ]  # fmt: skip
                        res = subprocess.run(cmd, capture_output=True, text=True)
                        if res.returncode != 0:
                            rows.append({**base, "skipped": f"failed: {res.stderr.strip()[-200:]}"})
                        else:
                            r = json.loads(res.stdout.strip().splitlines()[-1])
                            rows.append(r)
                            per_edge_mb = max(per_edge_mb or 0.0, r["peak_mb"] / mem_edges)
                            per_edge_s = max(per_edge_s or 0.0, r["sec_per_call"] / edges)
                    print(json.dumps(rows[-1]), flush=True)

    report = _report(rows, args)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


def _report(rows, args) -> str:
    lines = [
        "# Score-network benchmarks (CPU)",
        "",
        "Generated by `benchmarks/bench_models.py` "
        f"(`--dtype {args.dtype} --threads {args.threads} "
        f"--memory-budget-gb {args.memory_budget_gb:g} --time-budget-s {args.time_budget_s:g} "
        f"--chunk-edges {args.chunk_edges}`).",
        "",
        "## Machine",
        "",
        *_machine_info(args.threads),
        "",
        "## Networks",
        "",
    ]
    for m in args.models.split(","):
        n_params = next((r["n_params"] for r in rows if r["model"] == m and "n_params" in r), None)
        cfg = json.dumps(model_config(m))
        lines.append(f"- `{m}` ({n_params} parameters): `{cfg}`")
    lines += [
        "",
        "Complete graphs: `n_atoms * (n_atoms - 1)` directed edges per configuration. "
        "`fwd` = forward under `no_grad` (sampling); `fwd+bwd` = forward + backward of a scalar "
        "loss to the parameters (training step without optimiser); `fwd/chunked` = the `fwd` "
        f"pass evaluated in chunks of `{args.chunk_edges} // (n (n - 1))` configurations "
        "(13 atoms: 105, 22: 35, 55: 5 with the default 16384 edges). Throughput is "
        "configurations per second (best of the timed calls); peak memory is the increase of "
        "the peak RSS over the RSS before the timed calls.",
        "",
        "## Results",
        "",
        "| network | atoms | batch | mode | conf/s | s/call | peak MB | edges |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(
                f"| {r['model']} | {r['atoms']} | {r['batch']} | {r['mode']} | not run | "
                f"| {r['skipped']} | {r['edges']:,} |"
            )
        else:
            lines.append(
                f"| {r['model']} | {r['atoms']} | {r['batch']} | {r['mode']} | "
                f"{r['conf_per_s']:.1f} | {r['sec_per_call']:.2f} | {r['peak_mb']:.0f} | "
                f"{r['edges']:,} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
