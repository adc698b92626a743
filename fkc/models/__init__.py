"""Equivariant score networks for molecules.

Backbones (:class:`EGNN`, :class:`TensorProductNet`, :class:`FrameTransformer`) and the energy wrapper
(:class:`EnergyScoreModel`) share one interface::

    # pos (n_particles, n_atoms, 3), t (n_particles,), graph: MolecularGraph
    raw = model(pos, t, graph, condition=None)
    raw = model.forward_flat(pos, t, batch, atom_types, edge_index, bond_types, condition)
    score = to_score(raw, x, t, process, model.parameterization)

Configs are typed dataclasses; ``build_model(config.to_dict())`` rebuilds a network.
"""

from ._base import ScoreNetwork, map_chunks
from ._config import PARAMETERIZATIONS, BackboneConfig
from ._egnn import EGNN, EGNNConfig, EGNNLayer
from ._energy import EnergyConfig, EnergyScoreModel
from ._frame_transformer import FrameTransformer, FrameTransformerConfig, canonical_frame
from ._parameterization import AlphaSigmaProcess, edm_scalings, to_score
from ._registry import build_model, config_from_dict
from ._tensor_product import TensorProductConfig, TensorProductNet
from .graph import FlatBatch, MolecularGraph, batch_fixed_graph, complete_graph, radius_graph

__all__ = [
    "AlphaSigmaProcess",
    "BackboneConfig",
    "EGNN",
    "EGNNConfig",
    "EGNNLayer",
    "EnergyConfig",
    "EnergyScoreModel",
    "FlatBatch",
    "FrameTransformer",
    "FrameTransformerConfig",
    "MolecularGraph",
    "PARAMETERIZATIONS",
    "ScoreNetwork",
    "TensorProductConfig",
    "TensorProductNet",
    "batch_fixed_graph",
    "build_model",
    "canonical_frame",
    "complete_graph",
    "config_from_dict",
    "edm_scalings",
    "map_chunks",
    "radius_graph",
    "to_score",
]
