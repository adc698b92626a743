"""Build the conformer datasets in ``datasets/conformers/``: ``python -m fkc.conformers.build``.

Subcommands (each resumable: per-molecule results land atomically in a work folder and are
skipped when present; ``combine`` steps only read finished files):

``molecules``
    Pool the offline sets (``cdk2``, ``egfr``, ``nci_first_5k``), keep molecules RDKit parses
    under :class:`~fkc.datasets.MoleculePolicy`, with ``min_heavy..max_heavy`` heavy atoms, at
    most ``max_rotatable`` rotatable bonds, formal charges within [-1, 1], MMFF94 parameters and a
    successful ETKDGv3 embedding; drop duplicates (canonical isomeric SMILES; first kept); split by
    Bemis-Murcko scaffold 80/10/10 (MoleculeNet order). Writes ``molecules.csv`` (id, source,
    name, smiles, split, n_heavy, n_rotatable) and ``molecules_failures.csv`` (every molecule not
    kept, with the reason: nothing is dropped silently).
``ensembles``
    Replica-exchange HMC MMFF94 ensembles (:func:`fkc.conformers.reference.sample_boltzmann`) of
    the molecules of one split at one temperature, one ``.npz`` per molecule in
    ``work/T{T}_{split}/``.
``training-set``
    Combine finished ensembles into a :class:`fkc.train.MoleculeDataset` ``.npz`` (one record per
    conformer, graph features from :mod:`fkc.conformers.featurize`).
``references``
    Combine finished ensembles into the shipped reference files: ``T{T}_{split}.sdf`` (``K``
    conformers per molecule, greedily picked from the Boltzmann samples so that no two are
    within ``dedup`` Å heavy-atom RMSD, with ``fkc_id`` and ``energy`` properties) and
    ``T{T}_{split}_energies.npz`` (all sample energies per molecule, for energy W1).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import Descriptors, rdMolDescriptors

from fkc.checkpoint import atomic_write_bytes

DEFAULT_DIR = Path("datasets/conformers")
SOURCES = ("cdk2", "egfr", "nci_first_5k")


def _atomic_savez(path: Path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def read_molecules(path: str | os.PathLike, split: str | None = None) -> list[dict]:
    """Rows of ``molecules.csv`` (optionally of one split), numbers parsed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `python -m fkc.conformers.build "
                                f"molecules --out {path.parent}` first")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["n_heavy"] = int(r["n_heavy"])
        r["n_rotatable"] = int(r["n_rotatable"])
    if split is not None:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {split!r}")
        rows = [r for r in rows if r["split"] == split]
    return rows


def select_molecules(*, min_heavy: int = 8, max_heavy: int = 24, max_rotatable: int = 6,
                     sources=SOURCES, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """The filtered, deduplicated, scaffold-split pool: ``(kept rows, failure rows)``."""
    from fkc.conformers.mmff import MMFFEnergy
    from fkc.datasets import embed_etkdg, load_source, mol_from_smiles, scaffold_split

    kept, failed, seen = [], [], set()
    for src in sources:
        ms = load_source(src)
        for f in ms.failures:
            failed.append({"source": src, "name": f.where or "", "smiles": f.smiles or "",
                           "reason": f.reason})
        for smi, name in zip(ms.smiles, ms.names, strict=True):
            def fail(reason: str, src=src, name=name, smi=smi) -> None:
                failed.append({"source": src, "name": name, "smiles": smi, "reason": reason})
            try:
                mol = mol_from_smiles(smi)
            except ValueError as exc:
                fail(str(exc))
                continue
            can = Chem.MolToSmiles(Chem.RemoveHs(mol))
            if can in seen:
                fail("duplicate of an earlier molecule")
                continue
            n_heavy = mol.GetNumHeavyAtoms()
            n_rot = rdMolDescriptors.CalcNumRotatableBonds(mol)
            charges = {a.GetFormalCharge() for a in mol.GetAtoms()}
            if not min_heavy <= n_heavy <= max_heavy:
                fail(f"{n_heavy} heavy atoms, outside [{min_heavy}, {max_heavy}]")
                continue
            if n_rot > max_rotatable:
                fail(f"{n_rot} rotatable bonds > {max_rotatable}")
                continue
            if charges - {-1, 0, 1}:
                fail(f"formal charges {sorted(charges)} outside [-1, 1]")
                continue
            try:
                MMFFEnergy(mol)
                embed_etkdg(mol, 1, seed)
            except ValueError as exc:
                fail(str(exc))
                continue
            seen.add(can)
            kept.append({"source": src, "name": name, "smiles": can, "n_heavy": n_heavy,
                         "n_rotatable": n_rot, "mw": round(Descriptors.MolWt(mol), 2)})
    split = scaffold_split([r["smiles"] for r in kept], (0.8, 0.1, 0.1), seed)
    names = np.empty(len(kept), dtype=object)
    names[split.train], names[split.valid], names[split.test] = "train", "valid", "test"
    for i, r in enumerate(kept):
        r["id"] = f"mol{i:05d}"
        r["split"] = names[i]
    return kept, failed


def _cmd_molecules(a: argparse.Namespace) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with rdBase.BlockLogs():
        kept, failed = select_molecules(min_heavy=a.min_heavy, max_heavy=a.max_heavy,
                                        max_rotatable=a.max_rotatable, seed=a.seed)
    _write_csv(out / "molecules.csv", kept, ["id", "source", "name", "smiles", "split",
                                             "n_heavy", "n_rotatable", "mw"])
    _write_csv(out / "molecules_failures.csv", failed, ["source", "name", "smiles", "reason"])
    counts = {s: sum(r["split"] == s for r in kept) for s in ("train", "valid", "test")}
    print(f"kept {len(kept)} molecules {counts}; {len(failed)} not kept "
          f"(reasons in {out / 'molecules_failures.csv'})")
    return 0


def _work_dir(root: Path, temperature: float, split: str) -> Path:
    return root / "work" / f"T{temperature:g}_{split}"


def _cmd_ensembles(a: argparse.Namespace) -> int:
    from fkc.conformers.reference import sample_boltzmann
    from fkc.datasets import mol_from_smiles

    root = Path(a.out)
    rows = read_molecules(root / "molecules.csv", a.split)[a.start:a.start + a.limit]
    rows = rows[a.worker::a.workers]
    work = _work_dir(root, a.temperature, a.split)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        path = work / f"{r['id']}.npz"
        if path.exists():
            continue
        mol = mol_from_smiles(r["smiles"])
        seed = int(r["id"][3:]) + 1000 * a.seed
        ens = sample_boltzmann(mol, a.temperature, a.samples, seed=seed, t_max=a.t_max,
                               n_replicas=a.replicas, n_burn=a.burn, thin=a.thin)
        _atomic_savez(path, {"x": ens.x.astype(np.float32), "energies": ens.energies,
                             "smiles": np.array(r["smiles"]),
                             "summary": np.array(json.dumps(
                                 ens.summary() | {"swap_accept": ens.swap_accept.tolist(),
                                                  "accept": ens.accept.tolist(),
                                                  "settings": ens.settings}))})
        print(f"[{i + 1}/{len(rows)}] {r['id']} {ens.summary()} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


def _finished(root: Path, temperature: float, split: str) -> list[tuple[dict, Path]]:
    work = _work_dir(root, temperature, split)
    rows = read_molecules(root / "molecules.csv", split)
    return [(r, work / f"{r['id']}.npz") for r in rows if (work / f"{r['id']}.npz").exists()]


def _cmd_training_set(a: argparse.Namespace) -> int:
    import torch

    from fkc.conformers.featurize import atom_arrays, bond_arrays
    from fkc.datasets import mol_from_smiles
    from fkc.train import MoleculeDataset, MoleculeRecord

    root = Path(a.out_dir)
    records = []
    done = _finished(root, a.temperature, a.split)
    if not done:
        raise SystemExit(f"no finished ensembles for T={a.temperature:g} split={a.split}")
    for r, path in done:
        mol = mol_from_smiles(r["smiles"])
        types, feats = atom_arrays(mol)
        ei, bt = bond_arrays(mol)
        with np.load(path) as f:
            x = f["x"][: a.per_molecule]
        for xi in x:
            records.append(MoleculeRecord(
                pos=torch.from_numpy(xi.astype(np.float64)), atom_types=torch.from_numpy(types),
                edge_index=torch.from_numpy(ei), bond_types=torch.from_numpy(bt),
                atom_features=torch.from_numpy(feats)))
    ds = MoleculeDataset(records, metadata={
        "system": "drug-like conformers (MMFF94)", "training_temperature": a.temperature,
        "length_unit": "angstrom", "split": a.split, "n_molecules": len(done),
        "featurizer": "fkc.conformers.featurize"})
    buf = io.BytesIO()
    ds.save_npz(buf)
    atomic_write_bytes(a.out, buf.getvalue())
    print(f"wrote {a.out}: {len(done)} molecules, {len(ds)} conformers")
    return 0


def pick_distinct(mol: Chem.Mol, x: np.ndarray, k: int, dedup: float) -> list[int]:
    """Indices of up to ``k`` samples of ``x (n, n_atoms, 3)`` taken in chain order such that no
    two are within ``dedup`` Å heavy-atom RMSD after optimal superposition (symmetry-aware)."""
    from rdkit.Chem import rdMolAlign

    heavy = Chem.RemoveHs(mol)
    idx = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    stride = max(1, x.shape[0] // (4 * k))
    chosen: list[int] = []
    confs: list[Chem.Mol] = []
    for i in range(0, x.shape[0], stride):
        m = Chem.Mol(heavy)
        conf = Chem.Conformer(len(idx))
        for j, a in enumerate(idx):
            conf.SetAtomPosition(j, x[i, a].tolist())
        m.RemoveAllConformers()
        m.AddConformer(conf, assignId=True)
        if all(rdMolAlign.GetBestRMS(Chem.Mol(m), c, maxMatches=1000) >= dedup for c in confs):
            chosen.append(i)
            confs.append(m)
            if len(chosen) == k:
                break
    return chosen


def _cmd_references(a: argparse.Namespace) -> int:
    from fkc.conformers.evaluate import write_conformer_sdf
    from fkc.datasets import mol_from_smiles

    root = Path(a.out_dir)
    done = _finished(root, a.temperature, a.split)[: a.limit]
    if not done:
        raise SystemExit(f"no finished ensembles for T={a.temperature:g} split={a.split}")
    mols, props, energies, summaries = {}, {}, {}, []
    for r, path in done:
        mol = mol_from_smiles(r["smiles"])
        with np.load(path) as f:
            x, e = f["x"].astype(np.float64), f["energies"]
            summaries.append({"id": r["id"], **json.loads(str(f["summary"]))})
        energies[r["id"]] = e
        pick = pick_distinct(mol, x, a.k, a.dedup)
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        for i in pick:
            conf = Chem.Conformer(mol.GetNumAtoms())
            for j, p in enumerate(x[i]):
                conf.SetAtomPosition(j, p.tolist())
            m.AddConformer(conf, assignId=True)
        mols[r["id"]] = m
        props[r["id"]] = {"energy": e[pick], "sample_index": np.asarray(pick, dtype=float)}
    stem = f"T{a.temperature:g}_{a.split}"
    write_conformer_sdf(root / f"{stem}.sdf", mols, props)
    _atomic_savez(root / f"{stem}_energies.npz", energies)
    atomic_write_bytes(root / f"{stem}_sampling.json",
                       (json.dumps(summaries, indent=1) + "\n").encode())
    print(f"wrote {root / (stem + '.sdf')}: {len(done)} molecules")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fkc.conformers.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("molecules", help="filter, deduplicate and scaffold-split the pool")
    m.add_argument("--out", default=str(DEFAULT_DIR))
    m.add_argument("--min-heavy", type=int, default=8)
    m.add_argument("--max-heavy", type=int, default=24)
    m.add_argument("--max-rotatable", type=int, default=6)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(fn=_cmd_molecules)
    e = sub.add_parser("ensembles", help="replica-exchange HMC MMFF ensembles of one split")
    e.add_argument("--out", default=str(DEFAULT_DIR))
    e.add_argument("--split", required=True, choices=("train", "valid", "test"))
    e.add_argument("--temperature", type=float, required=True)
    e.add_argument("--samples", type=int, default=200)
    e.add_argument("--thin", type=int, default=5)
    e.add_argument("--burn", type=int, default=500)
    e.add_argument("--replicas", type=int, default=8)
    e.add_argument("--t-max", type=float, default=None)
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--worker", type=int, default=0)
    e.add_argument("--workers", type=int, default=1)
    e.set_defaults(fn=_cmd_ensembles)
    t = sub.add_parser("training-set", help="finished ensembles -> MoleculeDataset npz")
    t.add_argument("--out-dir", default=str(DEFAULT_DIR))
    t.add_argument("--split", required=True, choices=("train", "valid", "test"))
    t.add_argument("--temperature", type=float, required=True)
    t.add_argument("--per-molecule", type=int, default=None)
    t.add_argument("--out", required=True)
    t.set_defaults(fn=_cmd_training_set)
    r = sub.add_parser("references", help="finished ensembles -> reference SDF + energies")
    r.add_argument("--out-dir", default=str(DEFAULT_DIR))
    r.add_argument("--split", default="test", choices=("train", "valid", "test"))
    r.add_argument("--temperature", type=float, required=True)
    r.add_argument("--k", type=int, default=20)
    r.add_argument("--dedup", type=float, default=0.25)
    r.add_argument("--limit", type=int, default=None)
    r.set_defaults(fn=_cmd_references)
    a = p.parse_args(argv)
    if getattr(a, "limit", 0) is None and a.cmd == "ensembles":
        a.limit = sys.maxsize
    return a.fn(a)


if __name__ == "__main__":
    raise SystemExit(main())
