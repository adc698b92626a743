"""MMFF94 energies and forces of one molecule through RDKit (kcal/mol, angstrom).

The force field is MMFF94 as parameterised by RDKit (``MMFFGetMoleculeProperties``), in vacuum
with a constant dielectric of 1 and no cutoff. One RDKit force-field object is built per
molecule and re-used for every configuration (about 20-30 us per energy+gradient for 20-40
atoms).
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdForceFieldHelpers

from fkc.datasets.smiles import mol_label

KB_KCAL = 0.0019872042586408316  # Boltzmann constant, kcal/mol/K

# Atomic masses (amu) for the time unit of the Hamiltonian sampler.
_MASS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "P": 30.974,
         "S": 32.06, "Cl": 35.45, "Br": 79.904, "I": 126.904}


class MMFFEnergy:
    """MMFF94 energy ``E(x)`` of ``mol`` (explicit hydrogens) at positions ``x (n_atoms, 3)`` Å.

    Raises ``ValueError`` naming the molecule when MMFF has no parameters for it.
    Attributes: ``n_atoms``, ``masses (n_atoms,)`` amu, ``mol``.
    """

    def __init__(self, mol: Chem.Mol, *, variant: str = "MMFF94") -> None:
        if mol.GetNumAtoms() == 0:
            raise ValueError("MMFFEnergy needs a molecule with atoms")
        m = Chem.Mol(mol)
        if m.GetNumConformers() == 0:  # the force field needs a conformer to be built
            conf = Chem.Conformer(m.GetNumAtoms())
            for i in range(m.GetNumAtoms()):
                conf.SetAtomPosition(i, (float(i), 0.0, 0.0))
            m.AddConformer(conf, assignId=True)
        with rdBase.BlockLogs():
            props = rdForceFieldHelpers.MMFFGetMoleculeProperties(m, mmffVariant=variant)
        if props is None:
            raise ValueError(f"MMFF94 has no parameters for molecule {mol_label(mol)!r}")
        self.mol = m
        self._ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(
            m, props, confId=m.GetConformers()[0].GetId(), ignoreInterfragInteractions=False)
        self.n_atoms = m.GetNumAtoms()
        self.masses = np.array([_MASS[a.GetSymbol()] for a in m.GetAtoms()])

    def _flat(self, x: np.ndarray) -> list[float]:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_atoms, 3):
            raise ValueError(f"positions must have shape ({self.n_atoms}, 3), got {x.shape}")
        return x.ravel().tolist()

    def energy(self, x: np.ndarray) -> float:
        """``E(x)`` in kcal/mol; ``x: (n_atoms, 3)`` Å."""
        return float(self._ff.CalcEnergy(self._flat(x)))

    def energy_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """``(E(x), dE/dx (n_atoms, 3))`` in kcal/mol and kcal/mol/Å."""
        flat = self._flat(x)
        return (float(self._ff.CalcEnergy(flat)),
                np.asarray(self._ff.CalcGrad(flat)).reshape(self.n_atoms, 3))

    def energies(self, x: np.ndarray) -> np.ndarray:
        """Energies ``(n,)`` of configurations ``x: (n, n_atoms, 3)``; non-finite positions
        give ``nan`` (counted as failures by callers, never dropped here)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3:
            raise ValueError(f"x must have shape (n, {self.n_atoms}, 3), got {x.shape}")
        return np.array([self.energy(xi) if np.isfinite(xi).all() else np.nan for xi in x])

    def minimize(self, x: np.ndarray, *, max_iters: int = 2000) -> tuple[np.ndarray, float]:
        """Local MMFF minimisation from ``x (n_atoms, 3)``: ``(x_min, E_min)``."""
        m = Chem.Mol(self.mol)
        conf = m.GetConformer()
        for i, p in enumerate(np.asarray(x, dtype=np.float64)):
            conf.SetAtomPosition(i, p.tolist())
        with rdBase.BlockLogs():
            props = rdForceFieldHelpers.MMFFGetMoleculeProperties(m)
            ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(m, props, confId=conf.GetId())
            ff.Minimize(maxIts=max_iters)
        pos = np.asarray(ff.Positions()).reshape(self.n_atoms, 3)
        return pos, float(ff.CalcEnergy())
