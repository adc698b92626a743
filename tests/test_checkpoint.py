"""Checkpoint files: round trip, atomic writes, and clear errors for corrupt or mismatched files."""

import json
import os
import struct

import pytest
import torch
from safetensors.torch import save_file

from fkc.checkpoint import (
    Checkpoint,
    CheckpointError,
    export_weights,
    load_checkpoint,
    process_from_dict,
    process_to_dict,
    save_checkpoint,
)
from fkc.models import EGNNConfig, EnergyConfig, MolecularGraph, build_model
from fkc.sde import VESDE, VPSDE

F64 = torch.float64




def _model(dtype=torch.float32, **kw):
    torch.manual_seed(0)
    cfg = EGNNConfig(hidden=16, n_layers=2, n_atom_types=2, **kw)
    return build_model(cfg, VPSDE(com_free=True), dtype=dtype)


def _checkpoint(model, **kw):
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4, 3, dtype=next(model.parameters()).dtype), torch.rand(3),
          MolecularGraph(torch.zeros(4, dtype=torch.long))).square().sum().backward()
    opt.step()
    return Checkpoint(
        model_config=model.config.to_dict(),
        process=VPSDE(beta_max=15.0, com_free=True),
        model_state=model.state_dict(),
        ema_state=ema,
        metadata={"training_temperature": 2.0, "system": "toy"},
        step=7,
        optimizer_state=opt.state_dict(),
        rng_states={"noise": torch.Generator().manual_seed(3).get_state()},
        history={"train_loss": torch.arange(7, dtype=F64)},
        train_config={"seed": 1},
        **kw,
    )


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_round_trip_identical_outputs(tmp_path, dtype):
    model = _model(dtype).eval()
    ckpt = _checkpoint(model)
    path = save_checkpoint(tmp_path / "a.safetensors", ckpt)
    back = load_checkpoint(path)
    assert back.step == 7 and back.metadata == ckpt.metadata and back.train_config == {"seed": 1}
    assert back.process == VPSDE(beta_max=15.0, com_free=True)
    assert back.resumable and back.path == str(path)
    for k, v in ckpt.model_state.items():
        assert torch.equal(back.model_state[k], v)
    # optimiser state: tensors and param_groups survive
    opt_a, opt_b = ckpt.optimizer_state, back.optimizer_state
    assert opt_b["param_groups"] == json.loads(json.dumps(opt_a["param_groups"]))
    for pid, st in opt_a["state"].items():
        for key, v in st.items():
            assert torch.equal(opt_b["state"][pid][key], v)
    assert torch.equal(back.rng_states["noise"], ckpt.rng_states["noise"])
    # rebuilt networks give bit-identical outputs (trained and EMA weights)
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(5, 4, 3, generator=gen, dtype=dtype)
    t = torch.rand(5, generator=gen, dtype=dtype)
    graph = MolecularGraph(torch.tensor([0, 1, 0, 1]))
    rebuilt = back.build_model(use_ema=False)
    assert next(rebuilt.parameters()).dtype == dtype and not rebuilt.training
    assert torch.equal(rebuilt(pos, t, graph), model(pos, t, graph))
    ema_model = back.build_model(use_ema=True)
    ref = _model(dtype).eval()
    ref.load_state_dict(ckpt.ema_state)
    assert torch.equal(ema_model(pos, t, graph), ref(pos, t, graph))


def test_export_weights_drops_optimizer_state_only(tmp_path):
    model = _model().eval()
    ckpt = _checkpoint(model)
    src = save_checkpoint(tmp_path / "last.safetensors", ckpt)
    dst = export_weights(src, tmp_path / "model.safetensors")
    back = load_checkpoint(dst)
    assert not back.resumable and back.optimizer_state is None and back.rng_states == {}
    assert back.step == 7 and back.metadata == ckpt.metadata and back.train_config == {"seed": 1}
    for k, v in ckpt.ema_state.items():
        assert torch.equal(back.ema_state[k], v) and torch.equal(back.model_state[k],
                                                                 ckpt.model_state[k])
    assert os.path.getsize(dst) < os.path.getsize(src)
    with pytest.raises(ValueError, match="dst must differ from src"):
        export_weights(src, src)
    (tmp_path / "bad.safetensors").write_bytes(b"junk" * 10)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        export_weights(tmp_path / "bad.safetensors", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_energy_model_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = EnergyConfig(backbone=EGNNConfig(hidden=8, n_layers=1, n_atom_types=1))
    model = build_model(cfg, VPSDE(com_free=True)).eval()
    ckpt = Checkpoint(model_config=cfg.to_dict(), process=VPSDE(com_free=True),
                      model_state=model.state_dict())
    back = load_checkpoint(save_checkpoint(tmp_path / "e.safetensors", ckpt))
    assert back.ema_state is None and not back.resumable
    pos, t = torch.randn(2, 3, 3), torch.rand(2)
    g = MolecularGraph(torch.zeros(3, dtype=torch.long))
    rebuilt = back.build_model(use_ema=False)
    assert torch.equal(rebuilt.energy(pos, t, g), model.energy(pos, t, g))
    with pytest.raises(CheckpointError, match="no EMA weights"):
        back.build_model(use_ema=True)


def test_process_dict_round_trip_and_errors():
    for p in (VPSDE(com_free=True), VPSDE(schedule="cosine"), VESDE(sigma_max=10.0, com_free=True)):
        assert process_from_dict(process_to_dict(p)) == p
    assert process_from_dict({"type": "vp", "com_free": True}) == VPSDE(com_free=True)
    with pytest.raises(ValueError, match="unknown process type 'xx'"):
        process_from_dict({"type": "xx"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['beta_mx'\]"):
        process_from_dict({"type": "VPSDE", "beta_mx": 3.0})
    with pytest.raises(ValueError, match="beta_min"):
        process_from_dict({"type": "VPSDE", "beta_min": -1.0})


def test_atomic_write_leaves_no_temporary_files_and_usual_permissions(tmp_path):
    ckpt = _checkpoint(_model())
    for _ in range(2):  # second write replaces the first
        save_checkpoint(tmp_path / "c.safetensors", ckpt)
    assert sorted(os.listdir(tmp_path)) == ["c.safetensors"]
    if os.name == "posix":
        old = os.umask(0o022)
        try:
            save_checkpoint(tmp_path / "d.safetensors", ckpt)
        finally:
            os.umask(old)
        assert (tmp_path / "d.safetensors").stat().st_mode & 0o777 == 0o644


def _saved(tmp_path, ckpt=None):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, ckpt or _checkpoint(_model()))
    return path


def test_truncated_file(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    for n in (len(data) - 100, 1000, 5):
        path.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="truncated") as e:
            load_checkpoint(path)
        assert str(path) in str(e.value)


def test_corrupted_tensor_bytes(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the tensor payload
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_foreign_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 20) + b"not json at all....." + b"x")
    with pytest.raises(CheckpointError, match="junk.safetensors.*header"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(CheckpointError, match="not an fkc checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_mismatched_model_config(tmp_path):
    model = _model()
    ckpt = _checkpoint(model)
    # config says hidden=32 but the weights are for hidden=16
    ckpt.model_config = dict(ckpt.model_config, hidden=32)
    back = load_checkpoint(_saved(tmp_path, ckpt))
    with pytest.raises(CheckpointError, match="shape mismatches") as e:
        back.build_model(use_ema=False)
    assert "ck.safetensors" in str(e.value)
    # an extra layer in the config: missing keys
    ckpt.model_config = dict(model.config.to_dict(), n_layers=3)
    with pytest.raises(CheckpointError, match="missing keys.*layers.2"):
        load_checkpoint(_saved(tmp_path, ckpt)).build_model(use_ema=False)
    # an invalid config
    ckpt.model_config = dict(model.config.to_dict(), hiden=16)
    with pytest.raises(CheckpointError, match="invalid model config.*hiden"):
        load_checkpoint(_saved(tmp_path, ckpt)).build_model(use_ema=False)


def test_wrong_keys(tmp_path):
    ckpt = _checkpoint(_model())
    state = dict(ckpt.model_state)
    state["extra.weight"] = torch.zeros(2)
    del state["atom_embedding.types.weight"]
    ckpt.model_state = state
    back = load_checkpoint(_saved(tmp_path, ckpt))
    with pytest.raises(CheckpointError, match="missing keys.*atom_embedding.*unexpected keys"):
        back.build_model(use_ema=False)
