r"""Conformer-ensemble evaluation: RMSD coverage / matching, energy W1, failure checks, SDF I/O.

The standard of the field (GeoMol; torsional diffusion, Jing et al. 2022). For one molecule with
``K`` reference conformers and ``L`` generated conformers (typically ``L = 2K``):

* ``RMSD[i, j]`` (Å), shape ``(K, L)``: heavy-atom, symmetry-aware RMSD after optimal
  superposition between reference conformer ``i`` and generated conformer ``j``, computed with
  RDKit ``rdMolAlign.GetBestRMS`` on molecules with hydrogens removed (``Chem.RemoveHs``).
  ``GetBestRMS`` minimises over all atom maps given by substructure matches of the molecule
  onto itself (its symmetry-equivalent atom permutations), so relabelling equivalent atoms
  (ring flips, methyl rotations) does not change the RMSD.
* For a threshold ``delta`` (Å), with a strict ``<``::

      COV-R(delta) = (1/K) #{i : min_j RMSD[i, j] < delta}      MAT-R = (1/K) sum_i min_j RMSD[i, j]
      COV-P(delta) = (1/L) #{j : min_i RMSD[i, j] < delta}      MAT-P = (1/L) sum_j min_i RMSD[i, j]

  R ("recall") asks whether every reference conformer is found; P ("precision") whether every
  generated conformer is close to some reference conformer. Thresholds 0.5, 0.75, 1.0, 1.25 Å;
  the headline is 0.75 Å (GEOM-DRUGS). Over a test set, the mean and the median over molecules
  are reported (torsional diffusion reports both).

Failed generated conformers (:func:`conformer_failures`: non-finite coordinates, a bond length off
by more than a relative tolerance, or stereochemistry different from the molecular graph) are
kept *out* of the RMSD matrix. :func:`evaluate_molecule` then computes COV-R and MAT-R from the
valid conformers only (a failed conformer covers nothing), COV-P over *all* ``L`` generated
conformers (a failed conformer counts as not precise: the numerator counts valid conformers only,
the denominator is ``L``) and MAT-P over the valid conformers (a failed conformer has no RMSD).
With no valid conformer, COV-R = COV-P = 0 and MAT-R = MAT-P = NaN.

Energies are MMFF94 energies in kcal/mol; ``energy W1`` is the 1-D Wasserstein-1 distance
(kcal/mol) between the (optionally weighted) energy samples of the valid generated conformers
and of the reference conformers.

SDF convention (:func:`write_conformer_sdf`, :func:`read_conformer_sdf`): one record per
conformer; the records of one molecule share the SD property ``fkc_id`` (also written as the
title line) and carry ``fkc_smiles``, the isomeric SMILES of the molecular graph (used on reading
to restore the graph's stereochemistry, which would otherwise be re-perceived from the first
record's 3D coordinates), plus one SD property per per-conformer value (e.g. ``energy``,
``log_weight``).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdCIPLabeler, rdMolAlign
from rdkit.Chem import rdForceFieldHelpers as ff_helpers
from scipy import stats

#: COV thresholds (Å) of the field; the headline is 0.75 Å.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25)
HEADLINE_THRESHOLD = 0.75
#: Default cap on the number of symmetry-equivalent atom maps tried by ``GetBestRMS``.
DEFAULT_MAX_MATCHES = 1000
#: Default relative bond-length tolerance of :func:`conformer_failures`.
DEFAULT_BOND_TOLERANCE = 0.25
#: SD properties reserved by the SDF helpers.
ID_PROPERTY = "fkc_id"
SMILES_PROPERTY = "fkc_smiles"
_RESERVED = frozenset({ID_PROPERTY, SMILES_PROPERTY})


class MMFFUnavailableError(ValueError):
    """MMFF94 has no parameters for a molecule (a ``ValueError``)."""


# ---- small helpers -------------------------------------------------------------------------------
def _check_mol(mol, what: str) -> Chem.Mol:
    if not isinstance(mol, Chem.Mol):
        raise TypeError(f"{what} must be an RDKit Chem.Mol, got {type(mol).__name__}")
    return mol


def smiles_of(mol: Chem.Mol, *, isomeric: bool = True) -> str:
    """Canonical SMILES of the heavy-atom graph of ``mol`` (stereo from the graph, not 3D)."""
    try:
        return Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False), isomericSmiles=isomeric)
    except Exception:  # only used for messages and identity checks
        return f"<unprintable molecule with {mol.GetNumAtoms()} atoms>"


def _check_has_conformers(mol: Chem.Mol, what: str) -> None:
    if mol.GetNumConformers() == 0:
        raise ValueError(f"{what} ({smiles_of(mol)}) has no conformers")


def conformer_coordinates(mol: Chem.Mol) -> np.ndarray:
    """Coordinates (Å) of all conformers, ``(n_conformers, n_atoms, 3)``, in conformer order."""
    _check_mol(mol, "mol")
    confs = list(mol.GetConformers())
    if not confs:
        return np.zeros((0, mol.GetNumAtoms(), 3))
    return np.stack([np.asarray(c.GetPositions(), dtype=np.float64) for c in confs])


def _conformer_ids(mol: Chem.Mol) -> list[int]:
    return [c.GetId() for c in mol.GetConformers()]


def subset_conformers(mol: Chem.Mol, indices: Sequence[int]) -> Chem.Mol:
    """A copy of ``mol`` keeping the conformers at positions ``indices`` (not ids), renumbered
    ``0..len(indices)-1``."""
    confs = list(mol.GetConformers())
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    for k in indices:
        conf = Chem.Conformer(confs[int(k)])
        out.AddConformer(conf, assignId=True)
    return out


def _bond_index(mol: Chem.Mol) -> np.ndarray:
    """Bonded atom pairs ``(n_bonds, 2)`` in bond order."""
    pairs = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _graph_key(mol: Chem.Mol) -> tuple[tuple[int, ...], frozenset]:
    """Element sequence and bond set (connectivity) of ``mol``, for same-order identity checks."""
    elements = tuple(a.GetAtomicNum() for a in mol.GetAtoms())
    bonds = frozenset((min(i, j), max(i, j)) for i, j in _bond_index(mol).tolist())
    return elements, bonds


def _check_same_molecule(a: Chem.Mol, b: Chem.Mol, name_a: str, name_b: str) -> None:
    """Same atom count and same stereo-free canonical SMILES (atom order may differ)."""
    sa, sb = smiles_of(a, isomeric=False), smiles_of(b, isomeric=False)
    if a.GetNumAtoms() != b.GetNumAtoms() or sa != sb:
        raise ValueError(
            f"{name_a} ({sa}, {a.GetNumAtoms()} atoms) and {name_b} ({sb}, {b.GetNumAtoms()} "
            f"atoms) are not the same molecule"
        )


def _check_finite_conformers(mol: Chem.Mol, what: str) -> None:
    xyz = conformer_coordinates(mol)
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(
            f"{what} ({smiles_of(mol)}) has non-finite coordinates in conformer(s) at positions "
            f"{bad.tolist()}; drop failed conformers first (see conformer_failures)"
        )


def _check_thresholds(thresholds) -> tuple[float, ...]:
    th = tuple(float(t) for t in np.atleast_1d(np.asarray(thresholds, dtype=np.float64)))
    if not th:
        raise ValueError("thresholds must not be empty")
    for t in th:
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"thresholds must be finite and > 0 (Å), got {t}")
    keys = [metric_key("cov_r", t) for t in th]
    if len(set(keys)) != len(keys):
        raise ValueError(f"thresholds must be distinct, got {th}")
    return th


def metric_key(kind: str, threshold: float) -> str:
    """Dictionary key of a coverage metric, e.g. ``metric_key("cov_r", 0.75) == "cov_r@0.75"``
    (threshold formatted with ``:g``, so 1.0 gives ``"cov_r@1"``)."""
    if kind not in ("cov_r", "cov_p"):
        raise ValueError(f"kind must be 'cov_r' or 'cov_p', got {kind!r}")
    return f"{kind}@{float(threshold):g}"


# ---- RMSD, coverage and matching ----------------------------------------------------------------
def rmsd_matrix(
    reference: Chem.Mol,
    generated: Chem.Mol,
    *,
    heavy_atoms: bool = True,
    max_matches: int = DEFAULT_MAX_MATCHES,
    symmetrize_conjugated_terminal_groups: bool = True,
    num_threads: int = 1,
) -> np.ndarray:
    """Symmetry-aware RMSD (Å) between every reference and every generated conformer.

    ``RMSD[i, j] = min_{pi in matches} min_{R, t} sqrt((1/n) sum_a |x_i[a] - (R y_j[pi(a)] + t)|^2)``
    over rigid motions and the atom maps ``pi`` found by substructure-matching the molecule onto
    itself (``rdMolAlign.GetBestRMS(probe, ref, prbId, refId, maxMatches=max_matches)``).

    Args:
        reference: ``K`` conformers of the molecule (rows), ``(K, n_atoms, 3)``.
        generated: ``L`` conformers of the same molecule (columns); the atom order may differ
            from ``reference`` (the substructure match handles it), the graph may not.
        heavy_atoms: remove hydrogens (``Chem.RemoveHs``) first, as the field does. With
            ``False`` every atom counts and the number of atom maps grows quickly (3! per methyl).
        max_matches: cap on the number of atom maps tried (``maxMatches``). Each is one
            superposition, so the cost per pair grows with it; highly symmetric molecules
            (many equivalent rings / groups) may have more maps than the cap, in which case the
            RMSD is an upper bound. The default (1000) covers drug-like molecules without H.
        symmetrize_conjugated_terminal_groups: treat e.g. the two O of a carboxylate / nitro
            group as equivalent (RDKit's default).
        num_threads: threads used by ``GetBestRMS`` per pair.

    Returns:
        ``(K, L)`` float64 array; rows and columns follow the conformer order (not the ids).
        The inputs are not modified (``GetBestRMS`` aligns the probe in place; a copy is used).

    Raises:
        ValueError: different molecules (message names both SMILES), no conformers, or
            non-finite coordinates.
    """
    _check_mol(reference, "reference")
    _check_mol(generated, "generated")
    if int(max_matches) != max_matches or max_matches < 1:
        raise ValueError(f"max_matches must be a positive integer, got {max_matches!r}")
    if int(num_threads) != num_threads or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    for mol, what in ((reference, "reference"), (generated, "generated")):
        _check_has_conformers(mol, what)
        _check_finite_conformers(mol, what)
    # copies (RemoveHs returns a new Mol): GetBestRMS aligns the probe conformer in place
    ref = Chem.RemoveHs(reference) if heavy_atoms else Chem.Mol(reference)
    gen = Chem.RemoveHs(generated) if heavy_atoms else Chem.Mol(generated)
    _check_same_molecule(ref, gen, "reference", "generated")
    ref_ids, gen_ids = _conformer_ids(ref), _conformer_ids(gen)
    out = np.empty((len(ref_ids), len(gen_ids)), dtype=np.float64)
    for i, rid in enumerate(ref_ids):
        for j, gid in enumerate(gen_ids):
            out[i, j] = rdMolAlign.GetBestRMS(
                gen,
                ref,
                gid,
                rid,
                maxMatches=int(max_matches),
                symmetrizeConjugatedTerminalGroups=bool(symmetrize_conjugated_terminal_groups),
                numThreads=int(num_threads),
            )
    return out


def coverage_matching(
    rmsd, thresholds=DEFAULT_THRESHOLDS, *, n_generated: int | None = None
) -> dict[str, float]:
    """COV-R / MAT-R / COV-P / MAT-P from an RMSD matrix (Å).

    ``rmsd``: ``(K, L_valid)`` with ``K >= 1`` reference rows and ``L_valid >= 0`` generated
    columns. ``n_generated`` (default ``L_valid``) is the total number ``L`` of generated
    conformers; the ``L - L_valid`` missing ones (failed conformers) count as not precise::

        COV-R(d) = (1/K) #{i : min_j rmsd[i, j] < d}        MAT-R = mean_i min_j rmsd[i, j]
        COV-P(d) = (1/L) #{j : min_i rmsd[i, j] < d}        MAT-P = mean_j min_i rmsd[i, j]

    (MAT-P averages over the ``L_valid`` columns.) With ``L_valid = 0``: COV-R = COV-P = 0,
    MAT-R = MAT-P = NaN.

    Returns:
        ``{"cov_r@<d>": ..., "mat_r": ..., "cov_p@<d>": ..., "mat_p": ...}`` (COV as fractions
        in ``[0, 1]``, MAT in Å; keys from :func:`metric_key`).
    """
    r = np.asarray(rmsd, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] == 0:
        raise ValueError(f"rmsd must have shape (K, L) with K >= 1, got {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        bad = int(np.sum(~np.isfinite(r) | (r < 0)))
        raise ValueError(f"rmsd must be finite and >= 0; {bad} entries are not")
    th = _check_thresholds(thresholds)
    n_valid = r.shape[1]
    n_total = n_valid if n_generated is None else n_generated
    if int(n_total) != n_total or n_total < max(n_valid, 1):
        raise ValueError(
            f"n_generated must be an integer >= max(number of rmsd columns, 1) = "
            f"{max(n_valid, 1)}, got {n_generated!r}"
        )
    if n_valid:
        best_r, best_p = r.min(axis=1), r.min(axis=0)  # (K,), (L_valid,)
        mat_r, mat_p = float(best_r.mean()), float(best_p.mean())
    else:
        best_r, best_p = np.full(r.shape[0], np.inf), np.zeros(0)
        mat_r = mat_p = math.nan
    out: dict[str, float] = {}
    for t in th:
        out[metric_key("cov_r", t)] = float(np.mean(best_r < t))
    out["mat_r"] = mat_r
    for t in th:
        out[metric_key("cov_p", t)] = float(np.sum(best_p < t) / n_total)
    out["mat_p"] = mat_p
    return out


# ---- energies -------------------------------------------------------------------------------------
def _check_energies(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array (n,), got shape {a.shape}")
    bad = int(np.sum(~np.isfinite(a)))
    if bad:
        raise ValueError(
            f"{what} has {bad} non-finite value(s) out of {a.size}; drop them (count them as "
            f"failures) before computing the distance"
        )
    return a


def _check_weights(w, n: int, what: str) -> np.ndarray | None:
    if w is None:
        return None
    a = np.asarray(w, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},) like its energies, got {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or not a.sum() > 0:
        raise ValueError(f"{what} must be finite, >= 0 and not all zero, got {a}")
    return a


def energy_w1(gen_energies, ref_energies, gen_weights=None, ref_weights=None) -> float:
    """1-D Wasserstein-1 distance (kcal/mol if energies are) between two weighted samples.

    ``W1 = int |F_gen(e) - F_ref(e)| de`` with ``F`` the (weighted) empirical CDFs
    (``scipy.stats.wasserstein_distance``). ``gen_energies: (n,)``, ``ref_energies: (m,)``;
    weights ``(n,)`` / ``(m,)``, non-negative, normalised internally; ``None`` = uniform.

    Raises:
        ValueError: empty or non-finite energies (the message gives how many are non-finite),
            or bad weights.
    """
    u = _check_energies(gen_energies, "gen_energies")
    v = _check_energies(ref_energies, "ref_energies")
    uw = _check_weights(gen_weights, u.size, "gen_weights")
    vw = _check_weights(ref_weights, v.size, "ref_weights")
    return float(stats.wasserstein_distance(u, v, uw, vw))


def mmff_energies(mol: Chem.Mol, *, variant: str = "MMFF94") -> np.ndarray:
    """MMFF energy (kcal/mol) of every conformer, ``(n_conformers,)``, in conformer order.

    ``mol`` must carry explicit hydrogens with coordinates (``Chem.AddHs(mol, addCoords=True)``).
    Conformers with non-finite coordinates give non-finite energies.

    Raises:
        MMFFUnavailableError (a ValueError): MMFF has no parameters for the molecule (the
            message names its SMILES).
        ValueError: hydrogens are implicit.
    """
    _check_mol(mol, "mol")
    if variant not in ("MMFF94", "MMFF94s"):
        raise ValueError(f"variant must be 'MMFF94' or 'MMFF94s', got {variant!r}")
    missing_h = sum(a.GetTotalNumHs() for a in mol.GetAtoms())  # H not present as atoms
    if missing_h:
        raise ValueError(
            f"mmff_energies needs explicit hydrogens; {smiles_of(mol)} has {missing_h} implicit "
            f"hydrogen(s) (use Chem.AddHs(mol, addCoords=True))"
        )
    work = Chem.Mol(mol)
    with rdBase.BlockLogs():
        props = ff_helpers.MMFFGetMoleculeProperties(work, mmffVariant=variant)
    if props is None:
        raise MMFFUnavailableError(f"{variant} has no parameters for {smiles_of(mol)}")
    out = np.empty(work.GetNumConformers(), dtype=np.float64)
    for k, cid in enumerate(_conformer_ids(work)):
        ff = ff_helpers.MMFFGetMoleculeForceField(work, props, confId=cid)
        out[k] = ff.CalcEnergy()
    return out


# ---- failures: coordinates, bond lengths, stereochemistry ---------------------------------------
def _atom_map(mol: Chem.Mol, reference: Chem.Mol) -> np.ndarray:
    """``(n_atoms,)``: for each atom of ``mol`` the index of the same atom in ``reference``."""
    n = mol.GetNumAtoms()
    if reference.GetNumAtoms() != n:
        raise ValueError(
            f"reference_mol ({smiles_of(reference)}, {reference.GetNumAtoms()} atoms) and mol "
            f"({smiles_of(mol)}, {n} atoms) do not have the same atoms (hydrogens included?)"
        )
    if _graph_key(mol) == _graph_key(reference):
        return np.arange(n)
    match = reference.GetSubstructMatch(mol)
    if len(match) != n:
        raise ValueError(
            f"reference_mol ({smiles_of(reference)}) and mol ({smiles_of(mol)}) are not the "
            f"same molecule"
        )
    return np.asarray(match, dtype=np.int64)


def _reference_bond_lengths(mol: Chem.Mol, reference: Chem.Mol | None) -> np.ndarray:
    """Reference length (Å) of every bond of ``mol``, ``(n_bonds,)``."""
    bonds = _bond_index(mol)
    if reference is not None:
        _check_mol(reference, "reference_mol")
        mapping = _atom_map(mol, reference)
        xyz = conformer_coordinates(reference)
        xyz = xyz[np.isfinite(xyz).all(axis=(1, 2))]
        if xyz.shape[0] == 0:
            raise ValueError(f"reference_mol ({smiles_of(reference)}) has no finite conformers")
        ia, ib = mapping[bonds[:, 0]], mapping[bonds[:, 1]]
        return np.median(np.linalg.norm(xyz[:, ia] - xyz[:, ib], axis=-1), axis=0)
    return _minimised_bond_lengths(mol)


def _minimised_bond_lengths(mol: Chem.Mol) -> np.ndarray:
    """Bond lengths (Å) of an MMFF94- (else UFF-) minimised copy of the first finite conformer;
    NaN if no conformer is finite."""
    bonds = _bond_index(mol)
    xyz = conformer_coordinates(mol)
    finite = np.flatnonzero(np.isfinite(xyz).all(axis=(1, 2)))
    if finite.size == 0:
        return np.full(bonds.shape[0], np.nan)
    work = subset_conformers(mol, [int(finite[0])])
    with rdBase.BlockLogs():
        if ff_helpers.MMFFHasAllMoleculeParams(work):
            ff_helpers.MMFFOptimizeMolecule(work, maxIters=2000)
        elif ff_helpers.UFFHasAllMoleculeParams(work):
            ff_helpers.UFFOptimizeMolecule(work, maxIters=2000)
        else:
            raise ValueError(
                f"neither MMFF nor UFF has parameters for {smiles_of(mol)}; pass reference_mol "
                f"to give reference bond lengths"
            )
    pos = np.asarray(work.GetConformer().GetPositions())
    return np.linalg.norm(pos[bonds[:, 0]] - pos[bonds[:, 1]], axis=-1)


def _cip_labels(mol: Chem.Mol) -> tuple[dict[int, str], dict[int, str]]:
    """New-algorithm CIP labels ``({atom_idx: 'R'|'S'|...}, {bond_idx: 'E'|'Z'|...})``."""
    for item in (*mol.GetAtoms(), *mol.GetBonds()):
        item.ClearProp("_CIPCode")
    rdCIPLabeler.AssignCIPLabels(mol)
    atoms = {a.GetIdx(): a.GetProp("_CIPCode") for a in mol.GetAtoms() if a.HasProp("_CIPCode")}
    bonds = {b.GetIdx(): b.GetProp("_CIPCode") for b in mol.GetBonds() if b.HasProp("_CIPCode")}
    return atoms, bonds


def expected_stereo(mol: Chem.Mol) -> tuple[dict[int, str], dict[int, str]]:
    """CIP labels of the stereo elements *specified in the molecular graph* (chiral tags and
    double-bond stereo, e.g. from the SMILES), ignoring coordinates: ``(atoms, bonds)`` dicts
    ``{index: label}``. Unspecified stereocentres are absent (and therefore never checked)."""
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    Chem.AssignStereochemistry(work, cleanIt=True, force=True)
    return _cip_labels(work)


def _observed_stereo(
    mol: Chem.Mol, conf_id: int, expected: tuple[dict[int, str], dict[int, str]]
) -> tuple[dict[int, str], dict[int, str]]:
    """CIP labels of the expected stereo elements as realised by conformer ``conf_id``."""
    exp_atoms, exp_bonds = expected
    one = Chem.Mol(mol, False, int(conf_id))
    Chem.AssignStereochemistryFrom3D(one)
    # only the graph-specified elements are compared; clearing the others keeps the CIP ranking
    # of the compared ones the same as in the graph
    for a in one.GetAtoms():
        if a.GetIdx() not in exp_atoms:
            a.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    for b in one.GetBonds():
        if b.GetIdx() not in exp_bonds:
            b.SetStereo(Chem.BondStereo.STEREONONE)
    return _cip_labels(one)


def _stereo_ok(mol, conf_id, expected) -> bool:
    if not expected[0] and not expected[1]:
        return True
    obs_atoms, obs_bonds = _observed_stereo(mol, conf_id, expected)
    return all(obs_atoms.get(i) == lab for i, lab in expected[0].items()) and all(
        obs_bonds.get(i) == lab for i, lab in expected[1].items()
    )


def stereo_matches(mol: Chem.Mol, conf_id: int = -1) -> bool:
    """Whether conformer ``conf_id`` (an id; ``-1`` = the first) realises the stereochemistry
    specified in the graph of ``mol``.

    The conformer's tetrahedral chirality and double-bond stereo are assigned from its 3D
    coordinates (``Chem.AssignStereochemistryFrom3D`` on a single-conformer copy) and their CIP
    labels (``_CIPCode``, new CIP labeller) are compared, atom by atom and bond by bond, with
    those of the graph (:func:`expected_stereo`). Stereocentres left unspecified in the graph are
    not checked; a specified centre that is planar / unassignable in 3D is a mismatch.
    """
    _check_mol(mol, "mol")
    _check_has_conformers(mol, "mol")
    ids = _conformer_ids(mol)
    if conf_id != -1 and conf_id not in ids:
        raise ValueError(f"conf_id {conf_id} is not a conformer id of mol (ids: {ids})")
    cid = ids[0] if conf_id == -1 else int(conf_id)
    xyz = np.asarray(mol.GetConformer(cid).GetPositions())
    if not np.all(np.isfinite(xyz)):
        return False
    return _stereo_ok(mol, cid, expected_stereo(mol))


def conformer_failure_reasons(
    mol: Chem.Mol,
    reference_mol: Chem.Mol | None = None,
    *,
    bond_tolerance: float = DEFAULT_BOND_TOLERANCE,
    check_stereo: bool = True,
) -> dict[str, np.ndarray]:
    """Per-conformer failure reasons, each a bool array ``(n_conformers,)``.

    * ``non_finite``: some coordinate is NaN / inf (the other checks are skipped: ``False``).
    * ``bond_length``: some bond ``(a, b)`` has ``|r_ab / r0_ab - 1| > bond_tolerance``, where
      ``r0_ab`` (Å) is the median length of that bond over the conformers of ``reference_mol``
      (same molecule with the same atoms, hydrogens included; atom order may differ) or, without
      ``reference_mol``, its length in an MMFF94- (else UFF-) minimised copy of the first finite
      conformer of ``mol``.
    * ``stereo``: :func:`stereo_matches` is false (only if ``check_stereo``).
    """
    _check_mol(mol, "mol")
    tol = float(bond_tolerance)
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"bond_tolerance must be finite and > 0 (relative), got {bond_tolerance}")
    xyz = conformer_coordinates(mol)  # (n_conformers, n_atoms, 3)
    non_finite = ~np.isfinite(xyz).all(axis=(1, 2))
    bond_bad = np.zeros(xyz.shape[0], dtype=bool)
    bonds = _bond_index(mol)
    if bonds.shape[0] and xyz.shape[0]:
        r0 = _reference_bond_lengths(mol, reference_mol)  # (n_bonds,)
        if np.any(np.isfinite(r0) & (r0 <= 0)):
            raise ValueError("reference bond lengths must be > 0 (coincident atoms in reference?)")
        r = np.linalg.norm(xyz[:, bonds[:, 0]] - xyz[:, bonds[:, 1]], axis=-1)  # (n_conf, n_bonds)
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.abs(r / r0 - 1.0)
        bond_bad = np.any(dev > tol, axis=1) & ~non_finite
    stereo_bad = np.zeros(xyz.shape[0], dtype=bool)
    if check_stereo and xyz.shape[0]:
        expected = expected_stereo(mol)
        for k, cid in enumerate(_conformer_ids(mol)):
            if not non_finite[k]:
                stereo_bad[k] = not _stereo_ok(mol, cid, expected)
    return {"non_finite": non_finite, "bond_length": bond_bad, "stereo": stereo_bad}


def conformer_failures(
    mol: Chem.Mol,
    reference_mol: Chem.Mol | None = None,
    *,
    bond_tolerance: float = DEFAULT_BOND_TOLERANCE,
    check_stereo: bool = True,
) -> np.ndarray:
    """Failed conformers, bool ``(n_conformers,)``: non-finite coordinates, a bond length off
    by more than ``bond_tolerance`` (relative) or wrong stereochemistry; see
    :func:`conformer_failure_reasons` for the definitions."""
    reasons = conformer_failure_reasons(
        mol, reference_mol, bond_tolerance=bond_tolerance, check_stereo=check_stereo
    )
    return reasons["non_finite"] | reasons["bond_length"] | reasons["stereo"]


# ---- per molecule and per set -------------------------------------------------------------------
def evaluate_molecule(
    generated: Chem.Mol,
    reference: Chem.Mol,
    *,
    thresholds=DEFAULT_THRESHOLDS,
    gen_weights=None,
    ref_energies=None,
    ref_weights=None,
    energies: bool = True,
    max_matches: int = DEFAULT_MAX_MATCHES,
    bond_tolerance: float = DEFAULT_BOND_TOLERANCE,
) -> dict[str, float]:
    """All metrics of one molecule.

    Args:
        generated: ``L`` generated conformers, with explicit hydrogens.
        reference: ``K`` reference conformers of the same molecule with the same atoms
            (hydrogens included; atom order may differ). Its conformers give the reference bond
            lengths of the failure check.
        thresholds: COV thresholds (Å).
        gen_weights: optional weights ``(L,)`` of the generated conformers for energy W1 (e.g.
            importance weights); the entries of failed conformers are dropped.
        ref_energies: reference energies (kcal/mol) ``(m,)``; default
            ``mmff_energies(reference)``. ``ref_weights``: their weights ``(m,)`` (e.g.
            Boltzmann weights of GEOM), default uniform.
        energies: compute energy W1 (MMFF94 energies of the valid generated conformers vs the
            reference energies). NaN if MMFF has no parameters or no conformer is valid.

    Returns:
        ``n_reference``, ``n_generated``, ``n_valid``, ``n_failed``, ``failure_fraction``,
        ``n_failed_non_finite``, ``n_failed_bond_length``, ``n_failed_stereo`` (a conformer may
        fail for several reasons), the keys of :func:`coverage_matching` (failed conformers kept
        out of the RMSD matrix, counted as not precise in COV-P: see the module docstring) and
        ``energy_w1`` (kcal/mol) if ``energies``.
    """
    _check_mol(generated, "generated")
    _check_mol(reference, "reference")
    _check_has_conformers(generated, "generated")
    _check_has_conformers(reference, "reference")
    reasons = conformer_failure_reasons(generated, reference, bond_tolerance=bond_tolerance)
    failed = reasons["non_finite"] | reasons["bond_length"] | reasons["stereo"]
    n_gen, n_ref = generated.GetNumConformers(), reference.GetNumConformers()
    valid = np.flatnonzero(~failed)
    row: dict[str, float] = {
        "n_reference": n_ref,
        "n_generated": n_gen,
        "n_valid": int(valid.size),
        "n_failed": int(failed.sum()),
        "failure_fraction": float(failed.mean()),
        **{f"n_failed_{k}": int(v.sum()) for k, v in reasons.items()},
    }
    valid_mol = subset_conformers(generated, valid)
    if valid.size:
        rmsd = rmsd_matrix(reference, valid_mol, max_matches=max_matches)
    else:
        _check_same_molecule(
            Chem.RemoveHs(reference), Chem.RemoveHs(generated), "reference", "generated"
        )
        rmsd = np.zeros((n_ref, 0))
    row.update(coverage_matching(rmsd, thresholds, n_generated=n_gen))
    if energies:
        row["energy_w1"] = _molecule_energy_w1(
            valid_mol, reference, valid, n_gen, gen_weights, ref_energies, ref_weights
        )
    return row


def _molecule_energy_w1(
    valid_mol, reference, valid, n_gen, gen_weights, ref_energies, ref_weights
) -> float:
    if gen_weights is not None:
        w = np.asarray(gen_weights, dtype=np.float64)
        if w.shape != (n_gen,):
            raise ValueError(f"gen_weights must have shape ({n_gen},), got {w.shape}")
        gen_weights = w[valid]
    if valid.size == 0:
        return math.nan
    try:
        e_gen = mmff_energies(valid_mol)
        e_ref = mmff_energies(reference) if ref_energies is None else ref_energies
    except MMFFUnavailableError:
        return math.nan
    return energy_w1(e_gen, e_ref, gen_weights, ref_weights)


def _summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    keys = [k for k, v in rows[0].items() if k != "id" and isinstance(v, int | float)]
    out = {}
    for k in keys:
        vals = np.asarray([row.get(k, math.nan) for row in rows], dtype=np.float64)
        fin = vals[np.isfinite(vals)]
        out[k] = {
            "mean": float(fin.mean()) if fin.size else math.nan,
            "median": float(np.median(fin)) if fin.size else math.nan,
            "n": int(fin.size),
        }
    return out


def evaluate_sets(
    pairs: Iterable[tuple[str, Chem.Mol, Chem.Mol]],
    *,
    thresholds=DEFAULT_THRESHOLDS,
    gen_weights: Mapping[str, np.ndarray] | None = None,
    ref_energies: Mapping[str, np.ndarray] | None = None,
    ref_weights: Mapping[str, np.ndarray] | None = None,
    energies: bool = True,
    max_matches: int = DEFAULT_MAX_MATCHES,
    bond_tolerance: float = DEFAULT_BOND_TOLERANCE,
) -> dict:
    """Evaluate a test set of ``(id, generated, reference)`` triples.

    The optional mappings give, per id, the arguments of :func:`evaluate_molecule`.

    Returns:
        ``{"rows": [{"id": id, **evaluate_molecule(...)}, ...], "summary": {metric: {"mean",
        "median", "n"}}, "n_molecules": int}``; ``summary`` aggregates over molecules, ignoring
        NaN (e.g. MAT of a molecule without valid conformers); ``n`` counts the finite values.
    """
    thresholds = _check_thresholds(thresholds)
    rows: list[dict] = []
    seen: set[str] = set()
    for item in pairs:
        if not (isinstance(item, tuple | list) and len(item) == 3):
            raise ValueError(f"pairs must yield (id, generated, reference) triples, got {item!r}")
        mol_id, generated, reference = item
        if mol_id in seen:
            raise ValueError(f"duplicate molecule id {mol_id!r}")
        seen.add(mol_id)
        try:
            row = evaluate_molecule(
                generated,
                reference,
                thresholds=thresholds,
                gen_weights=None if gen_weights is None else gen_weights.get(mol_id),
                ref_energies=None if ref_energies is None else ref_energies.get(mol_id),
                ref_weights=None if ref_weights is None else ref_weights.get(mol_id),
                energies=energies,
                max_matches=max_matches,
                bond_tolerance=bond_tolerance,
            )
        except ValueError as e:
            raise ValueError(f"molecule {mol_id!r}: {e}") from e
        rows.append({"id": mol_id, **row})
    if not rows:
        raise ValueError("pairs is empty")
    return {"rows": rows, "summary": _summary(rows), "n_molecules": len(rows)}


def format_table(
    summary: Mapping[str, Mapping[str, float]], threshold: float = HEADLINE_THRESHOLD
) -> str:
    """Markdown table of the headline metrics: COV-R / MAT-R / COV-P / MAT-P at ``threshold``
    (Å, default 0.75), energy W1 (kcal/mol, if present) and the failure fraction; columns mean,
    median over molecules and ``n`` (molecules with a finite value). COV and failures in %."""
    rows = [
        (metric_key("cov_r", threshold), f"COV-R @ {threshold:g} Å (%)", 100.0, 1),
        ("mat_r", "MAT-R (Å)", 1.0, 3),
        (metric_key("cov_p", threshold), f"COV-P @ {threshold:g} Å (%)", 100.0, 1),
        ("mat_p", "MAT-P (Å)", 1.0, 3),
        ("energy_w1", "energy W1 (kcal/mol)", 1.0, 3),
        ("failure_fraction", "failed conformers (%)", 100.0, 1),
    ]
    missing = [k for k, *_ in rows if k not in summary and k != "energy_w1"]
    if missing:
        raise ValueError(f"summary lacks {missing}; it has {sorted(summary)}")

    def fmt(x: float, scale: float, digits: int) -> str:
        return "n/a" if not math.isfinite(x) else f"{x * scale:.{digits}f}"

    lines = ["| metric | mean | median | n |", "|:--|--:|--:|--:|"]
    for key, label, scale, digits in rows:
        if key not in summary:
            continue
        s = summary[key]
        lines.append(
            f"| {label} | {fmt(s['mean'], scale, digits)} | {fmt(s['median'], scale, digits)} "
            f"| {int(s['n'])} |"
        )
    return "\n".join(lines) + "\n"


# ---- SDF I/O ------------------------------------------------------------------------------------
def _stereo_template(mol: Chem.Mol, smiles: str) -> Chem.Mol | None:
    """The graph of ``smiles`` (hydrogens added if ``mol`` has them as atoms) with its atoms
    renumbered to the order of ``mol``; ``None`` if it does not match ``mol`` atom for atom."""
    tpl = Chem.MolFromSmiles(smiles)
    if tpl is None:
        return None
    if tpl.GetNumAtoms() != mol.GetNumAtoms():
        tpl = Chem.AddHs(tpl)
    if tpl.GetNumAtoms() != mol.GetNumAtoms():
        return None
    match = mol.GetSubstructMatch(tpl)  # match[t] = index in mol of template atom t
    if len(match) != mol.GetNumAtoms():
        return None
    out = Chem.RenumberAtoms(tpl, [int(t) for t in np.argsort(match)])
    for name in out.GetPropNames(includePrivate=True, includeComputed=False):
        out.ClearProp(name)
    return out


def _check_id(mol_id) -> str:
    if not isinstance(mol_id, str) or not mol_id.strip() or any(c in mol_id for c in "\r\n"):
        raise ValueError(f"molecule ids must be non-empty one-line strings, got {mol_id!r}")
    return mol_id


def _check_property_name(name) -> str:
    if not isinstance(name, str) or not name or any(c in name for c in "<>\r\n"):
        raise ValueError(
            f"property names must be non-empty strings without <, >, newlines, got {name!r}"
        )
    if name in _RESERVED:
        raise ValueError(f"property name {name!r} is reserved by the SDF helpers")
    return name


def _format_value(v) -> str:
    if isinstance(v, bool | np.bool_):
        return str(int(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v))
    s = str(v)
    if "\n" in s or "\r" in s or not s.strip():
        raise ValueError(f"property values must be non-empty one-line strings, got {s!r}")
    return s


def _write_group(writer, mol_id, mol, props: Mapping | None) -> None:
    _check_id(mol_id)
    _check_mol(mol, f"mols[{mol_id!r}]")
    _check_has_conformers(mol, f"mols[{mol_id!r}]")
    _check_finite_conformers(mol, f"mols[{mol_id!r}]")
    n = mol.GetNumConformers()
    columns = {}
    for name, values in (props or {}).items():
        a = np.asarray(values)
        if a.shape != (n,):
            raise ValueError(
                f"properties[{mol_id!r}][{name!r}] must have shape ({n},) (one value per "
                f"conformer), got {a.shape}"
            )
        columns[_check_property_name(name)] = a
    work = Chem.Mol(mol)
    for name in work.GetPropNames():
        work.ClearProp(name)
    work.SetProp("_Name", mol_id)
    work.SetProp(ID_PROPERTY, mol_id)
    names = [ID_PROPERTY]
    smiles = smiles_of(mol)
    if _stereo_template(mol, smiles) is not None:
        work.SetProp(SMILES_PROPERTY, smiles)
        names.append(SMILES_PROPERTY)
    names += list(columns)
    with rdBase.BlockLogs():  # RDKit warns when the property list changes between molecules
        writer.SetProps(names)
    for k, cid in enumerate(_conformer_ids(mol)):
        for name, a in columns.items():
            work.SetProp(name, _format_value(a[k]))
        writer.write(work, confId=cid)


def write_conformer_sdf(
    path: str | os.PathLike,
    mols: Mapping[str, Chem.Mol],
    properties: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> None:
    """Write conformer ensembles to an SDF, one record per conformer, atomically.

    Each record has the title and SD property ``fkc_id`` = its molecule id, ``fkc_smiles`` = the
    isomeric SMILES of the molecular graph (omitted if it cannot be mapped back onto the atoms,
    e.g. partially explicit hydrogens) and, for each ``properties[id][name]`` (an array
    ``(n_conformers,)``), the SD property ``name`` (floats written with full precision).
    Coordinates in Å, 4 decimals (molfile format); they must be finite.

    The file is written to a temporary file in the same directory, flushed, fsync'ed and renamed
    over ``path`` with ``os.replace``: on any error (e.g. an invalid molecule half-way through)
    ``path`` is left as it was and the temporary file is removed.
    """
    if not isinstance(mols, Mapping):
        raise TypeError(f"mols must be a mapping id -> Chem.Mol, got {type(mols).__name__}")
    properties = {} if properties is None else properties
    unknown = sorted(set(properties) - set(mols))
    if unknown:
        raise ValueError(f"properties given for ids not in mols: {unknown}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files; use the mode open() would give
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w") as fh:
            writer = Chem.SDWriter(fh)
            try:
                for mol_id, mol in mols.items():
                    _write_group(writer, mol_id, mol, properties.get(mol_id))
            finally:
                writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _parse_column(values: list[str | None]) -> np.ndarray:
    """Floats (NaN where missing) if every present value parses as a float, else strings
    (``None`` where missing, dtype object)."""
    try:
        return np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except ValueError:
        return np.asarray(values, dtype=object)


def _assemble(
    mol_id: str, records: list[tuple[int, Chem.Mol]], path, id_property: str
) -> tuple[Chem.Mol, dict]:
    k0, first = records[0]
    key = _graph_key(first)
    for k, rec in records[1:]:
        if _graph_key(rec) != key:
            raise ValueError(
                f"{path}: record {k} of molecule {mol_id!r} ({smiles_of(rec)}) does not have the "
                f"same atoms and bonds in the same order as record {k0} ({smiles_of(first)})"
            )
    base = None
    if first.HasProp(SMILES_PROPERTY):
        base = _stereo_template(first, first.GetProp(SMILES_PROPERTY))
        if base is None:
            raise ValueError(
                f"{path}: {SMILES_PROPERTY} {first.GetProp(SMILES_PROPERTY)!r} of molecule "
                f"{mol_id!r} does not match its atoms ({smiles_of(first)})"
            )
    if base is None:  # graph stereo as perceived from the first record's 3D coordinates
        base = Chem.Mol(first)
        for name in base.GetPropNames():
            base.ClearProp(name)
    base.RemoveAllConformers()
    base.SetProp("_Name", mol_id)
    names: list[str] = []
    for _, rec in records:
        conf = Chem.Conformer(rec.GetConformer())
        base.AddConformer(conf, assignId=True)
        names += [
            n
            for n in rec.GetPropNames()
            if n not in _RESERVED and n != id_property and n not in names
        ]
    props = {
        n: _parse_column([rec.GetProp(n) if rec.HasProp(n) else None for _, rec in records])
        for n in names
    }
    return base, props


def read_conformer_sdf(
    path: str | os.PathLike, *, id_property: str = ID_PROPERTY
) -> tuple[dict[str, Chem.Mol], dict[str, dict[str, np.ndarray]]]:
    """Read a multi-record SDF into one Mol per molecule id, one conformer per record.

    Records are grouped by the SD property ``id_property`` (default ``fkc_id``) if present, else
    by the title (``_Name``); groups keep the order of first appearance and the records of a
    group must have the same atoms and bonds in the same order. Hydrogens are kept. The graph
    (and so the expected stereochemistry, see :func:`stereo_matches`) comes from ``fkc_smiles``
    when present, else from the first record of the group (stereo perceived from its 3D
    coordinates).

    Returns:
        ``(mols, properties)``: ``mols[id]`` a Mol with conformers ``0..n-1`` in record order;
        ``properties[id][name]`` an array ``(n_conformers,)`` of the per-record SD property
        ``name`` (float64, NaN where a record lacks it, if every value parses as a float; else
        an object array of strings, ``None`` where missing). ``fkc_id``/``fkc_smiles`` are not
        included.
    """
    supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
    groups: dict[str, list[tuple[int, Chem.Mol]]] = {}
    for k, rec in enumerate(supplier):
        if rec is None:
            raise ValueError(f"{path}: record {k} could not be parsed")
        if rec.HasProp(id_property):
            mol_id = rec.GetProp(id_property)
        else:
            mol_id = rec.GetProp("_Name") if rec.HasProp("_Name") else ""
        if not mol_id.strip():
            raise ValueError(f"{path}: record {k} has neither {id_property!r} nor a title")
        groups.setdefault(mol_id, []).append((k, rec))
    mols, props = {}, {}
    for mol_id, records in groups.items():
        mols[mol_id], props[mol_id] = _assemble(mol_id, records, path, id_property)
    return mols, props
