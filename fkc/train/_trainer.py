"""The training loop: denoising score matching with EMA, clipping, validation and checkpoints.

One step ``k`` (0-based; afterwards ``trainer.step = k + 1``):

1. indices of batch ``k`` from :class:`~fkc.train.EpochSampler` (a function of ``(seed, k)``);
2. times ``t`` and CoM-free noise ``eps`` from the CPU generator ``noise`` (then moved to the
   device, so the random numbers do not depend on the device);
3. the loss of :func:`~fkc.train.denoising_loss` averaged over the batch's molecules; the
   network's classifier-free dropout draws from the device generator ``dropout``; with
   ``loss.energy_weight = w > 0`` (energy models on Boltzmann data with known energies ``U``)
   plus ``w * Var_i(r_i)``, ``r_i = E_theta(x0_i, t0) - U_i / kT`` in nats
   (:func:`~fkc.train.energy_residual`; ``t0 = loss.energy_t``, else ``loss.t_min``);
4. AdamW step with the learning rate of step ``k`` (warm-up, schedule), after clipping the global
   gradient norm; EMA update.

Everything that determines the continuation (weights, EMA weights, AdamW state, both generator
states, the step counter) is in every full checkpoint, and data order and learning rate are
functions of the step, so resuming from a checkpoint continues the run exactly (bitwise on CPU).
The validation loss uses fixed times and noise (drawn once from the seed), so its values are
comparable across evaluations and unaffected by resuming; it does not touch the training
generators. For an energy model and validation data with energies and a temperature, validation
also reports the standard deviation (nats) over the validation set of the residual ``r_i`` above
(a function of ``theta`` only: the constant ``log Z`` drops out), whatever the weight.

Log keys (``log.jsonl``): training lines ``step, loss`` (the total batch loss, averaged over the
lines' steps), ``loss_energy`` (the energy term ``Var_i(r_i)`` before weighting, nats^2; only
with ``energy_weight > 0``), ``lr, grad_norm, elapsed, steps_per_s``; validation lines ``step,
valid_loss, valid_loss_ema, valid_loss_ema_by_t`` (denoising loss only) and, where computed,
``valid_energy_resid_std, valid_energy_resid_std_ema``.

Files in ``output_dir``: ``config.yaml`` (the resolved config), ``log.jsonl`` (one JSON object per
log/validation event), ``last.safetensors`` (full, resumable checkpoint, every
``checkpoint_every`` steps and at the end), ``best.safetensors`` (weights at the lowest EMA
validation loss; not resumable).

Fine-tuning: with ``init_from`` set in the config, the network and its EMA copy start from the EMA
weights of that checkpoint (which must hold the same model config and noise process; for an
energy model, a checkpoint of its backbone config initialises the backbone only); the
optimizer, step counter, learning-rate schedule and generators start fresh. The source is recorded
in the metadata (``init_from``: path, step, file SHA-256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from ..checkpoint import (
    Checkpoint,
    CheckpointError,
    atomic_write_bytes,
    check_state_dict,
    load_checkpoint,
    process_to_dict,
    save_checkpoint,
)
from ..models import build_model
from ._config import ConfigError, TrainConfig, load_config
from ._data import EpochSampler, GraphBatch, MoleculeDataset, PointCloudDataset, derive_seed
from ._ema import EMA
from ._loss import (
    denoising_loss,
    energy_matching_loss,
    energy_residual,
    sample_noise,
    sample_times,
)

__all__ = ["TrainResult", "Trainer", "train", "train_from_yaml"]

LAST = "last.safetensors"
BEST = "best.safetensors"
LOG = "log.jsonl"

#: config entries that may differ between a checkpoint and the config that resumes it (they do
#: not change the training trajectory)
RESUME_MAY_DIFFER = (
    "output_dir", "device", "num_threads", "train.log_every", "train.valid_every",
    "train.checkpoint_every", "train.valid_batch_size",
)
_VALID_T_BINS = (0.0, 0.05, 0.2, 0.5, 1.0)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    output_dir; last_checkpoint / best_checkpoint: paths (best is None without validation);
    step: optimiser steps done; train_loss: ``(step,)`` float64 per-step batch loss (whole run,
    including steps done before a resume; the total, energy term included); train_loss_energy:
    ``(step,)`` per-step energy term ``Var_i(r_i)`` (nats^2, unweighted) or None without it;
    valid: validation records (``{"step", "valid_loss", "valid_loss_ema",
    "valid_loss_ema_by_t"}``, plus ``"valid_energy_resid_std"`` and
    ``"valid_energy_resid_std_ema"`` where computed); steps_per_second: throughput of this
    session; interrupted: stopped early by SIGINT (Ctrl-C) with a checkpoint.
    """

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    step: int
    train_loss: torch.Tensor
    valid: list[dict[str, Any]] = field(default_factory=list)
    steps_per_second: float = float("nan")
    interrupted: bool = False
    train_loss_energy: torch.Tensor | None = None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "metadata":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _jsonable(d):
    return json.loads(json.dumps(d))


def _graph_to_dict(graph) -> dict[str, Any]:
    def lst(x):
        return None if x is None else x.tolist()

    return {
        "atom_types": graph.atom_types.tolist(),
        "edge_index": lst(graph.edge_index),
        "bond_types": lst(graph.bond_types),
        "atom_features": lst(graph.atom_features),
    }


class Trainer:
    """Denoising score-matching trainer for one :class:`TrainConfig`.

    Args:
        config: the training configuration.
        train_data / valid_data: datasets overriding ``config.data`` (a
            :class:`PointCloudDataset` or :class:`MoleculeDataset`; ``valid_data=None`` with no
            ``config.data.valid`` disables validation).
        progress: show a tqdm bar with the running loss.
        callback: ``callback(trainer, step, loss)`` after every step's bookkeeping (logging,
            validation, checkpoint); an exception in it stops training (as a crash would).

    Attributes: ``model`` (training weights), ``ema`` (:class:`~fkc.train.EMA`), ``optimizer``,
    ``step``, ``history`` (per-step losses), ``energy_history`` (per-step energy terms, empty
    without ``loss.energy_weight``), ``valid_history``; ``train_kT`` / ``valid_kT``: ``kT`` of
    the data in their energy unit (None without energies and a temperature).
    (``config.num_threads`` is applied by :func:`train`, not by the class.)
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        train_data: PointCloudDataset | MoleculeDataset | None = None,
        valid_data: PointCloudDataset | MoleculeDataset | None = None,
        progress: bool = True,
        callback: Callable[[Trainer, int, float], None] | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.progress = progress
        self.callback = callback
        self.device = _device(config.device)
        self.dtype = config.torch_dtype
        self.process = config.process
        self.output_dir = Path(config.output_dir)

        self.train_data = train_data if train_data is not None else self._load("train")
        if valid_data is None and config.data.valid is not None:
            valid_data = self._load("valid")
        self.valid_data = valid_data
        self._check_data(self.train_data, "training")
        if self.valid_data is not None:
            self._check_data(self.valid_data, "validation")
        need_energies = config.loss.energy_weight > 0
        self.train_kT = self._energy_kT(self.train_data, "training", need_energies)
        self.valid_kT = None
        if self.valid_data is not None and config.model.name == "energy":
            self.valid_kT = self._energy_kT(self.valid_data, "validation", need_energies)
        self.metadata = self._metadata()

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, "init"))
            model = build_model(config.model, self.process, dtype=self.dtype)
        self.model: nn.Module = model.to(self.device).train()
        if config.init_from is not None:
            self.metadata["init_from"] = self._init_weights(config.init_from)
        self.ema = EMA(self.model, config.train.ema_decay, config.train.ema_warmup)
        oc = config.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=oc.lr, betas=oc.betas, eps=oc.eps,
            weight_decay=oc.weight_decay,
        )
        self.sampler = EpochSampler(len(self.train_data), config.train.batch_size, config.seed)
        self.noise_gen = torch.Generator().manual_seed(derive_seed(config.seed, "noise"))
        self.dropout_gen = torch.Generator(device=self.device).manual_seed(
            derive_seed(config.seed, "dropout"))
        self.step = 0
        self.history: list[float] = []
        self.energy_history: list[float] = []
        self.grad_norms: list[float] = []
        self.valid_history: list[dict[str, Any]] = []
        self.best_valid = math.inf
        self.elapsed = 0.0
        self._valid_chunks = self._validation_chunks() if self.valid_data is not None else []
        self._stop_requested = False
        self._session_start: float | None = None

    # ---- setup ------------------------------------------------------------------------------
    def _load(self, which: str):
        dc = self.config.data
        path = dc.train if which == "train" else dc.valid
        if dc.kind == "point_cloud":
            ds = PointCloudDataset.from_npz(path, key=dc.key, atom_types=dc.atom_types,
                                            condition_key=dc.condition_key, dtype=self.dtype)
        else:
            ds = MoleculeDataset.from_npz(path, dtype=self.dtype)
        n_keep = dc.n_train if which == "train" else dc.n_valid
        if n_keep is not None and n_keep < len(ds):
            g = torch.Generator().manual_seed(derive_seed(self.config.seed, "subset", which))
            idx = torch.sort(torch.randperm(len(ds), generator=g)[:n_keep]).values
            ds = ds.subset(idx)
        return ds

    def _init_weights(self, path: str) -> dict[str, Any]:
        """Load the EMA (else training) weights of checkpoint ``path`` into ``self.model``."""
        if "init_from" in self.config.metadata:
            raise ConfigError("metadata.init_from is reserved (filled in by the trainer)")
        ckpt = load_checkpoint(path)
        mine = self.config.model.to_dict()
        target, what = self.model, "model"
        if mine.get("name") == "energy" and ckpt.model_config.get("name") != "energy":
            # a score checkpoint of the energy model's backbone: only the backbone starts from it
            mine, target, what = mine["backbone"], self.model.backbone, "model.backbone"
        if ckpt.model_config != mine:
            diff = sorted(k for k in set(mine) | set(ckpt.model_config)
                          if mine.get(k) != ckpt.model_config.get(k))
            raise ConfigError(
                f"init_from {path}: its model config differs from {what}: in "
                + "; ".join(f"{k} ({ckpt.model_config.get(k)!r} vs {mine.get(k)!r})" for k in diff)
            )
        if process_to_dict(ckpt.process) != process_to_dict(self.process):
            raise ConfigError(
                f"init_from {path}: its noise process {process_to_dict(ckpt.process)} differs "
                f"from process: {process_to_dict(self.process)}"
            )
        state = ckpt.ema_state if ckpt.ema_state is not None else ckpt.model_state
        check_state_dict(target, state, f"init_from {path}")
        target.load_state_dict(state)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return {"path": str(path), "step": ckpt.step, "file_sha256": digest,
                "training_temperature": ckpt.metadata.get("training_temperature")}

    def _check_data(self, ds, what: str) -> None:
        mc = self.config.model
        bc = getattr(mc, "backbone", mc)
        if not isinstance(ds, (PointCloudDataset, MoleculeDataset)):
            raise ValueError(
                f"{what} data must be a PointCloudDataset or MoleculeDataset, got "
                f"{type(ds).__name__}"
            )
        if ds.cond_dim != bc.cond_dim:
            raise ConfigError(
                f"{what} data has condition vectors of width {ds.cond_dim} but model.cond_dim is "
                f"{bc.cond_dim} (set data.condition_key / model.cond_dim consistently)"
            )
        types = ds.graph.atom_types if isinstance(ds, PointCloudDataset) else ds.atom_types
        if int(types.max()) >= bc.n_atom_types:
            raise ConfigError(
                f"{what} data has atom type {int(types.max())} but model.n_atom_types is "
                f"{bc.n_atom_types}"
            )
        if len(ds) < 1:
            raise ConfigError(f"{what} data is empty")

    def _energy_kT(self, ds, what: str, required: bool) -> float | None:
        """``kT`` (unit of the data's energies, :meth:`LossConfig.kT`) of data carrying
        per-configuration energies and a temperature; otherwise None, or (``required``) an
        error naming the file."""
        where = ds.metadata.get("file", f"<in-memory {type(ds).__name__}>")
        temp = ds.metadata.get("temperature")
        if isinstance(ds, MoleculeDataset):
            problem = "is a 'molecules' dataset, which keeps no energies (use kind point_cloud)"
        elif ds.energy is None:
            problem = "has no 'energy' array (potential energy per configuration)"
        elif temp is None:
            problem = "has no scalar 'temperature'"
        elif not (isinstance(temp, (int, float)) and math.isfinite(temp) and temp > 0):
            problem = f"has temperature {temp!r} (must be a finite number > 0)"
        else:
            return self.config.loss.kT(temp)
        if required:
            raise ConfigError(
                f"loss.energy_weight {self.config.loss.energy_weight} needs {what} data with "
                f"energies and a temperature, but {where} {problem}"
            )
        return None

    def _metadata(self) -> dict[str, Any]:
        meta = dict(self.config.metadata)
        auto: dict[str, Any] = {"data": self.train_data.metadata}
        if self.valid_data is not None:
            auto["valid_data"] = self.valid_data.metadata
        if isinstance(self.train_data, PointCloudDataset):
            auto["graph"] = _graph_to_dict(self.train_data.graph)
            auto["n_atoms"] = self.train_data.n_atoms
        for k, v in auto.items():
            if k in meta:
                raise ConfigError(f"metadata.{k} is reserved (filled in by the trainer)")
            meta[k] = v
        t_data = self.train_data.metadata.get("temperature")
        t_cfg = meta.get("training_temperature")
        if t_data is not None and t_cfg is not None:
            if not isinstance(t_cfg, (int, float)) or abs(float(t_cfg) - t_data) > 1e-9 * (
                    1 + abs(t_data)):
                raise ConfigError(
                    f"metadata.training_temperature is {t_cfg!r} but the training data "
                    f"{self.train_data.metadata.get('file')} were generated at T = {t_data}"
                )
        return _jsonable(meta)

    def _validation_chunks(self) -> list[tuple[GraphBatch, torch.Tensor, torch.Tensor]]:
        """Fixed validation batches with stratified times (shuffled) and noise, drawn once from
        a generator seeded by ``(seed, "valid")``."""
        n = len(self.valid_data)
        g = torch.Generator().manual_seed(derive_seed(self.config.seed, "valid"))
        t_min = self.config.loss.t_min
        t_all = t_min + (1 - t_min) * (torch.randperm(n, generator=g).double() + 0.5) / n
        chunks = []
        bs = self.config.train.valid_batch_size
        for a in range(0, n, bs):
            idx = torch.arange(a, min(a + bs, n))
            b = self.valid_data.batch(idx)
            eps = sample_noise(b, g)
            chunks.append((b.to(self.device), t_all[idx], eps))
        return chunks

    # ---- one step ---------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): linear warm-up, then constant or cosine."""
        oc, n = self.config.optim, self.config.train.n_steps
        if oc.warmup_steps > 0 and step < oc.warmup_steps:
            return oc.lr * (step + 1) / oc.warmup_steps
        if oc.schedule == "constant":
            return oc.lr
        span = max(1, n - oc.warmup_steps)
        p = min(1.0, (step - oc.warmup_steps) / span)
        f = oc.final_lr_factor
        return oc.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p)))

    def train_step(self) -> float:
        """Do step ``self.step`` and return its batch loss."""
        k = self.step
        cfg = self.config
        cpu_batch = self.train_data.batch(self.sampler.indices(k))
        t = sample_times(cpu_batch.num_graphs, cfg.loss.t_min, cfg.loss.t_sampling,
                         self.noise_gen, self.process)
        eps = sample_noise(cpu_batch, self.noise_gen)
        batch = cpu_batch.to(self.device)
        lr = self.lr_at(k)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss = denoising_loss(self.model, self.process, batch, t, eps,
                              weighting=cfg.loss.weighting, generator=self.dropout_gen).mean()
        w = cfg.loss.energy_weight
        if w > 0:
            resid = energy_residual(self.model, batch, cfg.loss.energy_time, self.train_kT)
            loss_energy = energy_matching_loss(resid)
            loss = loss + w * loss_energy.to(loss.dtype)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.item())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"non-finite training loss {value} at step {k} (lr={lr:.3g}); the last "
                f"checkpoint in {self.output_dir} is unaffected"
            )
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.optim.grad_clip is not None:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip))
        else:
            gnorm = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
        self.optimizer.step()
        self.step = k + 1
        self.ema.update(self.model, self.step)
        self.history.append(value)
        if w > 0:
            self.energy_history.append(float(loss_energy.item()))
        self.grad_norms.append(gnorm)
        return value

    # ---- validation -------------------------------------------------------------------------
    def _valid_losses(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = model.training
        model.eval()
        losses, ts = [], []
        try:
            with torch.no_grad():
                for b, t, eps in self._valid_chunks:
                    losses.append(denoising_loss(model, self.process, b, t, eps,
                                                 weighting=self.config.loss.weighting).double())
                    ts.append(t)
        finally:
            model.train(was_training)
        return torch.cat(losses).cpu(), torch.cat(ts)

    def _valid_energy_resid_std(self, model: nn.Module) -> float:
        """Standard deviation (nats) over the validation set of ``r_i = E_theta(x0_i, t0) -
        U_i / kT`` (:func:`~fkc.train.energy_residual`)."""
        t0 = self.config.loss.energy_time
        with torch.no_grad():
            r = torch.cat([energy_residual(model, b, t0, self.valid_kT).double().cpu()
                           for b, _, _ in self._valid_chunks])
        return float(r.std(correction=0))

    def validate(self) -> dict[str, Any]:
        """Validation losses of the training and the EMA weights (fixed t and noise), and
        (energy model, validation energies) the energy residual's standard deviation."""
        raw, _ = self._valid_losses(self.model)
        ema, ts = self._valid_losses(self.ema.module)
        by_t = []
        for lo, hi in zip(_VALID_T_BINS[:-1], _VALID_T_BINS[1:], strict=True):
            m = (ts >= lo) & (ts < hi) if hi < 1 else (ts >= lo)
            by_t.append(float(ema[m].mean()) if m.any() else None)
        rec = {
            "step": self.step,
            "valid_loss": float(raw.mean()),
            "valid_loss_ema": float(ema.mean()),
            "valid_loss_ema_by_t": dict(zip(
                [f"{lo}-{hi}" for lo, hi in zip(_VALID_T_BINS[:-1], _VALID_T_BINS[1:],
                                                strict=True)], by_t, strict=True)),
        }
        if self.valid_kT is not None:
            rec["valid_energy_resid_std"] = self._valid_energy_resid_std(self.model)
            rec["valid_energy_resid_std_ema"] = self._valid_energy_resid_std(self.ema.module)
        return rec

    # ---- checkpoints ------------------------------------------------------------------------
    def checkpoint(self, *, full: bool = True) -> Checkpoint:
        """The current state as a :class:`~fkc.checkpoint.Checkpoint` (``full=False``: weights,
        config and metadata only, not resumable)."""
        hist = {
            "train_loss": torch.tensor(self.history, dtype=torch.float64),
            "grad_norm": torch.tensor(self.grad_norms, dtype=torch.float64),
        }
        if self.config.loss.energy_weight > 0:
            hist["loss_energy"] = torch.tensor(self.energy_history, dtype=torch.float64)
        return Checkpoint(
            model_config=self.config.model.to_dict(),
            process=self.process,
            model_state=self.model.state_dict(),
            ema_state=self.ema.state_dict(),
            metadata=self.metadata,
            step=self.step,
            optimizer_state=self.optimizer.state_dict() if full else None,
            rng_states={"noise": self.noise_gen.get_state(),
                        "dropout": self.dropout_gen.get_state()} if full else {},
            history=hist,
            train_config=self.config.to_dict(),
            extra={"valid": self.valid_history, "best_valid_ema": self.best_valid,
                   "elapsed": self.total_elapsed, "device": str(self.device)},
        )

    @property
    def total_elapsed(self) -> float:
        """Wall-clock seconds of training over all sessions (bookkeeping only)."""
        run = 0.0 if self._session_start is None else time.perf_counter() - self._session_start
        return self.elapsed + run

    def save(self, path: str | Path, *, full: bool = True) -> Path:
        return save_checkpoint(path, self.checkpoint(full=full))

    def restore(self, ckpt: Checkpoint | str | Path) -> None:
        """Continue from a full checkpoint (written by :meth:`save` with ``full=True``).

        Raises :class:`~fkc.checkpoint.CheckpointError` if it is not resumable or was written
        with a config that would change the trajectory (other than :data:`RESUME_MAY_DIFFER`).
        """
        if not isinstance(ckpt, Checkpoint):
            ckpt = load_checkpoint(ckpt)
        where = ckpt.path or "<checkpoint>"
        if not ckpt.resumable or ckpt.train_config is None:
            raise CheckpointError(
                f"{where}: not a resumable checkpoint (no optimizer/RNG state or training "
                "config; best.safetensors holds weights only)"
            )
        self._check_resume_config(ckpt.train_config, where)
        check_state_dict(self.model, ckpt.model_state, f"{where} (model weights)")
        if ckpt.ema_state is None:
            raise CheckpointError(f"{where}: no EMA weights to resume from")
        check_state_dict(self.ema.module, ckpt.ema_state, f"{where} (ema weights)")
        self.model.load_state_dict(ckpt.model_state)
        self.ema.load_state_dict(ckpt.ema_state)
        try:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{where}: optimizer state does not fit the model: {e}") from e
        try:
            self.noise_gen.set_state(ckpt.rng_states["noise"])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"{where}: invalid RNG state: {e}") from e
        saved_device = ckpt.extra.get("device", str(self.device))
        if torch.device(saved_device).type == self.device.type:
            try:
                self.dropout_gen.set_state(ckpt.rng_states["dropout"])
            except (KeyError, RuntimeError) as e:
                raise CheckpointError(f"{where}: invalid RNG state: {e}") from e
        else:  # generator states are device-specific: restart the dropout stream
            warnings.warn(
                f"resuming a run from {saved_device} on {self.device}: the classifier-free "
                "dropout stream restarts, so the continuation is not bitwise identical",
                stacklevel=2,
            )
            self.dropout_gen.manual_seed(derive_seed(self.config.seed, "dropout", ckpt.step))
        self.step = ckpt.step
        self.history = ckpt.history.get("train_loss", torch.zeros(0)).tolist()
        self.grad_norms = ckpt.history.get("grad_norm", torch.zeros(0)).tolist()
        self.energy_history = ckpt.history.get("loss_energy", torch.zeros(0)).tolist()
        if len(self.history) != self.step:
            raise CheckpointError(
                f"{where}: loss history has {len(self.history)} entries for step {self.step}"
            )
        if self.config.loss.energy_weight > 0 and len(self.energy_history) != self.step:
            raise CheckpointError(
                f"{where}: energy-loss history has {len(self.energy_history)} entries for step "
                f"{self.step}"
            )
        self.valid_history = list(ckpt.extra.get("valid", []))
        self.best_valid = float(ckpt.extra.get("best_valid_ema", math.inf))
        self.elapsed = float(ckpt.extra.get("elapsed", 0.0))

    def _check_resume_config(self, stored: dict[str, Any], where: str) -> None:
        try:  # keys added since the checkpoint was written take their default values
            stored = TrainConfig.from_dict(stored).to_dict()
        except ValueError:
            pass  # compared as stored: the differences are then named below
        a, b = _flatten(_jsonable(stored)), _flatten(_jsonable(self.config.to_dict()))
        allowed = set(RESUME_MAY_DIFFER)
        if self.config.optim.schedule == "constant":
            allowed.add("train.n_steps")
        diffs = [
            f"{k}: {a.get(k, '<absent>')!r} (checkpoint) vs {b.get(k, '<absent>')!r} (config)"
            for k in sorted(set(a) | set(b)) if k not in allowed and a.get(k) != b.get(k)
        ]
        if diffs:
            raise CheckpointError(
                f"{where}: written with a different training config, so resuming would not "
                f"continue the same run: {'; '.join(diffs)}"
            )

    # ---- the loop ---------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        with open(self.output_dir / LOG, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _truncate_log(self) -> None:
        """Keep only log lines up to the current step (after a resume)."""
        path = self.output_dir / LOG
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue
        atomic_write_bytes(path, ("\n".join(keep) + ("\n" if keep else "")).encode())

    def _do_validation(self) -> dict[str, Any]:
        rec = self.validate()
        self.valid_history.append(rec)
        self._log(rec)
        if rec["valid_loss_ema"] < self.best_valid:
            self.best_valid = rec["valid_loss_ema"]
            self.save(self.output_dir / BEST, full=False)
        return rec

    def run(self, resume: str | bool | Path = "auto") -> TrainResult:
        """Train until ``config.train.n_steps``.

        resume: ``"auto"`` continues from ``output_dir/last.safetensors`` if it exists;
        ``"never"`` (or False) refuses to overwrite an existing run; a path resumes from that
        checkpoint. SIGINT (Ctrl-C) stops at the end of the current step with a checkpoint
        (a second Ctrl-C aborts immediately).
        """
        cfg = self.config
        self._stop_requested = False
        last = self.output_dir / LAST
        if resume is True or resume == "auto":
            path = last if last.exists() else None
        elif resume is False or resume is None or resume == "never":
            if last.exists():
                raise FileExistsError(
                    f"{last} exists: pass resume='auto' to continue that run, or choose another "
                    "output_dir"
                )
            path = None
        else:
            path = Path(resume)
        if path is not None:
            self.restore(path)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_log()
        atomic_write_bytes(self.output_dir / "config.yaml",
                           yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())

        n_steps, rc = cfg.train.n_steps, cfg.train
        if self.step == 0 and self._valid_chunks:
            self._do_validation()
        start_step, t0 = self.step, time.perf_counter()
        self._session_start = t0
        interrupted = False
        bar = tqdm(total=n_steps, initial=self.step, disable=not self.progress, desc="train",
                   dynamic_ncols=True, smoothing=0.05)
        window: list[float] = []
        post: dict[str, str] = {}
        if self.valid_history:
            post["valid_ema"] = f"{self.valid_history[-1]['valid_loss_ema']:.4f}"
        with bar, self._sigint_guard():
            while self.step < n_steps:
                loss = self.train_step()
                window.append(loss)
                k = self.step
                bar.update(1)
                if k % rc.log_every == 0 or k == n_steps:
                    now = time.perf_counter()
                    rec = {"step": k, "loss": sum(window) / len(window)}
                    if cfg.loss.energy_weight > 0:
                        rec["loss_energy"] = sum(self.energy_history[-len(window):]) / len(window)
                    rec |= {"lr": self.lr_at(k - 1),
                            "grad_norm": sum(self.grad_norms[-len(window):]) / len(window),
                            "elapsed": self.total_elapsed,
                            "steps_per_s": (k - start_step) / max(now - t0, 1e-9)}
                    self._log(rec)
                    post["loss"] = f"{rec['loss']:.4f}"
                    bar.set_postfix(post, refresh=False)
                    window = []
                if self._valid_chunks and (k % rc.valid_every == 0 or k == n_steps):
                    post["valid_ema"] = f"{self._do_validation()['valid_loss_ema']:.4f}"
                    bar.set_postfix(post, refresh=False)
                stop = self._stop_requested
                if k % rc.checkpoint_every == 0 or k == n_steps or stop:
                    self.save(last)
                if self.callback is not None:
                    self.callback(self, k, loss)
                if stop:
                    interrupted = True
                    break
        dt = time.perf_counter() - t0
        self.elapsed, self._session_start = self.total_elapsed, None
        if self.step == n_steps and not last.exists():  # resumed a finished run from elsewhere
            self.save(last)
        best = self.output_dir / BEST
        return TrainResult(
            output_dir=self.output_dir,
            last_checkpoint=last,
            best_checkpoint=best if best.exists() else None,
            step=self.step,
            train_loss=torch.tensor(self.history, dtype=torch.float64),
            valid=list(self.valid_history),
            steps_per_second=(self.step - start_step) / dt if dt > 0 else float("nan"),
            interrupted=interrupted,
            train_loss_energy=(torch.tensor(self.energy_history, dtype=torch.float64)
                               if cfg.loss.energy_weight > 0 else None),
        )

    @contextlib.contextmanager
    def _sigint_guard(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            tqdm.write("interrupt: stopping after this step and writing a checkpoint "
                       "(Ctrl-C again to abort)")

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)


def _device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device {name!r} is not a valid torch device: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} requested but MPS is not available")
    return dev


@contextlib.contextmanager
def _num_threads(n: int | None):
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train(
    config: TrainConfig | dict[str, Any] | str | Path,
    *,
    resume: str | bool | Path = "auto",
    progress: bool = True,
    callback: Callable[[Trainer, int, float], None] | None = None,
    train_data: PointCloudDataset | MoleculeDataset | None = None,
    valid_data: PointCloudDataset | MoleculeDataset | None = None,
) -> TrainResult:
    """Train a score network (see :class:`Trainer` and :meth:`Trainer.run`).

    config: a :class:`TrainConfig`, its dict form, or a YAML path.
    """
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    with _num_threads(config.num_threads):
        trainer = Trainer(config, train_data=train_data, valid_data=valid_data,
                          progress=progress, callback=callback)
        return trainer.run(resume)


def train_from_yaml(
    path: str | Path,
    *,
    resume: str | bool | Path = "auto",
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """``fkc train CONFIG.yaml``: load, validate and run a YAML training config.

    overrides: ``{"train.n_steps": 300, "output_dir": "/tmp/x"}`` applied before validation.
    """
    return train(load_config(path, overrides), resume=resume, progress=progress)
