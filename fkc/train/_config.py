"""Typed, validated training configuration (YAML -> frozen dataclasses).

A YAML file has these top-level sections (every key optional unless marked *required*)::

    output_dir: models/lj13-egnn-T2   # required; relative paths are relative to the working dir
    seed: 0                           # seeds weight init, data order, t, noise, dropout
    device: cpu                       # "cpu", "cuda", "cuda:1", "mps" (never chosen for you)
    dtype: float32                    # float32 | float64 (network and data)
    num_threads: null                 # torch.set_num_threads during training (null: unchanged)
    metadata: {system: lj13, training_temperature: 2.0}   # stored in every checkpoint
    init_from: null                   # fine-tune: start from this checkpoint's (EMA) weights
    process: {type: vp, beta_min: 0.1, beta_max: 20.0, schedule: linear}   # VPSDE (default) / ve
    model: {name: egnn, hidden: 64, ...}  # required; fkc.models config (config_from_dict)
    data:   {kind: point_cloud, train: path.npz, valid: path.npz, ...}     # DataConfig
    loss:   {t_min: 0.001, weighting: eps, t_sampling: stratified,         # LossConfig
             energy_weight: 0.0, energy_t: null, energy_unit: kJ/mol}
    optim:  {lr: 0.0005, grad_clip: 1.0, schedule: cosine, ...}            # OptimConfig
    train:  {n_steps: 10000, batch_size: 64, ema_decay: 0.999, ...}        # RunConfig

Unknown keys are errors that name the key (and list the allowed ones); bad values are errors that
name the field and the value. Numbers written like ``1e-3`` (which YAML 1.1 reads as strings) are
accepted for float fields.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint import process_from_dict, process_to_dict
from ..models import config_from_dict
from ..sde import NoiseProcess
from ..systems import MOLAR_GAS_CONSTANT

__all__ = [
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "load_config",
]


class ConfigError(ValueError):
    """An invalid training configuration (message names the key or value)."""


# ---- small validators (message: "<section>.<field> must be ..., got <value>") ---------------------
def _int(owner: str, name: str, v, lo: int, *, none: bool = False) -> int | None:
    if v is None and none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        extra = " or null" if none else ""
        raise ConfigError(f"{owner}.{name} must be an integer >= {lo}{extra}, got {v!r}")
    return v


def _float(owner: str, name: str, v, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, none: bool = False) -> float | None:
    if v is None and none:
        return None
    orig = v
    if isinstance(v, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            v = float(v)
        except ValueError:
            v = orig
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        rng = []
        if lo is not None:
            rng.append(f"{'>' if lo_open else '>='} {lo}")
        if hi is not None:
            rng.append(f"{'<' if hi_open else '<='} {hi}")
        extra = " or null" if none else ""
        raise ConfigError(
            f"{owner}.{name} must be a finite number {' and '.join(rng)}{extra}, got {orig!r}"
        )
    return float(v)


def _choice(owner: str, name: str, v, choices: tuple) -> str:
    if v not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {list(choices)}, got {v!r}")
    return v


def _str(owner: str, name: str, v, *, none: bool = False) -> str | None:
    if v is None and none:
        return None
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if not isinstance(v, str) or not v:
        extra = " or null" if none else ""
        raise ConfigError(f"{owner}.{name} must be a non-empty string{extra}, got {v!r}")
    return v


def _bool(owner: str, name: str, v) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{owner}.{name} must be true or false, got {v!r}")
    return v


class _Section:
    """Mixin: ``from_dict`` rejecting unknown keys, ``to_dict`` to plain JSON types."""

    _section: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None):
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError(f"{cls._section} must be a mapping, got {type(d).__name__}: {d!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for k in d:
            if k not in known:
                raise ConfigError(
                    f"unknown key {cls._section}.{k!s} (allowed keys in {cls._section}: {known})"
                )
        required = [
            f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        for k in required:
            if k not in d:
                raise ConfigError(f"missing required key {cls._section}.{k}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)


@dataclass(frozen=True, kw_only=True)
class DataConfig(_Section):
    """Where the training data come from.

    kind: ``"point_cloud"`` (configurations of one molecule: an ``.npz`` with ``key`` of shape
        ``(n, n_atoms, 3)``, e.g. the LJ reference sets) or ``"molecules"`` (records of different
        molecules, the ``.npz`` layout of :meth:`fkc.train.MoleculeDataset.save_npz`).
    train / valid: ``.npz`` paths (``valid`` optional: no validation loss without it).
    key: array of positions in a point-cloud file.
    atom_types: per-atom integer types of the point-cloud molecule (default: all 0, e.g. the
        identical atoms of LJ clusters).
    condition_key: array ``(n, cond_dim)`` of per-configuration condition vectors in a point-cloud
        file (for conditional networks); ``null``: unconditional.
    n_train: use a random subset of this many training samples (``null``: all).
    n_valid: use a random subset of this many validation samples (``null``: all).
    """

    _section = "data"
    kind: str = "point_cloud"
    train: str
    valid: str | None = None
    key: str = "x"
    atom_types: tuple[int, ...] | None = None
    condition_key: str | None = None
    n_train: int | None = None
    n_valid: int | None = 1000

    def __post_init__(self) -> None:
        s = self._section
        _choice(s, "kind", self.kind, ("point_cloud", "molecules"))
        self._set("train", _str(s, "train", self.train))
        self._set("valid", _str(s, "valid", self.valid, none=True))
        _str(s, "key", self.key)
        if self.atom_types is not None:
            at = self.atom_types
            if not isinstance(at, (list, tuple)) or not at or any(
                isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in at
            ):
                raise ConfigError(
                    f"{s}.atom_types must be a non-empty list of integers >= 0, got {at!r}"
                )
            self._set("atom_types", tuple(at))
            if self.kind != "point_cloud":
                raise ConfigError(f"{s}.atom_types applies to kind 'point_cloud' only")
        _str(s, "condition_key", self.condition_key, none=True)
        _int(s, "n_train", self.n_train, 1, none=True)
        _int(s, "n_valid", self.n_valid, 1, none=True)


#: ``loss.energy_unit`` choices: energies in kJ/mol with T in K, or energies and T in one unit.
ENERGY_UNITS = ("kJ/mol", "reduced")


@dataclass(frozen=True, kw_only=True)
class LossConfig(_Section):
    """The denoising score-matching objective (formulas in :func:`fkc.train.denoising_loss`),
    optionally plus an energy-matching term for energy models (:func:`fkc.train.energy_residual`).

    t_min: times are drawn from ``U[t_min, 1]``; t_sampling: ``"uniform"`` (i.i.d.) or
    ``"stratified"`` (one uniform offset per batch, ``t_i = t_min + (1 - t_min)(i + u)/G``, then
    shuffled: same marginal, lower variance) or ``"mixed"`` (half stratified in t, half
    log-uniform in sigma/alpha: more weight on small noise; :func:`fkc.train.sample_times`); weighting: ``"eps"`` (``lambda = sigma^2``, the
    eps-prediction loss) or ``"edm"`` (Karras et al. 2022; needs ``model.sigma_data``).

    Energy matching (Boltzmann training data with known potential energies ``U_i``; needs an
    energy model, ``model.name: energy``). The batch loss becomes

        loss = mean_i l_i + energy_weight * Var_i(r_i),
        r_i = E_theta(x0_i, energy_t) - U_i / kT                           (nats),

    with ``Var_i`` the (biased) variance over the batch's molecules (the constant ``log Z`` is
    free, so only the spread of ``r`` is penalised) and ``x0_i`` the clean, CoM-free data.
    Since ``log q_t(x) = -E_theta(x, t) + const(t)`` and ``q_t -> p ∝ exp(-U / kT)`` as
    ``t -> 0``, the exact model has ``r_i = const`` at small ``energy_t``.

    energy_weight: ``>= 0``; 0 (default) switches the term off. energy_t: the time ``t0`` of
    the term, in ``(0, 1)`` (``null``: ``t_min``). energy_unit: how the data's ``energy``
    and ``temperature`` arrays give ``kT``: ``"kJ/mol"`` (energies in kJ/mol, temperature in K,
    ``kT = R T`` with ``R =`` :data:`fkc.systems.MOLAR_GAS_CONSTANT`) or ``"reduced"`` (energies
    and temperature in the same unit, ``k_B = 1``: ``kT = T``, e.g. the LJ reference sets).
    """

    _section = "loss"
    t_min: float = 1e-3
    t_sampling: str = "stratified"
    weighting: str = "eps"
    energy_weight: float = 0.0
    energy_t: float | None = None
    energy_unit: str = "kJ/mol"

    def __post_init__(self) -> None:
        s = self._section
        self._set("t_min", _float(s, "t_min", self.t_min, 0.0, 1.0, lo_open=True, hi_open=True))
        _choice(s, "t_sampling", self.t_sampling, ("uniform", "stratified", "mixed"))
        _choice(s, "weighting", self.weighting, ("eps", "edm"))
        self._set("energy_weight", _float(s, "energy_weight", self.energy_weight, 0.0))
        self._set("energy_t", _float(s, "energy_t", self.energy_t, 0.0, 1.0, lo_open=True,
                                     hi_open=True, none=True))
        _choice(s, "energy_unit", self.energy_unit, ENERGY_UNITS)

    @property
    def energy_time(self) -> float:
        """The time ``t0`` of the energy-matching term (``energy_t``, else ``t_min``)."""
        return self.t_min if self.energy_t is None else self.energy_t

    def kT(self, temperature: float) -> float:
        """``kT`` in the data's energy unit for the data's ``temperature`` (see ``energy_unit``)."""
        if self.energy_unit == "kJ/mol":
            return MOLAR_GAS_CONSTANT * float(temperature)
        return float(temperature)


@dataclass(frozen=True, kw_only=True)
class OptimConfig(_Section):
    """AdamW with warm-up and a learning-rate schedule.

    lr: peak learning rate; betas, eps, weight_decay: AdamW's; grad_clip: clip the global gradient
    norm to this value (``null``: no clipping); warmup_steps: linear warm-up from 0;
    schedule: ``"constant"`` or ``"cosine"`` (decay to ``final_lr_factor * lr`` at ``n_steps``).
    """

    _section = "optim"
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    warmup_steps: int = 0
    schedule: str = "constant"
    final_lr_factor: float = 0.0

    def __post_init__(self) -> None:
        s = self._section
        self._set("lr", _float(s, "lr", self.lr, 0.0, lo_open=True))
        b = self.betas
        if not isinstance(b, (list, tuple)) or len(b) != 2:
            raise ConfigError(f"{s}.betas must be a pair [beta1, beta2], got {b!r}")
        self._set("betas", tuple(
            _float(s, f"betas[{i}]", v, 0.0, 1.0, hi_open=True) for i, v in enumerate(b)
        ))
        self._set("eps", _float(s, "eps", self.eps, 0.0, lo_open=True))
        self._set("weight_decay", _float(s, "weight_decay", self.weight_decay, 0.0))
        self._set("grad_clip", _float(s, "grad_clip", self.grad_clip, 0.0, lo_open=True,
                                      none=True))
        _int(s, "warmup_steps", self.warmup_steps, 0)
        _choice(s, "schedule", self.schedule, ("constant", "cosine"))
        self._set("final_lr_factor",
                  _float(s, "final_lr_factor", self.final_lr_factor, 0.0, 1.0))


@dataclass(frozen=True, kw_only=True)
class RunConfig(_Section):
    """Length of training, batching, EMA, and when to log / validate / checkpoint.

    n_steps: optimiser steps; batch_size: molecules per batch; ema_decay: EMA decay ``d`` (with
    ``ema_warmup``, the decay at step k is ``min(d, (1 + k)/(10 + k))``); log_every: steps between
    ``log.jsonl`` lines; valid_every / checkpoint_every: steps between validation losses /
    checkpoints (``last.safetensors``; ``best.safetensors`` keeps the lowest EMA validation loss);
    valid_batch_size: molecules per validation batch.
    """

    _section = "train"
    n_steps: int
    batch_size: int = 64
    ema_decay: float = 0.999
    ema_warmup: bool = True
    log_every: int = 50
    valid_every: int = 1000
    valid_batch_size: int = 256
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        s = self._section
        _int(s, "n_steps", self.n_steps, 1)
        _int(s, "batch_size", self.batch_size, 1)
        self._set("ema_decay", _float(s, "ema_decay", self.ema_decay, 0.0, 1.0, hi_open=True))
        _bool(s, "ema_warmup", self.ema_warmup)
        _int(s, "log_every", self.log_every, 1)
        _int(s, "valid_every", self.valid_every, 1)
        _int(s, "valid_batch_size", self.valid_batch_size, 1)
        _int(s, "checkpoint_every", self.checkpoint_every, 1)


_DTYPES = ("float32", "float64")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The whole training configuration (see the module docstring for the YAML layout).

    ``process`` is a :class:`fkc.sde.NoiseProcess` (always ``com_free=True``: the networks are
    CoM-free); ``model`` is an :mod:`fkc.models` config dataclass.
    """

    output_dir: str
    model: Any
    data: DataConfig
    process: NoiseProcess = field(default_factory=lambda: process_from_dict(
        {"type": "VPSDE", "com_free": True}))
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    num_threads: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None

    _TOP = ("output_dir", "seed", "device", "dtype", "num_threads", "metadata", "init_from",
            "process", "model", "data", "loss", "optim", "train")

    def __post_init__(self) -> None:
        _str("config", "output_dir", self.output_dir)
        _int("config", "seed", self.seed, 0)
        _str("config", "device", self.device)
        _choice("config", "dtype", self.dtype, _DTYPES)
        _int("config", "num_threads", self.num_threads, 1, none=True)
        object.__setattr__(self, "init_from", _str("config", "init_from", self.init_from, none=True))
        if not isinstance(self.metadata, dict) or any(not isinstance(k, str) for k in self.metadata):
            raise ConfigError(f"metadata must be a mapping with string keys, got {self.metadata!r}")
        try:
            json.dumps(self.metadata, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"metadata must be JSON-serialisable: {e}") from e
        if not isinstance(self.process, NoiseProcess):
            raise ConfigError(f"process must be a NoiseProcess, got {self.process!r}")
        if not self.process.com_free:
            raise ConfigError(
                "process.com_free must be true: the score networks are CoM-free by construction"
            )
        if not hasattr(self.model, "to_dict"):
            raise ConfigError(f"model must be an fkc.models config, got {self.model!r}")
        for name, cls in (("data", DataConfig), ("loss", LossConfig), ("optim", OptimConfig),
                          ("train", RunConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        if self.loss.energy_weight > 0:
            name = getattr(self.model, "name", None)
            if name != "energy":
                raise ConfigError(
                    f"loss.energy_weight {self.loss.energy_weight} needs an energy model "
                    f"(model.name: energy, score = -grad E), got model.name {name!r}"
                )
            if self.train.batch_size < 2:
                raise ConfigError(
                    f"loss.energy_weight {self.loss.energy_weight} needs train.batch_size >= 2 "
                    f"(the term is a variance over the batch), got {self.train.batch_size}"
                )
        if self.loss.weighting == "edm" and _sigma_data(self.model) is None:
            raise ConfigError(
                "loss.weighting 'edm' needs model.sigma_data (the data std of EDM scaling)"
            )

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from the nested dict of a YAML file; errors name the offending key/value."""
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a mapping, got {type(d).__name__}")
        for k in d:
            if k not in cls._TOP:
                raise ConfigError(f"unknown key {k!s} (allowed top-level keys: {list(cls._TOP)})")
        for k in ("output_dir", "model", "data", "train"):
            if k not in d:
                raise ConfigError(f"missing required key {k}")
        kw = {k: v for k, v in d.items() if k in ("output_dir", "seed", "device", "dtype",
                                                  "num_threads", "init_from")}
        if "metadata" in d:
            kw["metadata"] = {} if d["metadata"] is None else d["metadata"]
        proc = d.get("process") or {}
        if not isinstance(proc, dict):
            raise ConfigError(f"process must be a mapping, got {proc!r}")
        proc = dict(proc)
        proc.setdefault("type", "VPSDE")
        proc.setdefault("com_free", True)
        try:
            kw["process"] = process_from_dict(proc)
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"process: {e}") from e
        try:
            kw["model"] = config_from_dict(d["model"])
        except ValueError as e:
            raise ConfigError(f"model: {e}") from e
        kw["data"] = DataConfig.from_dict(d["data"])
        kw["loss"] = LossConfig.from_dict(d.get("loss"))
        kw["optim"] = OptimConfig.from_dict(d.get("optim"))
        kw["train"] = RunConfig.from_dict(d["train"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML types; ``TrainConfig.from_dict(c.to_dict()) == c``."""
        return {
            "output_dir": self.output_dir,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "num_threads": self.num_threads,
            "metadata": dict(self.metadata),
            "process": process_to_dict(self.process),
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "loss": self.loss.to_dict(),
            "optim": self.optim.to_dict(),
            "train": self.train.to_dict(),
        } | ({} if self.init_from is None else {"init_from": self.init_from})

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _sigma_data(model_config) -> float | None:
    backbone = getattr(model_config, "backbone", model_config)
    return getattr(backbone, "sigma_data", None)


def set_by_path(d: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_by_path(d, "train.n_steps", 300)`` sets ``d["train"]["n_steps"] = 300`` (creating
    intermediate mappings)."""
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        nxt = cur.get(k)
        if nxt is None:
            nxt = cur[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted}: {k} is not a mapping")
        cur = nxt
    cur[keys[-1]] = value


def load_config(
    source: str | os.PathLike | dict[str, Any],
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Read a YAML file (or take a dict), apply ``{"train.n_steps": 300, ...}`` overrides, validate.

    Errors raise :class:`ConfigError` prefixed with the file name.
    """
    where = "config"
    if isinstance(source, dict):
        d = copy.deepcopy(source)
    else:
        where = str(source)
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: invalid YAML: {e}") from e
        if d is None:
            d = {}
    try:
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a mapping, got {type(d).__name__}")
        for k, v in (overrides or {}).items():
            set_by_path(d, k, v)
        return TrainConfig.from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
