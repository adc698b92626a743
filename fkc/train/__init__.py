"""Training score networks by denoising score matching.

Entry points::

    result = fkc.train.train_from_yaml("configs/lj13_egnn_T2.yaml")   # what `fkc train` runs
    fkc.train.main(["configs/lj13_egnn_T2.yaml", "--set", "train.n_steps=300"])
    result = fkc.train.train(config, train_data=..., valid_data=...)  # from Python

The objective and its weighting are documented in :func:`denoising_loss` (and the optional
energy-matching term for energy models in :func:`energy_residual`); the loop, resuming and
the files it writes in :mod:`fkc.train._trainer` (:class:`Trainer`); the YAML layout in
:class:`TrainConfig`. Checkpoints are read by :func:`fkc.checkpoint.load_checkpoint` and
:meth:`fkc.experts.ScoreModelExpert.from_checkpoint`.
"""

from ._cli import build_parser, main
from ._config import (
    ConfigError,
    DataConfig,
    LossConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    load_config,
)
from ._data import (
    EpochSampler,
    GraphBatch,
    MoleculeDataset,
    MoleculeRecord,
    PointCloudDataset,
    derive_seed,
)
from ._ema import EMA
from ._loss import (
    denoising_loss,
    energy_matching_loss,
    energy_residual,
    loss_weight,
    sample_noise,
    sample_times,
)
from ._trainer import RESUME_MAY_DIFFER, Trainer, TrainResult, train, train_from_yaml

__all__ = [
    "EMA",
    "RESUME_MAY_DIFFER",
    "ConfigError",
    "DataConfig",
    "EpochSampler",
    "GraphBatch",
    "LossConfig",
    "MoleculeDataset",
    "MoleculeRecord",
    "OptimConfig",
    "PointCloudDataset",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_parser",
    "denoising_loss",
    "derive_seed",
    "energy_matching_loss",
    "energy_residual",
    "load_config",
    "loss_weight",
    "main",
    "sample_noise",
    "sample_times",
    "train",
    "train_from_yaml",
]
