"""Training configs: YAML -> typed dataclasses; unknown keys and bad values are named."""

from pathlib import Path

import pytest
import yaml

from fkc.models import EGNNConfig
from fkc.sde import VPSDE
from fkc.train import ConfigError, TrainConfig, load_config

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "lj13_egnn_T2.yaml"


def _base():
    return {
        "output_dir": "out",
        "model": {"name": "egnn", "hidden": 8, "n_layers": 1, "n_atom_types": 1},
        "data": {"train": "x.npz"},
        "train": {"n_steps": 10},
    }


def test_minimal_config_defaults_and_round_trip():
    cfg = load_config(_base())
    assert isinstance(cfg.model, EGNNConfig) and cfg.model.hidden == 8
    assert cfg.process == VPSDE(com_free=True)
    assert cfg.loss.t_min == 1e-3 and cfg.loss.weighting == "eps"
    assert cfg.train.batch_size == 64 and cfg.optim.grad_clip == 1.0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    # the dict form is plain YAML
    assert TrainConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


def test_lj13_recipe_is_valid():
    cfg = load_config(RECIPE)
    assert cfg.output_dir == "models/lj13-egnn-T2"
    assert cfg.metadata == {"system": "lj13", "training_temperature": 2.0}
    assert cfg.process == VPSDE(beta_min=0.1, beta_max=20.0, com_free=True)
    assert cfg.data.train == "datasets/lj13/T2.0_train.npz"
    assert cfg.data.valid == "datasets/lj13/T2.0.npz"
    assert cfg.train.ema_decay > 0 and cfg.model.name == "egnn"


@pytest.mark.parametrize(
    "path, value, pattern",
    [
        (("bogus",), 1, "unknown key bogus"),
        (("data", "trian"), "x", r"unknown key data\.trian"),
        (("train", "n_step"), 3, r"unknown key train\.n_step"),
        (("optim", "learning_rate"), 3, r"unknown key optim\.learning_rate"),
        (("loss", "tmin"), 3, r"unknown key loss\.tmin"),
        (("process", "beta_mx"), 3, r"process: unknown key\(s\) \['beta_mx'\]"),
        (("model", "hiden"), 3, r"model: .*unknown keys \['hiden'\]"),
    ],
)
def test_unknown_keys_are_named(path, value, pattern):
    d = _base()
    cur = d
    for k in path[:-1]:
        cur = cur.setdefault(k, {})
    cur[path[-1]] = value
    with pytest.raises(ConfigError, match=pattern):
        load_config(d)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ({"train.n_steps": -3}, r"train\.n_steps must be an integer >= 1.*got -3"),
        ({"train.batch_size": 2.5}, r"train\.batch_size .*got 2\.5"),
        ({"optim.lr": "fast"}, r"optim\.lr must be a finite number > 0.*got 'fast'"),
        ({"optim.lr": 0.0}, r"optim\.lr .*got 0\.0"),
        ({"optim.schedule": "linear"}, r"optim\.schedule must be one of .*got 'linear'"),
        ({"optim.betas": [0.9]}, r"optim\.betas must be a pair"),
        ({"loss.t_min": 0}, r"loss\.t_min .*got 0"),
        ({"loss.weighting": "edm"}, "needs model.sigma_data"),
        ({"train.ema_decay": 1.0}, r"train\.ema_decay .*got 1\.0"),
        ({"train.ema_warmup": "yes"}, r"train\.ema_warmup must be true or false, got 'yes'"),
        ({"dtype": "float16"}, r"dtype must be one of .*got 'float16'"),
        ({"seed": -1}, r"seed must be an integer >= 0.*got -1"),
        ({"data.kind": "images"}, r"data\.kind must be one of .*got 'images'"),
        ({"data.atom_types": [0, -1]}, r"data\.atom_types .*\[0, -1\]"),
        ({"process.beta_min": -1.0}, "process: .*beta_min=-1.0"),
        ({"process.com_free": False}, "com_free must be true"),
        ({"model.hidden": 0}, "hidden must be an int >= 1, got 0"),
        ({"metadata": {"when": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_values_are_named(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(_base(), override)


def test_missing_required_keys():
    d = _base()
    del d["train"]["n_steps"]
    with pytest.raises(ConfigError, match=r"missing required key train\.n_steps"):
        load_config(d)
    d = _base()
    del d["model"]
    with pytest.raises(ConfigError, match="missing required key model"):
        load_config(d)


def test_yaml_file_errors_name_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    d = _base()
    d["train"]["n_stpes"] = 4
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key train\.n_stpes"):
        load_config(p)
    p.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: invalid YAML"):
        load_config(p)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_exponent_strings_accepted(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(_base()) + "optim: {lr: 1e-3}\nloss: {t_min: 1e-4}\n")
    cfg = load_config(p)
    assert cfg.optim.lr == 1e-3 and cfg.loss.t_min == 1e-4


def test_overrides():
    cfg = load_config(_base(), {"train.n_steps": 300, "output_dir": "/tmp/x",
                                "optim.warmup_steps": 5})
    assert cfg.train.n_steps == 300 and cfg.output_dir == "/tmp/x"
    assert cfg.optim.warmup_steps == 5
