"""Test-session setup.

The tests run many small tensor operations (thousands of particles in 1-3 dimensions). On a
2-core machine, torch's intra-op threading makes such tiny ops slower, dramatically so when the
other core is busy (a 2000-particle softmax took 7 ms with 2 threads under load vs <0.1 ms with
one), so the suite uses one thread. Results do not depend on the thread count.
"""

import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))  # for the shared test cases in _cases.py


@pytest.fixture(scope="session")
def tiny_conformer_model(tmp_path_factory):
    """A random chiral tensor-product conformer network saved as a checkpoint folder (no
    training: for plumbing tests of generate() and the CLI)."""
    from fkc.checkpoint import Checkpoint, save_checkpoint
    from fkc.conformers.featurize import ATOM_FEATURE_DIM, N_ATOM_TYPES
    from fkc.models import build_model, config_from_dict
    from fkc.sde import VPSDE

    proc = VPSDE(com_free=True)
    cfg = config_from_dict({"name": "tensor_product", "chiral": True, "hidden_scalars": 4,
                            "hidden_vectors": 2, "lmax": 1, "n_layers": 2, "cutoff": 4.0,
                            "n_atom_types": N_ATOM_TYPES, "atom_feature_dim": ATOM_FEATURE_DIM,
                            "n_bond_types": 4})
    torch.manual_seed(0)
    model = build_model(cfg, proc)
    folder = tmp_path_factory.mktemp("conf_model")
    meta = {"training_temperature": 500.0, "featurizer": "fkc.conformers.featurize",
            "length_unit": "angstrom"}
    save_checkpoint(folder / "last.safetensors",
                    Checkpoint(model_config=cfg.to_dict(), process=proc,
                               model_state=model.state_dict(), ema_state=model.state_dict(),
                               metadata=meta))
    return folder
