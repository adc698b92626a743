r"""Langevin molecular dynamics of alanine dipeptide with OpenMM: resumable, chunked ``.npz`` files.

Procedure (numbers are fields of :class:`MDConfig`):

1. Start from the openmmtools PDB structure, minimise (``LocalEnergyMinimizer``, default
   tolerance), draw Maxwell-Boltzmann velocities at ``temperature`` (seeded).
2. Equilibrate ``equilibration_steps`` steps (discarded).
3. Production: ``n_frames`` frames, one every ``save_interval`` steps, with
   ``LangevinMiddleIntegrator`` (BAOAB-type splitting, Zhang et al. 2019) at ``temperature``,
   friction ``friction_per_ps`` and step ``timestep_fs``. No constraints (see
   :mod:`fkc.systems._aldp`): every bond, X-H included, vibrates, so the data contain no rigid
   bond that a generative model would have to learn; 1 fs resolves the fastest (X-H, ~11 fs)
   vibration with a stable, accurate splitting (2 fs would need rigid X-H bonds).
4. Every ``chunk_frames`` frames the whole file is rewritten atomically (temp file in the same
   directory, then ``os.replace``), so an interrupted run leaves the last complete chunk.
   Wall-clock timings (ns/day per chunk) go to a side file ``<name>.timing.json``, so the
   ``.npz`` itself depends only on the config and the platform (fixed zip timestamps): same
   config, same platform and OpenMM build -> byte-identical file.

File (``.npz``, no pickles):

* ``x (n, 22, 3)`` float32 positions in nm (raw, not centred; the centre-of-mass motion is
  removed every step by OpenMM's ``CMMotionRemover``),
* ``energy (n,)`` float64 potential energy in kJ/mol of the double-precision positions,
* ``kinetic_energy (n,)`` float64 kJ/mol, ``time_ps (n,)`` float64 (production time, 0 = end of
  equilibration), ``temperature`` (K),
* ``metadata``: JSON (config, force field, OpenMM version, platform, chunks, resumes),
* ``topology_pdb``: PDB text (topology and reference structure; ``mdtraj`` readable),
* ``checkpoint`` (uint8, ``Context.createCheckpoint``; includes the integrator's random state)
  and ``state_xml`` (``XmlSerializer`` of positions/velocities, portable).

Resuming (same path, larger ``n_frames``, otherwise the same config): the run continues from
``checkpoint``; on the same platform and OpenMM build this is bit-identical to an uninterrupted
run (a test checks it). If the checkpoint cannot be loaded (other platform or OpenMM version) it
continues from ``state_xml`` with a fresh random stream (integrator seed derived from ``seed`` and
the number of stored frames); this is recorded in ``metadata["resumes"]`` and warned about.

Random seeds: OpenMM treats seed 0 as "pick a random seed", so the integrator and the initial
velocities use ``seed + 1`` (``seed >= 0``); same config, same platform -> same file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fkc.checkpoint import atomic_write_bytes
from fkc.systems._aldp import AlanineDipeptide, import_openmm, kT

#: Fields that must agree between a stored file and the config that resumes it.
_RESUME_FIELDS = ("temperature", "save_interval", "timestep_fs", "friction_per_ps",
                  "equilibration_steps", "seed", "solvent")  # fmt: skip
_ARRAYS = ("x", "energy", "kinetic_energy", "time_ps", "temperature", "metadata", "topology_pdb",
           "checkpoint", "state_xml")  # fmt: skip


@dataclass(frozen=True)
class MDConfig:
    """One Langevin MD run of alanine dipeptide.

    Attributes:
        temperature: thermostat temperature in K.
        n_frames: frames to store (production length = ``n_frames * save_interval`` steps).
        save_interval: integration steps between stored frames (1000 = 1 ps at 1 fs).
        timestep_fs: integration step in fs (1 fs: no constraints are used).
        friction_per_ps: Langevin friction coefficient in 1/ps.
        equilibration_steps: steps after minimisation, discarded.
        seed: ``>= 0``; OpenMM gets ``seed + 1`` (integrator and initial velocities).
        solvent: ``"obc"`` or ``"vacuum"`` (:class:`~fkc.systems.AlanineDipeptide`).
        platform: OpenMM platform (``"Reference"`` is fastest for 22 atoms on a CPU core).
        threads: threads of the ``"CPU"`` platform (ignored by the others).
        chunk_frames: frames between atomic rewrites of the output (and checkpoints).
    """

    temperature: float
    n_frames: int
    save_interval: int = 1000
    timestep_fs: float = 1.0
    friction_per_ps: float = 1.0
    equilibration_steps: int = 100_000
    seed: int = 0
    solvent: str = "obc"
    platform: str = "Reference"
    threads: int = 1
    chunk_frames: int = 5000

    def __post_init__(self) -> None:
        for name in ("temperature", "timestep_fs", "friction_per_ps"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        for name, lo in (("n_frames", 1), ("save_interval", 1), ("equilibration_steps", 0),
                         ("seed", 0), ("threads", 1), ("chunk_frames", 1)):  # fmt: skip
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.timestep_fs > 2.0:
            raise ValueError(f"timestep_fs must be <= 2 fs without constraints, got {self.timestep_fs}")
        AlanineDipeptide.check_solvent_platform(self.solvent, self.platform)

    @property
    def frame_interval_ps(self) -> float:
        """Time between stored frames in ps."""
        return self.save_interval * self.timestep_fs * 1e-3

    @property
    def length_ns(self) -> float:
        """Production length in ns."""
        return self.n_frames * self.frame_interval_ps * 1e-3

    @property
    def platform_properties(self) -> dict[str, str]:
        return {"Threads": str(self.threads)} if self.platform == "CPU" else {}


@dataclass
class MDData:
    """A loaded MD file (see the module docstring for the arrays and units)."""

    x: np.ndarray
    energy: np.ndarray
    kinetic_energy: np.ndarray
    time_ps: np.ndarray
    temperature: float
    metadata: dict
    topology_pdb: str

    @property
    def config(self) -> MDConfig:
        """The config of the run that wrote the file (``n_frames`` = frames requested)."""
        return MDConfig(**self.metadata["config"])

    @property
    def n_frames(self) -> int:
        return len(self.x)

    @property
    def length_ns(self) -> float:
        """Production time covered by the stored frames, in ns."""
        return self.n_frames * self.config.frame_interval_ps * 1e-3

    def to_mdtraj(self):
        """The frames as an ``mdtraj.Trajectory`` (topology from ``topology_pdb``)."""
        import mdtraj

        return mdtraj.Trajectory(self.x, pdb_topology(self.topology_pdb))


def pdb_topology(pdb_text: str):
    """The ``mdtraj.Topology`` of PDB text."""
    import mdtraj

    fd, tmp = tempfile.mkstemp(suffix=".pdb")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(pdb_text)
        return mdtraj.load_pdb(tmp, standard_names=False).topology
    finally:
        os.unlink(tmp)


def _corrupt(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a readable alanine-dipeptide MD file ({why}); delete it or "
                      "choose another output path to start a new run")  # fmt: skip


def _read(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = sorted(set(_ARRAYS) - set(f.files))
            data = {} if missing else {k: f[k] for k in _ARRAYS}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise _corrupt(path, f"{type(e).__name__}: {e}") from e
    if missing:
        raise _corrupt(path, f"missing arrays {missing}")
    try:
        data["metadata"] = json.loads(str(data["metadata"]))
        MDConfig(**data["metadata"]["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise _corrupt(path, f"bad metadata: {e}") from e
    n = len(data["x"])
    if data["x"].ndim != 3 or data["x"].shape[1:] != (22, 3):
        raise _corrupt(path, f"x has shape {data['x'].shape}, expected (n, 22, 3)")
    for k in ("energy", "kinetic_energy", "time_ps"):
        if data[k].shape != (n,):
            raise _corrupt(path, f"{k} has shape {data[k].shape}, expected ({n},) like x")
    if not np.isfinite(data["x"]).all() or not np.isfinite(data["energy"]).all():
        raise _corrupt(path, "non-finite positions or energies")
    return data


def load_md(path: str | os.PathLike) -> MDData:
    """Load a file written by :func:`run_md`; ``ValueError`` naming the file if it is corrupt."""
    path = Path(path)
    d = _read(path)
    return MDData(x=d["x"], energy=d["energy"], kinetic_energy=d["kinetic_energy"],
                  time_ps=d["time_ps"], temperature=float(d["temperature"]),
                  metadata=d["metadata"], topology_pdb=str(d["topology_pdb"]))  # fmt: skip


def subsample_md(paths, out: str | os.PathLike, every: int) -> MDData:
    """Every ``every``-th frame of each MD file (one temperature) pooled into one small file in
    the same format (for shipping); loadable with :func:`load_md`, not resumable (no checkpoint;
    ``metadata["subsample"]`` names the sources, their SHA-256 and ``every``). Atomic write."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("subsample_md needs at least one MD file")
    if not (isinstance(every, int) and every >= 1):
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    runs = [load_md(p) for p in paths]
    temps = {str(p): r.temperature for p, r in zip(paths, runs, strict=True)}
    if len(set(temps.values())) != 1:
        raise ValueError(f"MD files at different temperatures: {temps}")
    meta = dict(runs[0].metadata)
    meta["subsample"] = {
        "every": every,
        "sources": [{"file": p.name, "sha256": file_sha256(p),
                     "frames": r.n_frames, "seed": r.config.seed} for p, r in zip(paths, runs, strict=True)],
    }  # fmt: skip
    cat = lambda k: np.concatenate([getattr(r, k)[::every] for r in runs])  # noqa: E731
    _atomic_savez(Path(out), {
        "x": cat("x"), "energy": cat("energy"), "kinetic_energy": cat("kinetic_energy"),
        "time_ps": cat("time_ps"), "temperature": np.float64(runs[0].temperature),
        "metadata": np.array(json.dumps(meta, sort_keys=True)),
        "topology_pdb": np.array(runs[0].topology_pdb),
        "checkpoint": np.zeros(0, dtype=np.uint8), "state_xml": np.array(""),
    })  # fmt: skip
    return load_md(out)


def _atomic_savez(path: Path, arrays: dict) -> None:
    """``np.savez``-compatible file with fixed zip timestamps, so same arrays -> same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def timing_path(out: str | os.PathLike) -> Path:
    """Side file with wall-clock timings of a run (``T300_s0.npz`` -> ``T300_s0.timing.json``);
    kept out of the ``.npz`` so that the data file depends only on config and platform."""
    out = Path(out)
    return out.with_name(out.stem + ".timing.json")


def write_topology_pdb(directory: str | os.PathLike, system: AlanineDipeptide | None = None) -> Path:
    """Write ``aldp.pdb`` (topology + openmmtools reference structure) into ``directory``."""
    system = system or AlanineDipeptide()
    path = Path(directory) / "aldp.pdb"
    atomic_write_bytes(path, system.pdb_string().encode())
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sha256sums(directory: str | os.PathLike, patterns: tuple[str, ...] = ("*.npz", "*.pdb")) -> dict[str, str]:  # fmt: skip
    """Write ``SHA256SUMS`` (``sha256sum -c`` format) for the files matching ``patterns``.

    Returns ``{file name: hex digest}``. READMEs are not covered (they record timings).
    """
    directory = Path(directory)
    names = sorted({p.name for pat in patterns for p in directory.glob(pat) if p.is_file()})
    sums = {name: file_sha256(directory / name) for name in names}
    atomic_write_bytes(directory / "SHA256SUMS",
                       "".join(f"{h}  {n}\n" for n, h in sums.items()).encode())  # fmt: skip
    return sums


def _make_context(system: AlanineDipeptide, config: MDConfig, omm_seed: int):
    openmm, _, unit = import_openmm()
    integrator = openmm.LangevinMiddleIntegrator(
        config.temperature * unit.kelvin, config.friction_per_ps / unit.picosecond,
        config.timestep_fs * unit.femtosecond,
    )  # fmt: skip
    integrator.setRandomNumberSeed(omm_seed)
    context = openmm.Context(system.openmm_system(), integrator, system.openmm_platform(),
                             config.platform_properties)  # fmt: skip
    return context, integrator


def run_md(config: MDConfig, out: str | os.PathLike, *, progress: bool = True) -> MDData:
    """Run (or resume, or extend) the MD of ``config`` into ``out`` (``.npz``); returns the data.

    If ``out`` exists it must be a file of the same run (fields ``temperature``,
    ``save_interval``, ``timestep_fs``, ``friction_per_ps``, ``equilibration_steps``, ``seed``,
    ``solvent`` equal); it is continued up to ``config.n_frames`` frames (nothing is done if it
    already has that many). A file that cannot be read raises ``ValueError`` naming it.
    Also writes ``aldp.pdb`` next to ``out`` if missing.
    """
    from tqdm.auto import tqdm

    openmm, _, unit = import_openmm()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    system = AlanineDipeptide(config.solvent, config.platform, config.platform_properties)
    if not (out.parent / "aldp.pdb").exists():
        write_topology_pdb(out.parent, system)

    old = _read(out) if out.exists() else None
    timings = []
    if old is not None and timing_path(out).exists():
        try:
            timings = json.loads(timing_path(out).read_text())
        except ValueError:
            timings = []
    resumes, segments = [], []
    if old is not None and "subsample" in old["metadata"]:
        raise ValueError(f"{out} is a subsample (fkc.systems.subsample_md) and cannot be resumed")
    if old is not None:
        stored = old["metadata"]["config"]
        clash = {k: (stored[k], getattr(config, k)) for k in _RESUME_FIELDS
                 if stored[k] != getattr(config, k)}  # fmt: skip
        if clash:
            raise ValueError(f"{out} was written with a different config (stored, requested): "
                             f"{clash}; choose another output path")  # fmt: skip
        resumes, segments = old["metadata"]["resumes"], old["metadata"]["segments"]
        n_done = len(old["x"])
        if n_done >= config.n_frames:
            return load_md(out)
        xs, es, kes, ts = [old["x"]], [old["energy"]], [old["kinetic_energy"]], [old["time_ps"]]
    else:
        n_done = 0
        xs, es, kes, ts = [], [], [], []

    omm_seed = config.seed + 1
    context, integrator = _make_context(system, config, omm_seed)
    if old is not None:
        mode = "checkpoint"
        try:
            context.loadCheckpoint(old["checkpoint"].tobytes())
        except Exception as e:  # noqa: BLE001 - OpenMMException: other platform / version
            mode = "state_xml"
            omm_seed = config.seed + 1 + 1_000_003 * n_done
            warnings.warn(f"{out}: cannot load the OpenMM checkpoint ({e}); continuing from the "
                          f"stored positions/velocities with integrator seed {omm_seed}: "
                          "statistically valid but not bit-identical to an uninterrupted run",
                          stacklevel=2)  # fmt: skip
            del context, integrator
            context, integrator = _make_context(system, config, omm_seed)
            context.setState(openmm.XmlSerializer.deserialize(str(old["state_xml"])))
        resumes.append({"frame": n_done, "mode": mode, "platform": config.platform})
    else:
        context.setPositions(system.reference_positions)
        openmm.LocalEnergyMinimizer.minimize(context)
        context.setVelocitiesToTemperature(config.temperature * unit.kelvin, omm_seed)
        if config.equilibration_steps:
            integrator.step(config.equilibration_steps)
        context.setTime(0.0)
        context.setStepCount(0)

    kj = unit.kilojoule_per_mole
    bar = tqdm(total=config.n_frames, initial=n_done, unit="frame", disable=not progress,
               desc=f"aldp MD {config.temperature:g} K")  # fmt: skip
    meta_base = {"config": asdict(config), "system": system.parameters(),
                 "integrator": "LangevinMiddleIntegrator", "units": {
                     "x": "nm", "energy": "kJ/mol", "kinetic_energy": "kJ/mol", "time_ps": "ps",
                     "temperature": "K"},
                 "n_dof": 3 * system.n_atoms - 3, "kT_kj_per_mol": kT(config.temperature),
                 "topology_file": "aldp.pdb"}  # fmt: skip
    pdb_text = system.pdb_string()
    try:
        while n_done < config.n_frames:
            n_chunk = min(config.chunk_frames, config.n_frames - n_done)
            cx = np.empty((n_chunk, 22, 3), np.float32)
            ce, cke, ct = np.empty(n_chunk), np.empty(n_chunk), np.empty(n_chunk)
            t_chunk = time.perf_counter()
            for i in range(n_chunk):
                integrator.step(config.save_interval)
                state = context.getState(getPositions=True, getEnergy=True)
                cx[i] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
                ce[i] = state.getPotentialEnergy().value_in_unit(kj)
                cke[i] = state.getKineticEnergy().value_in_unit(kj)
                ct[i] = state.getTime().value_in_unit(unit.picosecond)
                bar.update(1)
            wall = time.perf_counter() - t_chunk
            n_done += n_chunk
            xs.append(cx), es.append(ce), kes.append(cke), ts.append(ct)
            ns = n_chunk * config.frame_interval_ps * 1e-3
            segments.append({"frames": n_chunk, "platform": config.platform})
            timings.append({"frames": n_chunk, "wall_s": round(wall, 3), "platform": config.platform,
                            "ns_per_day": round(ns / wall * 86400, 1)})  # fmt: skip
            state = context.getState(getPositions=True, getVelocities=True)
            meta = {**meta_base, "n_frames_stored": n_done, "resumes": resumes,
                    "segments": segments}  # fmt: skip
            _atomic_savez(out, {
                "x": np.concatenate(xs), "energy": np.concatenate(es),
                "kinetic_energy": np.concatenate(kes), "time_ps": np.concatenate(ts),
                "temperature": np.float64(config.temperature),
                "metadata": np.array(json.dumps(meta, sort_keys=True)),
                "topology_pdb": np.array(pdb_text),
                "checkpoint": np.frombuffer(context.createCheckpoint(), dtype=np.uint8),
                "state_xml": np.array(openmm.XmlSerializer.serialize(state)),
            })  # fmt: skip
            atomic_write_bytes(timing_path(out), json.dumps(timings, indent=1).encode())
            xs, es, kes, ts = [np.concatenate(xs)], [np.concatenate(es)], [np.concatenate(kes)], [np.concatenate(ts)]  # fmt: skip
    finally:
        bar.close()
    return load_md(out)


def benchmark_md(config: MDConfig, n_steps: int = 20_000) -> float:
    """Measured production speed in ns/day for ``config`` (after minimisation and 1000 steps)."""
    openmm, _, unit = import_openmm()
    system = AlanineDipeptide(config.solvent, config.platform, config.platform_properties)
    context, integrator = _make_context(system, config, config.seed + 1)
    context.setPositions(system.reference_positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(config.temperature * unit.kelvin, config.seed + 1)
    integrator.step(1000)
    t = time.perf_counter()
    done = 0
    while done < n_steps:
        k = min(config.save_interval, n_steps - done)
        integrator.step(k)
        context.getState(getPositions=True, getEnergy=True)
        done += k
    wall = time.perf_counter() - t
    return n_steps * config.timestep_fs * 1e-6 / wall * 86400

