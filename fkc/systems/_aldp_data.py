r"""Alanine-dipeptide training sets for score models: MD frames plus the molecular graph.

A training file (``.npz``, no pickles, read by :meth:`fkc.train.PointCloudDataset.from_npz`):

* ``x (n, 22, 3)`` float32 positions in **angstrom** (``ANGSTROM_PER_NM`` times the MD files' nm),
  centre of mass *not* removed (the datasets centre on load). Angstrom puts the CoM-free
  coordinates at a standard deviation of about 1.6 per axis, close to the unit prior of the VP
  process; nm (0.16) would spend most of the diffusion time at pure noise.
* the graph: ``atom_types (22,)`` element index in :data:`ELEMENTS` (H, C, N, O);
  ``edge_index (2, 21)`` covalent bonds; ``bond_types (21,)`` index of the (sorted) element pair
  in :data:`BOND_PAIRS`; ``atom_features (22, 4)`` one-hot number of bonded neighbours (1-4),
  which separates e.g. carbonyl from methyl carbons before any message passing.
* ``energy (n,)`` kJ/mol, ``temperature`` (K), ``length_unit`` ("angstrom") and ``metadata``
  (JSON: source files with their SHA-256, frames taken, stride).

Sampled positions (angstrom) go back to the OpenMM system in nm via :func:`to_nm` /
:func:`samples_in_nm`; :func:`save_trajectory` writes them as DCD/PDB/XTC/HDF5 through mdtraj.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fkc.systems._aldp import AlanineDipeptide

__all__ = ["ANGSTROM_PER_NM", "BOND_PAIRS", "ELEMENTS", "TRAJECTORY_FORMATS",
           "aldp_graph_arrays", "aldp_training_set", "aldp_training_set_from_samples", "samples_in_nm", "save_trajectory",
           "to_nm"]  # fmt: skip

ANGSTROM_PER_NM = 10.0
ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O")
BOND_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (a, b) for i, a in enumerate(ELEMENTS) for b in ELEMENTS[i:]
)


def to_nm(x_angstrom):
    """Positions from the training unit (angstrom) to OpenMM's nm (numpy or torch, same type)."""
    return x_angstrom / ANGSTROM_PER_NM


def aldp_graph_arrays(system: AlanineDipeptide | None = None) -> dict[str, np.ndarray]:
    """The molecular graph of alanine dipeptide as arrays (see the module docstring)."""
    system = system or AlanineDipeptide()
    el = system.elements
    unknown = sorted(set(el) - set(ELEMENTS))
    if unknown:
        raise ValueError(f"elements {unknown} are not in the supported set {ELEMENTS}")
    atom_types = np.array([ELEMENTS.index(e) for e in el], dtype=np.int64)
    bonds = system.bonds  # (21, 2), i < j
    pair_index = {p: k for k, p in enumerate(BOND_PAIRS)}
    bond_types = np.array(
        [pair_index[tuple(sorted((el[i], el[j]), key=ELEMENTS.index))] for i, j in bonds],
        dtype=np.int64,
    )
    degree = np.bincount(bonds.ravel(), minlength=len(el))
    if degree.min() < 1 or degree.max() > 4:
        raise ValueError(f"atom degrees must be 1..4, got {degree.tolist()}")
    atom_features = np.eye(4)[degree - 1]
    return {"atom_types": atom_types, "edge_index": bonds.T.copy(), "bond_types": bond_types,
            "atom_features": atom_features}  # fmt: skip


def aldp_training_set(
    md_files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    stride: int = 1,
    max_frames: int | None = None,
) -> Path:
    """Write the frames of ``md_files`` (one temperature) as a training file at ``out``.

    stride: keep every ``stride``-th frame of each file; max_frames: keep at most this many
    frames of each file (the first ones, after striding; ``None``: all). Files at different
    temperatures raise ``ValueError`` naming them. The write is atomic.
    """
    from fkc.systems._md import _atomic_savez, file_sha256, load_md

    if not md_files:
        raise ValueError("aldp_training_set needs at least one MD file")
    if not (isinstance(stride, int) and stride >= 1):
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    if max_frames is not None and not (isinstance(max_frames, int) and max_frames >= 1):
        raise ValueError(f"max_frames must be None or an int >= 1, got {max_frames!r}")
    xs, es, sources, temps = [], [], [], {}
    for f in map(Path, md_files):
        d = load_md(f)
        temps[str(f)] = d.temperature
        x, e = d.x[::stride], d.energy[::stride]
        if max_frames is not None:
            x, e = x[:max_frames], e[:max_frames]
        xs.append(x)
        es.append(e)
        sources.append({"file": f.name, "sha256": file_sha256(f), "frames": int(x.shape[0]),
                        "length_ns": d.length_ns})  # fmt: skip
    if len(set(temps.values())) != 1:
        raise ValueError(f"MD files at different temperatures: {temps}")
    arrays = {
        "x": (np.concatenate(xs) * ANGSTROM_PER_NM).astype(np.float32),
        "energy": np.concatenate(es),
        "temperature": np.array(next(iter(temps.values()))),
        "length_unit": np.array("angstrom"),
        **aldp_graph_arrays(),
        "metadata": np.array(json.dumps({"sources": sources, "stride": stride,
                                         "max_frames": max_frames,
                                         "elements": list(ELEMENTS),
                                         "bond_pairs": ["-".join(p) for p in BOND_PAIRS]})),
    }  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_savez(out, arrays)
    return out


def aldp_training_set_from_samples(
    sample_files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    pool: str = "equal",
    seed: int = 0,
    system: AlanineDipeptide | None = None,
) -> Path:
    """Write FKC samples (``fkc anneal`` outputs) as a training file at ``out``.

    The step of an annealing ladder (PITA-style, Akhound-Sadegh et al. 2025): samples at ``T``
    from a model trained at a higher temperature become the training data of a model at ``T``.
    The ``R`` files hold particles ``x_{r,i}`` ``(n_r, 22, 3)`` with final log-weights
    ``log w_{r,i}`` (uniform if the sampler resampled last) and, for FKC runs, the log-normaliser
    estimate ``log Z_r``. The output holds ``N = sum_r n_r`` equally weighted frames drawn by
    systematic resampling (seeded by ``seed``) from the mixture weights

    * ``pool="equal"`` (default): ``W_{r,i} ∝ w_{r,i} / sum_j w_{r,j}`` (each run counts ``n_r``);
    * ``pool="z"``: ``W_{r,i} ∝ Z_r w_{r,i} / sum_j w_{r,j}``. With exact weights
      ``Z_r * (weighted empirical measure of run r)`` is unbiased for the unnormalised target
      (Del Moral 2004), so this ratio is consistent as the number of runs grows, but ``Z_r`` is
      heavy-tailed and, with a discretised SDE, correlated with where a run ends. Measured on the
      annealed 1-D mixture of ``tests/_cases.bimodal_1d`` (beta = 3, 400 runs of 4 particles;
      mass of the right mode, exact 0.888): 100 steps: equal 0.915 / 0.926, z 0.967 / 0.988
      (two repeats); 500 steps: equal 0.912, z 0.870. On alanine dipeptide at 600 K (8 runs of
      1024) equal pooling was also closer to MD (``models/aldp-ft-ladder-T600``). Needs FKC files
      of one model, beta, noise and step count (else ``ValueError`` naming the difference).

    Energies (kJ/mol) are evaluated with OpenMM for the record; the metadata lists per file its
    frames, distinct frames kept, run weight ``W_r`` and ``log Z``, and the effective number of
    runs ``1 / sum_r W_r^2``. All files must be alanine-dipeptide samples at one target
    temperature; non-finite positions or weights raise ``ValueError`` naming the file. Atomic.
    """
    import torch

    from fkc.smc.resampling import systematic
    from fkc.systems._md import _atomic_savez, file_sha256

    if pool not in ("z", "equal"):
        raise ValueError(f"pool must be 'z' or 'equal', got {pool!r}")
    if not sample_files:
        raise ValueError("aldp_training_set_from_samples needs at least one sample file")
    system = system or AlanineDipeptide()
    xs, lws, log_z, sources, temps, setups = [], [], [], [], {}, {}
    for f in map(Path, sample_files):
        with np.load(f) as d:
            if "x" not in d.files or "metadata" not in d.files:
                raise ValueError(f"{f}: not an fkc sample file (needs arrays 'x' and 'metadata')")
            meta = json.loads(str(d["metadata"]))
            x = np.asarray(d["x"], dtype=np.float64)
            lw = np.asarray(d["log_weights"], dtype=np.float64) if "log_weights" in d.files \
                else np.zeros(x.shape[0])  # fmt: skip
            lz = float(d["log_z"]) if "log_z" in d.files else None
        if meta.get("system") != "aldp":
            raise ValueError(f"{f}: samples of system {meta.get('system')!r}, not 'aldp'")
        if "temperature" not in meta:
            raise ValueError(f"{f}: metadata has no target 'temperature'")
        temps[str(f)] = float(meta["temperature"])
        x_nm = samples_in_nm(x, meta)
        system.check_positions(x_nm, f"{f}: x")
        if lw.shape != (x.shape[0],) or not np.all(np.isfinite(lw)):
            raise ValueError(f"{f}: log_weights must be finite with shape ({x.shape[0]},), "
                             f"got shape {lw.shape}")  # fmt: skip
        if pool == "z":
            if not meta.get("correct") or lz is None or not np.isfinite(lz):
                raise ValueError(f"{f}: pool='z' needs FKC runs with a finite log_z "
                                 f"(correct={meta.get('correct')}, log_z={lz}); use pool='equal'")  # fmt: skip
            setups[str(f)] = tuple(meta.get(k) for k in ("model", "beta", "noise", "n_steps"))
        xs.append(x_nm)
        lws.append(lw - np.logaddexp.reduce(lw))
        log_z.append(lz)
        sources.append({"file": f.name, "sha256": file_sha256(f), "frames": int(x.shape[0]),
                        "log_z": lz if lz is not None and np.isfinite(lz) else None, "model": meta.get("model"), "beta": meta.get("beta"),
                        "seed": meta.get("seed"), "correct": meta.get("correct")})  # fmt: skip
    if len(set(temps.values())) != 1:
        raise ValueError(f"sample files at different temperatures: {temps}")
    if len(set(setups.values())) > 1:
        raise ValueError("pool='z' needs runs of one model, beta, noise and step count, got "
                         f"(model, beta, noise, n_steps) = {setups}")  # fmt: skip
    n = np.array([len(x) for x in xs])
    run_lw = np.array(log_z) if pool == "z" else np.log(n / n.sum())
    run_lw = run_lw - np.logaddexp.reduce(run_lw)
    flat_lw = np.concatenate([r + lw for r, lw in zip(run_lw, lws, strict=True)])
    g = torch.Generator().manual_seed(int(seed))
    idx = np.sort(systematic(torch.from_numpy(flat_lw), g, n_out=int(n.sum())).numpy())
    x_nm = np.concatenate(xs)[idx]
    run_of = np.repeat(np.arange(len(xs)), n)[idx]
    for r, src in enumerate(sources):
        src["run_weight"] = float(np.exp(run_lw[r]))
        kept = x_nm[run_of == r]
        src["kept"] = int(len(kept))
        src["unique"] = int(len(np.unique(kept.reshape(len(kept), -1), axis=0)))
    arrays = {
        "x": (x_nm * ANGSTROM_PER_NM).astype(np.float32),
        "energy": system.energy(x_nm),
        "temperature": np.array(next(iter(temps.values()))),
        "length_unit": np.array("angstrom"),
        **aldp_graph_arrays(system),
        "metadata": np.array(json.dumps({
            "samples": sources, "pool": pool, "seed": seed,
            "effective_runs": float(1.0 / np.sum(np.exp(2 * run_lw))),
            "elements": list(ELEMENTS), "bond_pairs": ["-".join(p) for p in BOND_PAIRS]})),
    }  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_savez(out, arrays)
    return out


TRAJECTORY_FORMATS = (".dcd", ".pdb", ".xtc", ".h5")


def samples_in_nm(x, metadata: dict) -> np.ndarray:
    """Sampled alanine-dipeptide positions ``(n, 22, 3)`` in nm, from a model whose metadata
    records ``length_unit`` (``"angstrom"`` or ``"nm"``; a missing unit raises)."""
    unit = metadata.get("length_unit")
    x = np.asarray(x, dtype=np.float64)
    if unit == "angstrom":
        return to_nm(x)
    if unit == "nm":
        return x
    raise ValueError(f"length_unit must be 'angstrom' or 'nm' for alanine-dipeptide samples, "
                     f"got {unit!r}")  # fmt: skip


def save_trajectory(x_nm, path: str | os.PathLike, system: AlanineDipeptide | None = None) -> list[Path]:  # fmt: skip
    """Write positions ``(n, 22, 3)`` nm as a trajectory mdtraj and MD tools read.

    The format follows the suffix (:data:`TRAJECTORY_FORMATS`); ``.dcd``/``.xtc`` also get the
    topology as ``<stem>.pdb`` beside them (first frame). Writes go to a temporary file that is
    renamed, so an interrupted run leaves no half-written file. Returns the written paths.
    """
    import tempfile

    path = Path(path)
    if path.suffix not in TRAJECTORY_FORMATS:
        raise ValueError(f"trajectory format {path.suffix!r} of {path} is not one of "
                         f"{TRAJECTORY_FORMATS}")  # fmt: skip
    system = system or AlanineDipeptide()
    traj = system.to_mdtraj(x_nm)
    path.parent.mkdir(parents=True, exist_ok=True)
    todo = [(traj, path)]
    if path.suffix in (".dcd", ".xtc"):
        todo.append((traj[0], path.with_suffix(".pdb")))
    for t, p in todo:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix)
        os.close(fd)
        os.unlink(tmp)  # mdtraj refuses to overwrite
        try:
            t.save(tmp)
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [p for _, p in todo]
