"""Checkpoints of score networks: one self-describing ``.safetensors`` file.

A checkpoint alone rebuilds the network *and* the noise process it was trained for, and (when it
was written by the trainer) resumes training bit for bit.

File layout
-----------
One safetensors file (tensors + a string header), written atomically (temporary file in the same
directory, ``fsync``, then ``os.replace``), so a crash never leaves a half-written checkpoint:

* tensors ``model.<name>``: the network's ``state_dict`` (trained weights);
* tensors ``ema.<name>``: the exponential-moving-average weights (optional);
* tensors ``optim.<i>.<key>``: per-parameter optimiser state (optional; ``param_groups`` and
  non-tensor state live in the JSON header);
* tensors ``rng.<name>``: ``torch.Generator`` states (uint8) and ``history.<name>``: loss curves;
* header metadata key ``"fkc"``: JSON with ``format``/``version``, ``model_config``
  (``config.to_dict()``), ``process`` (:func:`process_to_dict`), ``metadata`` (training
  temperature, system, data description ...), ``step``, the training config, and the SHA-256 of
  all tensors (names, dtypes, shapes and bytes), so a corrupted file is detected on load.

Errors
------
:func:`load_checkpoint` raises :class:`CheckpointError` (a ``ValueError``) naming the file and the
problem: truncated file, not a safetensors/fkc file, checksum mismatch, invalid model config,
unknown process, and (in :meth:`Checkpoint.build_model`) weights that do not fit the config
(missing/unexpected keys, wrong shapes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from .sde import VESDE, VPSDE, NoiseProcess

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "export_weights",
    "load_checkpoint",
    "process_from_dict",
    "process_to_dict",
    "save_checkpoint",
]

FORMAT = "fkc-checkpoint"
VERSION = 1
_HEADER_KEY = "fkc"

#: noise-process classes a checkpoint can name (``"type"`` key), with short aliases for configs
PROCESS_TYPES: dict[str, type[NoiseProcess]] = {"VPSDE": VPSDE, "VESDE": VESDE}
_PROCESS_ALIASES = {"vp": "VPSDE", "vpsde": "VPSDE", "ve": "VESDE", "vesde": "VESDE"}


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupt, or does not match what it is loaded into."""


# ---- noise processes ---------------------------------------------------------------------------
def process_to_dict(process: NoiseProcess) -> dict[str, Any]:
    """``VPSDE(beta_min=0.1, ..., com_free=True)`` -> ``{"type": "VPSDE", "beta_min": 0.1, ...,
    "com_free": True}`` (plain JSON types)."""
    name = type(process).__name__
    if name not in PROCESS_TYPES or not isinstance(process, PROCESS_TYPES[name]):
        raise ValueError(
            f"cannot serialise noise process {process!r}: known types are {sorted(PROCESS_TYPES)}"
        )
    out: dict[str, Any] = {"type": name}
    for f in dataclasses.fields(process):
        out[f.name] = getattr(process, f.name)
    return out


def process_from_dict(d: dict[str, Any]) -> NoiseProcess:
    """Inverse of :func:`process_to_dict`. ``type`` may also be ``"vp"``/``"ve"``; unknown keys and
    invalid values raise ``ValueError`` naming them."""
    if not isinstance(d, dict):
        raise ValueError(f"a process description must be a dict, got {type(d).__name__}")
    d = dict(d)
    if "type" not in d:
        raise ValueError(f"a process description needs a 'type' key, got keys {sorted(d)}")
    kind = d.pop("type")
    name = _PROCESS_ALIASES.get(str(kind).lower(), kind)
    if name not in PROCESS_TYPES:
        raise ValueError(
            f"unknown process type {kind!r}; known: {sorted(PROCESS_TYPES)} (or 'vp', 've')"
        )
    cls = PROCESS_TYPES[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} for process type {name}; allowed: {sorted(known)}"
        )
    return cls(**d)


# ---- atomic writes -----------------------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory is written,
    flushed and fsync'ed, then renamed over ``path`` with ``os.replace``. The file gets the usual
    permissions of a new file (``0o666`` minus the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files; use the mode open() would give
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable (not supported on every platform/filesystem)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ---- the checkpoint record ---------------------------------------------------------------------
@dataclass
class Checkpoint:
    """Everything a checkpoint file holds (tensors on CPU).

    model_config: ``config.to_dict()`` of the network; process: the noise process;
    metadata: free JSON dict (``training_temperature``, ``system``, data description ...);
    step: optimiser steps done; model_state / ema_state: network ``state_dict``s (``ema_state``
    may be None); optimizer_state: a ``torch.optim`` ``state_dict`` or None; rng_states: name ->
    ``torch.Generator`` state; history: name -> 1-d tensor (e.g. the per-step training loss);
    train_config: the training configuration dict (None if not written by the trainer);
    extra: other JSON state of the trainer; path: the file it was read from.
    """

    model_config: dict[str, Any]
    process: NoiseProcess
    model_state: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    ema_state: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    rng_states: dict[str, torch.Tensor] = field(default_factory=dict)
    history: dict[str, torch.Tensor] = field(default_factory=dict)
    train_config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def resumable(self) -> bool:
        """True when the file holds optimiser and RNG state (training can continue from it)."""
        return self.optimizer_state is not None and bool(self.rng_states)

    def build_model(
        self,
        *,
        use_ema: bool = True,
        device: torch.device | str | None = None,
        process: NoiseProcess | None = None,
    ) -> nn.Module:
        """Rebuild the network from ``model_config`` and load the EMA (``use_ema=True``, if
        present) or trained weights; returned in eval mode on ``device`` (default CPU), in the
        dtype the weights were saved in. ``process`` defaults to :attr:`process`.

        Raises :class:`CheckpointError` if the weights do not fit the config.
        """
        from .models import build_model as _build_model  # lazy: torch_geometric is slow to import
        from .models import config_from_dict

        where = self.path or "<checkpoint>"
        if use_ema and self.ema_state is None:
            raise CheckpointError(f"{where}: use_ema=True but the checkpoint has no EMA weights")
        state = self.ema_state if use_ema else self.model_state
        try:
            config = config_from_dict(self.model_config)
        except ValueError as e:
            raise CheckpointError(f"{where}: invalid model config: {e}") from e
        dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
        dtype = torch.float64 if torch.float64 in dtypes else None
        try:
            model = _build_model(config, process if process is not None else self.process,
                                 dtype=dtype)
        except ValueError as e:
            raise CheckpointError(f"{where}: cannot build the model: {e}") from e
        check_state_dict(model, state, where=f"{where} ({'ema' if use_ema else 'model'} weights)")
        model.load_state_dict(state)
        if device is not None:
            model.to(device)
        return model.eval()


def export_weights(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the weights of checkpoint ``src`` without optimizer and RNG state to ``dst``.

    The result (``model.safetensors`` in a model folder, the first name :func:`fkc.anneal` and
    ``fkc anneal --model FOLDER`` look for) holds the trained and EMA weights, config, metadata
    and history: enough to sample or to fine-tune (``init_from``), not to resume; about half the
    size of a full AdamW checkpoint. ``src`` is verified first; the write is atomic.
    """
    ckpt = load_checkpoint(src)
    if Path(dst).resolve() == Path(src).resolve():
        raise ValueError(f"export_weights: dst must differ from src, got {dst}")
    out = dataclasses.replace(ckpt, optimizer_state=None, rng_states={}, path=None)
    return save_checkpoint(dst, out)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly ``model``'s keys and shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_short(shapes)}")
    if problems:
        raise CheckpointError(
            f"{where}: weights do not match the model config: " + "; ".join(problems)
        )


def _short(items: list[str], n: int = 5) -> str:
    return str(items[:n])[:-1] + (f", ... ({len(items)} in all)]" if len(items) > n else "]")


# ---- optimizer state <-> tensors + JSON --------------------------------------------------------
def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, v in pstate.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = v
            else:
                scalars.setdefault(str(pid), {})[key] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], js: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = v
    for pid, d in js.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(d)
    return {"state": state, "param_groups": js["param_groups"]}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted names, dtypes, shapes and raw bytes of ``tensors``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---- save / load -------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` (atomically; parent directories are created). Returns the path."""
    tensors: dict[str, torch.Tensor] = {}

    def put(prefix: str, d: dict[str, torch.Tensor] | None) -> None:
        for k, v in (d or {}).items():
            if not isinstance(v, torch.Tensor):
                raise ValueError(f"{prefix}{k} must be a tensor, got {type(v).__name__}")
            tensors[prefix + k] = v.detach().to("cpu").contiguous().clone()

    put("model.", ckpt.model_state)
    put("ema.", ckpt.ema_state)
    put("rng.", ckpt.rng_states)
    put("history.", ckpt.history)
    optim_js = None
    if ckpt.optimizer_state is not None:
        opt_tensors, optim_js = _split_optimizer(ckpt.optimizer_state)
        put("", opt_tensors)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": ckpt.model_config,
        "process": process_to_dict(ckpt.process),
        "metadata": ckpt.metadata,
        "step": int(ckpt.step),
        "has_ema": ckpt.ema_state is not None,
        "optimizer": optim_js,
        "train_config": ckpt.train_config,
        "extra": ckpt.extra,
        "sha256": _digest(tensors),
    }
    try:
        text = json.dumps(header, allow_nan=True)
    except TypeError as e:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {e}") from e
    data = _st_save(tensors, metadata={_HEADER_KEY: text})
    atomic_write_bytes(path, data)
    return Path(path)


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise CheckpointError(
            f"{path}: file is truncated or not a safetensors file ({len(data)} bytes)"
        )
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise CheckpointError(
            f"{path}: file is truncated or not a safetensors file (header of {n} bytes declared, "
            f"file has {len(data)} bytes)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt or non-safetensors header ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    end = 0
    for k, v in header.items():
        if k != "__metadata__":
            try:
                end = max(end, int(v["data_offsets"][1]))
            except (TypeError, KeyError, IndexError, ValueError) as e:
                raise CheckpointError(f"{path}: corrupt safetensors header entry {k!r}") from e
    if 8 + n + end != len(data):
        raise CheckpointError(
            f"{path}: file is truncated or has trailing bytes: the header describes "
            f"{8 + n + end} bytes, the file has {len(data)}"
        )
    return header


def load_checkpoint(path: str | os.PathLike, *, verify: bool = True) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on CPU).

    verify: check the SHA-256 of the tensors against the one stored at save time.
    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (naming the file)
    for a corrupt, truncated or foreign one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (or is not a file)")
    data = path.read_bytes()
    header = _read_header(path, data)
    meta = header.get("__metadata__") or {}
    if _HEADER_KEY not in meta:
        raise CheckpointError(
            f"{path}: a safetensors file but not an fkc checkpoint (no {_HEADER_KEY!r} metadata)"
        )
    try:
        info = json.loads(meta[_HEADER_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt fkc metadata ({e})") from e
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an fkc checkpoint (format {info.get('format')!r})")
    if not isinstance(info.get("version"), int) or info["version"] > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {info.get('version')!r} is newer than this fkc "
            f"understands ({VERSION}); upgrade fkc"
        )
    for key in ("model_config", "process", "step"):
        if key not in info:
            raise CheckpointError(f"{path}: fkc metadata lacks {key!r}")
    try:
        tensors = _st_load(data)
    except Exception as e:  # safetensors raises its own error type
        raise CheckpointError(f"{path}: cannot read tensors ({type(e).__name__}: {e})") from e
    if verify and info.get("sha256") != _digest(tensors):
        raise CheckpointError(
            f"{path}: tensor data corrupted (SHA-256 mismatch with the value stored at save time)"
        )
    try:
        process = process_from_dict(info["process"])
    except ValueError as e:
        raise CheckpointError(f"{path}: invalid noise process: {e}") from e
    if not isinstance(info["model_config"], dict) or "name" not in info["model_config"]:
        raise CheckpointError(f"{path}: invalid model config {info['model_config']!r}")

    groups: dict[str, dict[str, torch.Tensor]] = {
        "model": {}, "ema": {}, "rng": {}, "history": {}, "optim": {}
    }
    for name, v in tensors.items():
        prefix, _, rest = name.partition(".")
        if prefix not in groups or not rest:
            raise CheckpointError(f"{path}: unexpected tensor {name!r}")
        groups[prefix][rest if prefix != "optim" else name] = v
    optim_state = None
    if info.get("optimizer") is not None:
        try:
            optim_state = _join_optimizer(groups["optim"], info["optimizer"])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupt optimizer state ({e})") from e
    return Checkpoint(
        model_config=info["model_config"],
        process=process,
        model_state=groups["model"],
        metadata=info.get("metadata") or {},
        step=int(info["step"]),
        ema_state=groups["ema"] if info.get("has_ema") else None,
        optimizer_state=optim_state,
        rng_states=groups["rng"],
        history=groups["history"],
        train_config=info.get("train_config"),
        extra=info.get("extra") or {},
        path=str(path),
    )
