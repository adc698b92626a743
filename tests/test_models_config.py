"""Typed configs: eager validation, dict/JSON round trip, build_model registry."""

import json

import pytest
import torch

from fkc.models import (
    EGNN,
    EGNNConfig,
    EnergyConfig,
    EnergyScoreModel,
    TensorProductConfig,
    TensorProductNet,
    build_model,
    config_from_dict,
)
from fkc.testing import random_molecular_graph


class VP:
    def alpha(self, t):
        return torch.cos(torch.pi * t / 2)

    def sigma(self, t):
        return torch.sin(torch.pi * t / 2)




@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (EGNNConfig, {"hidden": 0}, r"EGNNConfig.hidden must be an int >= 1, got 0"),
        (EGNNConfig, {"n_layers": 2.0}, r"EGNNConfig.n_layers must be an int >= 1, got 2.0"),
        (
            EGNNConfig,
            {"p_uncond": 1.5},
            r"EGNNConfig.p_uncond must be a finite number >= 0.0 and <= 1.0, got 1.5",
        ),
        (
            EGNNConfig,
            {"parameterization": "x0"},
            r"EGNNConfig.parameterization must be one of \('eps', 'denoiser', 'score'\), got 'x0'",
        ),
        (
            EGNNConfig,
            {"cutoff": -1.0},
            r"EGNNConfig.cutoff must be a finite number > 0.0 or None, got -1.0",
        ),
        (
            EGNNConfig,
            {"sigma_data": float("nan")},
            r"EGNNConfig.sigma_data must be a finite number",
        ),
        (EGNNConfig, {"time_embedding_dim": 7}, r"time_embedding_dim must be even .* got 7"),
        (
            EGNNConfig,
            {"time_input": "sigma"},
            r"EGNNConfig.time_input must be one of \('t', 'log_sigma'\), got 'sigma'",
        ),
        (EGNNConfig, {"attention": 1}, r"EGNNConfig.attention must be a bool, got 1"),
        (EGNNConfig, {"n_atom_types": 0}, r"EGNNConfig.n_atom_types must be an int >= 1, got 0"),
        (
            TensorProductConfig,
            {"lmax": 3},
            r"TensorProductConfig.lmax must be one of \(1, 2\), got 3",
        ),
        (
            TensorProductConfig,
            {"chiral": True, "n_layers": 1},
            r"n_layers must be >= 2 when chiral=True .* got n_layers=1",
        ),
        (
            TensorProductConfig,
            {"hidden_tensors": 0},
            r"hidden_tensors must be >= 1 when lmax=2, got 0",
        ),
        (
            TensorProductConfig,
            {"cutoff": None},
            r"TensorProductConfig.cutoff must be a finite number > 0.0, got None",
        ),
        (
            EnergyConfig,
            {"backbone": {"name": "egnn"}},
            r"EnergyConfig.backbone must be a backbone config .* got dict",
        ),
    ],
)
def test_validation_names_field_and_value(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_from_dict_rejects_unknown_keys_and_names():
    with pytest.raises(ValueError, match=r"EGNNConfig: unknown keys \['hiden'\]"):
        config_from_dict({"name": "egnn", "hiden": 3})
    with pytest.raises(
        ValueError,
        match=r"unknown model name 'gnn'; registered: \['egnn', 'energy', 'frame_transformer', 'tensor_product'\]",
    ):
        build_model({"name": "gnn"})
    with pytest.raises(ValueError, match="needs a 'name' key"):
        build_model({"hidden": 3})
    with pytest.raises(ValueError, match="name must be 'egnn', got 'tensor_product'"):
        EGNNConfig.from_dict({"name": "tensor_product"})
    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        config_from_dict({"name": "energy", "backbone": {"name": "egnn"}, "bogus": 1})
    with pytest.raises(ValueError, match=r"TensorProductConfig: unknown keys \['hidden'\]"):
        config_from_dict({"name": "energy", "backbone": {"name": "tensor_product", "hidden": 3}})


def test_process_required_eagerly():
    with pytest.raises(ValueError, match="sigma_data=1.0 .* need a noise process"):
        EGNN(EGNNConfig(sigma_data=1.0))
    with pytest.raises(ValueError, match="time_input='log_sigma'"):
        build_model({"name": "egnn", "time_input": "log_sigma"})
    with pytest.raises(ValueError, match="EGNN needs an EGNNConfig, got TensorProductConfig"):
        EGNN(TensorProductConfig())


@pytest.mark.parametrize(
    "config",
    [
        EGNNConfig(
            n_atom_types=3,
            n_bond_types=2,
            hidden=8,
            n_layers=2,
            cond_dim=2,
            cutoff=3.0,
            sigma_data=1.2,
            parameterization="denoiser",
            time_input="log_sigma",
            time_embedding="sinusoidal",
        ),
        TensorProductConfig(
            n_atom_types=3,
            n_bond_types=2,
            hidden_scalars=4,
            hidden_vectors=2,
            hidden_tensors=1,
            n_layers=2,
            cond_dim=2,
        ),
        EnergyConfig(
            backbone=EGNNConfig(n_atom_types=3, n_bond_types=2, hidden=8, n_layers=1, cond_dim=2),
            readout_hidden=8,
        ),
    ],
    ids=["egnn", "tensor_product", "energy"],
)
def test_build_model_round_trip_through_json(config):
    torch.manual_seed(0)
    model = build_model(config, VP(), dtype=torch.float64).eval()
    d = json.loads(json.dumps(model.config.to_dict()))
    assert config_from_dict(d) == config
    rebuilt = build_model(d, VP(), dtype=torch.float64).eval()
    assert type(rebuilt) is type(model)
    rebuilt.load_state_dict(model.state_dict())
    g = random_molecular_graph(
        5, n_atom_types=3, n_bond_types=2, generator=torch.Generator().manual_seed(0)
    )
    pos = torch.randn(3, 5, 3, dtype=torch.float64)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    c = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(rebuilt(pos, t, g, c), model(pos, t, g, c), atol=0, rtol=0)


def test_registry_types_and_config_replace():
    assert isinstance(build_model({"name": "egnn", "hidden": 4, "n_layers": 1}), EGNN)
    assert isinstance(
        build_model({"name": "energy", "backbone": {"name": "egnn", "hidden": 4}}), EnergyScoreModel
    )
    cfg = TensorProductConfig(hidden_scalars=4, hidden_vectors=2, hidden_tensors=1, n_layers=2)
    assert isinstance(build_model(cfg.to_dict()), TensorProductNet)
    with pytest.raises(ValueError, match="hidden_scalars must be an int >= 1, got -1"):
        cfg.replace(hidden_scalars=-1)
