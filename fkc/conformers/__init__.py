"""Conformer ensembles of drug-like molecules (issue 6).

- :func:`generate` (``fkc conformers``): conformers of a molecule at a chosen temperature:
  the graph-conditioned score model's conformers tempered on MMFF94 with SMC weights
  (:mod:`~fkc.conformers.mmff_tempering`, default) or FKC on the model's own ``q^beta``.
- :mod:`~fkc.conformers.featurize`: the molecular graph as network input.
- :mod:`~fkc.conformers.mmff`: MMFF94 energies and gradients (RDKit).
- :mod:`~fkc.conformers.reference`: replica-exchange HMC Boltzmann ensembles (ground truth).
- :mod:`~fkc.conformers.evaluate` (``fkc evaluate-conformers``): COV/MAT, energy W1, failures,
  SDF I/O.
- :mod:`~fkc.conformers.build` (``python -m fkc.conformers.build``): the datasets.
"""

from fkc.conformers.featurize import mol_graph
from fkc.conformers.generate import conformer_arrays, generate
from fkc.conformers.mmff import MMFFEnergy
from fkc.conformers.reference import BoltzmannEnsemble, sample_boltzmann

__all__ = ["BoltzmannEnsemble", "MMFFEnergy", "conformer_arrays", "generate", "mol_graph",
           "sample_boltzmann"]
