"""``fkc train CONFIG.yaml`` / ``python -m fkc.train CONFIG.yaml``: the training command line."""

from __future__ import annotations

import argparse
import sys

import yaml

from ._config import ConfigError
from ._trainer import train_from_yaml

__all__ = ["build_parser", "main"]


def _override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def build_parser(prog: str = "fkc train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Train a score network by denoising score matching."
    )
    p.add_argument("config", help="YAML training config (see fkc.train.TrainConfig)")
    p.add_argument(
        "--resume", default="auto", metavar="auto|never|PATH",
        help="auto: continue from OUTPUT_DIR/last.safetensors if present (default); never: "
        "refuse to touch an existing run; PATH: continue from that checkpoint",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], type=_override,
        metavar="KEY=VALUE", help="override a config entry, e.g. --set train.n_steps=300 "
        "(VALUE is parsed as YAML; repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run training; returns the exit code (0 done, 130 interrupted, 2 bad config)."""
    args = build_parser().parse_args(argv)
    try:
        result = train_from_yaml(args.config, resume=args.resume, progress=not args.no_progress,
                                 overrides=dict(args.overrides))
    except (ConfigError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last_valid = result.valid[-1]["valid_loss_ema"] if result.valid else float("nan")
    print(f"{'interrupted' if result.interrupted else 'finished'} at step {result.step} "
          f"({result.steps_per_second:.2f} steps/s this session); last EMA validation loss "
          f"{last_valid:.4f}")
    print(f"checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best: {result.best_checkpoint}")
    return 130 if result.interrupted else 0
