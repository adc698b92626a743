r"""Alanine dipeptide (Ace-Ala-NMe, 22 atoms) with energies and forces from OpenMM.

Force field and solvent (both stated in ``AlanineDipeptide.description``):

* **AMBER ff99SB** (OpenMM's ``amber99sb.xml``; identical for this molecule to ff99SB-ILDN,
  whose side-chain corrections touch only Ile, Leu, Asp and Asn).
* ``solvent="obc"`` (default): **OBC GBSA implicit water** (OpenMM's ``amber99_obc.xml``:
  ``GBSAOBCForce``, i.e. the OBC-II model of Onufriev, Bashford & Case 2004, solvent dielectric
  78.3, solute dielectric 1, ACE surface-area term 2.25936 kJ/mol/nm²), a pair common in
  alanine-dipeptide Boltzmann-generator benchmarks. ``solvent="vacuum"``: no solvent term
  (3.6x faster MD; the Ramachandran map then has almost no alpha-R).
* No cutoff (``NoCutoff``, all pairs), no periodic box, **no constraints** (every bond, including
  X-H bonds, is a harmonic spring; a generative model must not be asked to reproduce rigid
  bonds), no virtual sites.

Topology and starting structure: ``alanine-dipeptide.pdb`` shipped with openmmtools
(``openmmtools/data/alanine-dipeptide-gbsa/``; the ``prmtop`` there is AMBER ff96 and is *not*
used). Atom order (0-based): 0 H1, 1 CH3, 2 H2, 3 H3, 4 C, 5 O (ACE); 6 N, 7 H, 8 CA, 9 HA,
10 CB, 11 HB1, 12 HB2, 13 HB3, 14 C, 15 O (ALA); 16 N, 17 H, 18 C, 19 H1, 20 H2, 21 H3 (NME).

Units: positions in **nm**, energies in **kJ/mol**, forces in **kJ/mol/nm**, temperatures in
**K**; ``k_B T`` uses the molar gas constant ``R = 8.31446261815324e-3 kJ/(mol K)``. The
energy is invariant under rigid motions (no box), so ``exp(-E / k_B T)`` is a density on
the zero-centre-of-mass subspace up to rotations.

OpenMM is imported lazily: constructing an :class:`AlanineDipeptide` without OpenMM raises an
``ImportError`` that says ``pip install -e '.[md]'``.
"""

from __future__ import annotations

import importlib.util
import math
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

#: Molar gas constant (= N_A k_B) in kJ/(mol K), CODATA 2018 exact value (as in ``openmm.unit``).
MOLAR_GAS_CONSTANT = 8.31446261815324e-3

#: Force-field files per solvent model (OpenMM's bundled XML files).
FORCE_FIELD_FILES: dict[str, tuple[str, ...]] = {
    "obc": ("amber99sb.xml", "amber99_obc.xml"),
    "vacuum": ("amber99sb.xml",),
}

#: Atom indices of the backbone dihedrals (C_ACE, N, CA, C) and (N, CA, C, N_NME).
PHI_INDICES = (4, 6, 8, 14)
PSI_INDICES = (6, 8, 14, 16)
#: Atom indices (N, CA, C, CB) around the chiral centre CA of alanine.
CHIRAL_INDICES = (6, 8, 14, 10)

_INSTALL_HINT = "pip install -e '.[md]' (or: conda install -c conda-forge openmm openmmtools)"
_PLATFORMS = ("Reference", "CPU", "CUDA", "OpenCL")


def import_openmm():
    """``(openmm, openmm.app, openmm.unit)``, or ``ImportError`` with the install command."""
    try:
        import openmm
        import openmm.app
        import openmm.unit
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"alanine dipeptide needs OpenMM; install it with {_INSTALL_HINT}") from e
    return openmm, openmm.app, openmm.unit


def openmmtools_aldp_pdb() -> Path:
    """Path of ``alanine-dipeptide.pdb`` in the installed openmmtools (located without importing
    openmmtools, whose import is slow and noisy)."""
    spec = importlib.util.find_spec("openmmtools")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"alanine dipeptide needs openmmtools' data files; install {_INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0], "data", "alanine-dipeptide-gbsa",
                "alanine-dipeptide.pdb")  # fmt: skip
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is the openmmtools installation complete?")
    return path


def kT(temperature: float) -> float:
    """``k_B T`` in kJ/mol for ``temperature`` in K (> 0)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number of kelvin > 0, got {temperature!r}")
    return MOLAR_GAS_CONSTANT * float(temperature)


class AlanineDipeptide:
    """Alanine dipeptide with AMBER ff99SB energies through one reused OpenMM ``Context``.

    Args:
        solvent: ``"obc"`` (OBC GBSA implicit water, default) or ``"vacuum"``.
        platform: OpenMM platform for energies/forces; ``"Reference"`` (default) is the fastest
            for 22 atoms on a CPU (about 30 us per energy with OBC) and is double precision.
            ``"CUDA"``/``"OpenCL"`` work where available but per-call latency dominates.
        platform_properties: e.g. ``{"Threads": "1"}`` for ``"CPU"``.

    Positions ``x`` are ``(..., 22, 3)`` in nm (numpy array or torch tensor, any float dtype).
    ``energy``/``forces`` return float64: numpy for numpy input, a torch tensor on the input's
    device for torch input. Non-finite coordinates raise ``ValueError`` naming the samples.
    """

    name = "aldp"
    n_atoms = 22
    n_dim = 3

    def __init__(
        self,
        solvent: str = "obc",
        platform: str = "Reference",
        platform_properties: dict[str, str] | None = None,
    ) -> None:
        self.check_solvent_platform(solvent, platform)
        self.solvent = solvent
        self.platform = platform
        self.platform_properties = dict(platform_properties or {})
        openmm, app, unit = import_openmm()
        self._pdb_path = openmmtools_aldp_pdb()
        pdb = app.PDBFile(str(self._pdb_path))
        self._omm_topology = pdb.topology
        self.reference_positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)  # fmt: skip
        self._context = None

    @staticmethod
    def check_solvent_platform(solvent: str, platform: str) -> None:
        """Raise ``ValueError`` naming an unknown solvent model or OpenMM platform name."""
        if solvent not in FORCE_FIELD_FILES:
            raise ValueError(f"solvent must be one of {tuple(FORCE_FIELD_FILES)}, got {solvent!r}")
        if platform not in _PLATFORMS:
            raise ValueError(f"platform must be one of {_PLATFORMS}, got {platform!r}")

    # ------------------------------------------------------------------ description
    @property
    def event_shape(self) -> tuple[int, int]:
        """``(22, 3)``."""
        return (self.n_atoms, self.n_dim)

    @property
    def force_field_files(self) -> tuple[str, ...]:
        return FORCE_FIELD_FILES[self.solvent]

    @property
    def description(self) -> str:
        """One line naming molecule, force field, solvent and treatment of constraints."""
        solvent = ("OBC GBSA implicit water (amber99_obc.xml, OBC-II)" if self.solvent == "obc"
                   else "vacuum")  # fmt: skip
        return (f"alanine dipeptide (Ace-Ala-NMe, 22 atoms), AMBER ff99SB (amber99sb.xml), "
                f"{solvent}, no cutoff, no constraints")  # fmt: skip

    def parameters(self) -> dict:
        """Everything needed to rebuild the system (for metadata files)."""
        openmm, _, _ = import_openmm()
        return {"system": self.name, "solvent": self.solvent,
                "force_field_files": list(self.force_field_files),
                "description": self.description, "openmm_version": openmm.__version__}  # fmt: skip

    def pdb_string(self, positions: np.ndarray | None = None) -> str:
        """PDB text of the topology with ``positions`` ``(22, 3)`` nm (default: the reference)."""
        import io

        _, app, unit = import_openmm()
        pos = self.reference_positions if positions is None else np.asarray(positions, float)
        buf = io.StringIO()
        app.PDBFile.writeFile(self._omm_topology, unit.Quantity(pos, unit.nanometer), buf)
        # OpenMM's REMARK carries today's date; replace it so the text depends on the inputs only
        lines = [ln for ln in buf.getvalue().splitlines() if not ln.startswith("REMARK")]
        remark = "REMARK   1 ALANINE DIPEPTIDE (FKC.SYSTEMS.ALANINEDIPEPTIDE), POSITIONS IN ANGSTROM"
        return "\n".join([remark, *lines]) + "\n"

    @property
    def openmm_topology(self):
        """The ``openmm.app.Topology`` (atom names as renamed by OpenMM's PDB reader)."""
        return self._omm_topology

    @cached_property
    def topology(self):
        """The ``mdtraj.Topology``."""
        import mdtraj

        return mdtraj.Topology.from_openmm(self._omm_topology)

    @cached_property
    def elements(self) -> tuple[str, ...]:
        """Element symbols ``(22,)`` in atom order."""
        return tuple(a.element.symbol for a in self._omm_topology.atoms())

    @cached_property
    def heavy_atom_mask(self) -> np.ndarray:
        """``(22,)`` bool, True for non-hydrogen atoms (10 of them)."""
        return np.array([e != "H" for e in self.elements])

    @cached_property
    def bonds(self) -> np.ndarray:
        """``(21, 2)`` int64 atom-index pairs ``i < j``, sorted."""
        pairs = sorted(tuple(sorted((b[0].index, b[1].index))) for b in self._omm_topology.bonds())
        return np.array(pairs, dtype=np.int64)

    @cached_property
    def bond_lengths(self) -> np.ndarray:
        """``(21,)`` equilibrium lengths ``r0`` (nm) of :attr:`bonds` from the force field."""
        openmm, _, unit = import_openmm()
        system = self.openmm_system()  # keep alive: the forces are views into it
        (force,) = [f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce)]
        r0 = {}
        for k in range(force.getNumBonds()):
            i, j, length, _ = force.getBondParameters(k)
            r0[(min(i, j), max(i, j))] = length.value_in_unit(unit.nanometer)
        return np.array([r0[(int(i), int(j))] for i, j in self.bonds])

    @cached_property
    def masses(self) -> np.ndarray:
        """``(22,)`` atomic masses in dalton (g/mol)."""
        _, _, unit = import_openmm()
        s = self.openmm_system()
        return np.array([s.getParticleMass(i).value_in_unit(unit.dalton)
                         for i in range(self.n_atoms)])  # fmt: skip

    def openmm_system(self):
        """A new ``openmm.System`` with the stated force field (no constraints, no cutoff)."""
        _, app, _ = import_openmm()
        ff = app.ForceField(*self.force_field_files)
        return ff.createSystem(self._omm_topology, nonbondedMethod=app.NoCutoff,
                               constraints=None, rigidWater=False, removeCMMotion=True)  # fmt: skip

    def openmm_platform(self):
        openmm, _, _ = import_openmm()
        return openmm.Platform.getPlatformByName(self.platform)

    # ------------------------------------------------------------------ evaluation
    def _get_context(self):
        if self._context is None:
            openmm, _, _ = import_openmm()
            integrator = openmm.VerletIntegrator(0.001)  # never stepped
            self._context = openmm.Context(self.openmm_system(), integrator,
                                           self.openmm_platform(), self.platform_properties)  # fmt: skip
        return self._context

    def check_positions(self, x, what: str = "x") -> np.ndarray:
        """``x`` as a float64 ``(n, 22, 3)`` numpy array; raise ``ValueError`` naming the problem
        (wrong shape, or the indices of samples with non-finite coordinates)."""
        if isinstance(x, torch.Tensor):
            arr = x.detach().to("cpu", torch.float64).numpy()
        else:
            arr = np.asarray(x, dtype=np.float64)
        if arr.ndim < 2 or arr.shape[-2:] != self.event_shape:
            raise ValueError(f"{what} must have shape (..., 22, 3) (positions in nm) for alanine "
                             f"dipeptide, got {tuple(arr.shape)}")  # fmt: skip
        arr = np.ascontiguousarray(arr.reshape(-1, *self.event_shape))
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
        if bad.size:
            shown = ", ".join(map(str, bad[:10])) + (", ..." if bad.size > 10 else "")
            raise ValueError(f"{what} has non-finite coordinates in {bad.size} of {len(arr)} "
                             f"samples (flattened sample indices: {shown})")  # fmt: skip
        return arr

    def _evaluate(self, x, energy: bool, forces: bool):
        arr = self.check_positions(x)
        lead = tuple(np.shape(x)[:-2])
        _, _, unit = import_openmm()
        ctx = self._get_context()
        e = np.empty(len(arr)) if energy else None
        f = np.empty_like(arr) if forces else None
        kj, kj_nm = unit.kilojoule_per_mole, unit.kilojoule_per_mole / unit.nanometer
        for i, xi in enumerate(arr):
            ctx.setPositions(xi)
            state = ctx.getState(getEnergy=energy, getForces=forces)
            if energy:
                e[i] = state.getPotentialEnergy().value_in_unit(kj)
            if forces:
                f[i] = state.getForces(asNumpy=True).value_in_unit(kj_nm)
        out = []
        if energy:
            out.append(e.reshape(lead))
        if forces:
            out.append(f.reshape(*lead, *self.event_shape))
        if isinstance(x, torch.Tensor):
            out = [torch.as_tensor(o, device=x.device) for o in out]
        return out

    def energy(self, x):
        """Potential energy in kJ/mol. x: ``(..., 22, 3)`` nm; returns ``(...)`` float64."""
        return self._evaluate(x, energy=True, forces=False)[0]

    def forces(self, x):
        """Forces ``-grad E`` in kJ/mol/nm. x: ``(..., 22, 3)`` nm; returns ``(..., 22, 3)``."""
        return self._evaluate(x, energy=False, forces=True)[0]

    def energy_and_forces(self, x):
        """``(energy (...), forces (..., 22, 3))`` from one OpenMM call per sample."""
        e, f = self._evaluate(x, energy=True, forces=True)
        return e, f

    def reduced_energy(self, x, temperature: float):
        """``E(x) / (k_B T)`` (dimensionless) at ``temperature`` in K; x: ``(..., 22, 3)`` nm."""
        return self.energy(x) / kT(temperature)

    # ------------------------------------------------------------------ conversion
    def to_mdtraj(self, x):
        """An ``mdtraj.Trajectory`` of ``x``: ``(n, 22, 3)`` or ``(22, 3)`` nm."""
        import mdtraj

        arr = self.check_positions(x)
        return mdtraj.Trajectory(arr.astype(np.float32), self.topology)

    def __repr__(self) -> str:
        return f"AlanineDipeptide(solvent={self.solvent!r}, platform={self.platform!r})"

    def __getstate__(self):  # the OpenMM Context is not picklable; rebuilt lazily
        state = dict(self.__dict__)
        state["_context"] = None
        return state
