"""Molecules from SMILES or RDKit ``Mol``: parsing, validation and ETKDGv3 embedding.

Policy (the same for every loader; see :class:`MoleculePolicy`):

* elements: H C N O F P S Cl Br I (the MMFF94 organic set used for drug-like conformers);
  any other element, including dummy atoms ``*``, is rejected with the element named;
* formal charges on atoms are allowed (nitro groups, zwitterions, ammonium ions) and so is a
  non-zero net charge, unless ``allow_net_charge=False``;
* radicals (unpaired electrons after sanitisation) are always rejected: the force field and the
  ETKDG geometry rules assume closed-shell molecules;
* several disconnected fragments (salts, ``"CC.O"``) are rejected unless ``allow_fragments=True``
  (their relative placement is not a conformer);
* an empty SMILES, one RDKit cannot parse, or one that fails sanitisation (e.g. a pentavalent
  carbon) raises ``ValueError`` naming the SMILES and the reason.

Batch functions take ``on_error="raise"`` (stop at the first bad molecule) or ``"record"``
(return the good ones with their input indices plus one :class:`~fkc.datasets.Failure` per bad
one); nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rdkit import Chem, rdBase
from rdkit.Chem import AllChem

from fkc.datasets._records import Failure, check_on_error

SUPPORTED_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")


@dataclass(frozen=True)
class MoleculePolicy:
    """Which molecules the loaders accept (see the module docstring)."""

    elements: tuple[str, ...] = SUPPORTED_ELEMENTS
    allow_net_charge: bool = True
    allow_fragments: bool = False


DEFAULT_POLICY = MoleculePolicy()


class EmbeddingError(ValueError):
    """RDKit could not embed (enough) conformers of a molecule."""


def safe_smiles(mol: Chem.Mol) -> str | None:
    """Canonical SMILES without explicit hydrogens, or ``None`` if RDKit cannot write one."""
    try:
        with rdBase.BlockLogs():
            return Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))
    except Exception:  # noqa: BLE001 (used while reporting another error: must not raise)
        return None


def mol_label(mol: Chem.Mol) -> str:
    """A readable name for error messages: the ``_Name`` property, else the SMILES."""
    if mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        return mol.GetProp("_Name").strip()
    return safe_smiles(mol) or f"<Mol with {mol.GetNumAtoms()} atoms>"


def validate_mol(mol: Chem.Mol, *, label: str | None = None,
                 policy: MoleculePolicy = DEFAULT_POLICY) -> None:
    """Raise ``ValueError`` naming ``label`` if a sanitised ``mol`` breaks ``policy``."""
    label = mol_label(mol) if label is None else label
    if mol.GetNumAtoms() == 0:
        raise ValueError(f"molecule {label!r} has no atoms")
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetSymbol() not in policy.elements})
    if bad:
        raise ValueError(f"molecule {label!r} has unsupported element(s) {bad}; "
                         f"supported: {' '.join(policy.elements)}")
    radicals = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumRadicalElectrons() > 0]
    if radicals:
        raise ValueError(f"molecule {label!r} is a radical (unpaired electrons on atom(s) "
                         f"{radicals}); only closed-shell molecules are supported")
    charge = Chem.GetFormalCharge(mol)
    if charge != 0 and not policy.allow_net_charge:
        raise ValueError(f"molecule {label!r} has net charge {charge:+d} and "
                         f"allow_net_charge=False")
    n_frag = len(Chem.GetMolFrags(mol))
    if n_frag > 1 and not policy.allow_fragments:
        raise ValueError(f"molecule {label!r} has {n_frag} disconnected fragments (a salt or "
                         f"mixture?); pass allow_fragments=True or keep the largest fragment")


def mol_from_smiles(smiles: str, *, add_hs: bool = True,
                    policy: MoleculePolicy = DEFAULT_POLICY) -> Chem.Mol:
    """Parse, sanitise and validate one SMILES; add explicit hydrogens if ``add_hs``.

    Raises ``TypeError`` for a non-string and ``ValueError`` naming the SMILES for an empty or
    unparsable string, a sanitisation failure, or a molecule outside ``policy``.
    """
    if not isinstance(smiles, str):
        raise TypeError(f"SMILES must be a str, got {type(smiles).__name__}: {smiles!r}")
    if not smiles.strip():
        raise ValueError(f"empty SMILES {smiles!r}")
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles.strip(), sanitize=False)
    if mol is None:
        raise ValueError(f"invalid SMILES {smiles!r}: RDKit could not parse it")
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several sanitisation exception types
        raise ValueError(f"invalid SMILES {smiles!r}: sanitisation failed: {exc}") from None
    validate_mol(mol, label=smiles, policy=policy)
    return Chem.AddHs(mol) if add_hs else mol


def as_mol(mol_or_smiles: str | Chem.Mol, *, add_hs: bool = True,
           policy: MoleculePolicy = DEFAULT_POLICY) -> Chem.Mol:
    """A validated copy of an RDKit ``Mol`` (conformers kept) or a parsed SMILES."""
    if isinstance(mol_or_smiles, str):
        return mol_from_smiles(mol_or_smiles, add_hs=add_hs, policy=policy)
    if not isinstance(mol_or_smiles, Chem.Mol):
        raise TypeError(f"expected a SMILES str or rdkit Mol, got {type(mol_or_smiles).__name__}")
    mol = Chem.Mol(mol_or_smiles)
    validate_mol(mol, policy=policy)
    return Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0) if add_hs else mol


@dataclass
class ParsedMolecules:
    """Result of a batch call: ``mols[k]`` came from input ``indices[k]``."""

    mols: list[Chem.Mol]
    indices: list[int]
    failures: list[Failure] = field(default_factory=list)


def parse_molecules(smiles_list: Iterable[str | Chem.Mol], *, on_error: str = "raise",
                    add_hs: bool = True, policy: MoleculePolicy = DEFAULT_POLICY
                    ) -> ParsedMolecules:
    """Parse and validate many SMILES (or Mols) with :func:`as_mol`.

    ``on_error="raise"``: the first bad entry raises ``ValueError`` naming its index and SMILES.
    ``on_error="record"``: bad entries become :class:`Failure` records (index, smiles, reason).
    """
    check_on_error(on_error)
    out = ParsedMolecules([], [], [])
    for i, item in enumerate(smiles_list):
        try:
            out.mols.append(as_mol(item, add_hs=add_hs, policy=policy))
            out.indices.append(i)
        except (ValueError, TypeError) as exc:
            smi = item if isinstance(item, str) else (
                safe_smiles(item) if isinstance(item, Chem.Mol) else None)
            if on_error == "raise":
                raise type(exc)(f"molecule {i}: {exc}") from exc
            out.failures.append(Failure(i, smi, str(exc)))
    return out


def embed_etkdg(mol: Chem.Mol, n_confs: int, seed: int, *, min_confs: int | None = None,
                use_random_coords: bool = False, num_threads: int = 1) -> Chem.Mol:
    """Embed ``n_confs`` conformers with RDKit ETKDGv3 and a fixed random seed.

    ``mol`` must carry explicit hydrogens (``mol_from_smiles(add_hs=True)``). Returns a copy with
    conformers ``0..k-1`` (positions in angstrom, ``mol.GetConformer(i).GetPositions()`` is
    ``(n_atoms, 3)``); the input is not modified. Chirality of the input is enforced by ETKDG.
    RDKit is given ``randomSeed = seed + 1`` (its seed 0 makes all conformers identical).
    Raises :class:`EmbeddingError` (a ``ValueError``) naming the molecule when fewer than
    ``min_confs`` (default ``n_confs``) conformers could be embedded. Same seed, same
    conformers (with ``num_threads=1``).
    """
    if n_confs < 1:
        raise ValueError(f"n_confs must be >= 1, got {n_confs}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (RDKit treats -1 as 'random'), got {seed}")
    min_confs = n_confs if min_confs is None else min_confs
    if not 1 <= min_confs <= n_confs:
        raise ValueError(f"min_confs must be in [1, n_confs={n_confs}], got {min_confs}")
    label = mol_label(mol)
    implicit = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumImplicitHs() > 0]
    if implicit:
        raise ValueError(f"molecule {label!r} has implicit hydrogens on atom(s) {implicit[:5]}; "
                         f"embed with explicit hydrogens (Chem.AddHs or add_hs=True)")
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    params = AllChem.ETKDGv3()
    # RDKit derives every conformer's seed from randomSeed; randomSeed = 0 gives all
    # conformers identical coordinates (seen with rdkit 2026.9), so fkc's seed s is RDKit's s + 1.
    params.randomSeed = int(seed) + 1
    params.useRandomCoords = use_random_coords
    params.numThreads = num_threads
    with rdBase.BlockLogs():
        ids = list(AllChem.EmbedMultipleConfs(out, numConfs=n_confs, params=params))
    if len(ids) < min_confs:
        raise EmbeddingError(f"RDKit ETKDGv3 embedded {len(ids)} of {n_confs} conformers of "
                             f"{label!r} (seed={seed}, min_confs={min_confs})")
    return out


@dataclass
class EmbeddedMolecules:
    """Result of :func:`embed_molecules`: ``mols[k]`` came from input ``indices[k]``."""

    mols: list[Chem.Mol]
    indices: list[int]
    failures: list[Failure] = field(default_factory=list)


def embed_molecules(mols: Sequence[Chem.Mol], n_confs: int, seed: int, *,
                    on_error: str = "raise", min_confs: int | None = None,
                    use_random_coords: bool = False) -> EmbeddedMolecules:
    """:func:`embed_etkdg` for each molecule with the same ``seed`` (so a molecule's conformers
    do not depend on its position in the batch); un-embeddable molecules raise or are recorded.
    """
    check_on_error(on_error)
    out = EmbeddedMolecules([], [], [])
    for i, mol in enumerate(mols):
        try:
            out.mols.append(embed_etkdg(mol, n_confs, seed, min_confs=min_confs,
                                        use_random_coords=use_random_coords))
            out.indices.append(i)
        except ValueError as exc:
            if on_error == "raise":
                raise type(exc)(f"molecule {i}: {exc}") from exc
            name = mol.GetProp("_Name") if mol.HasProp("_Name") else None
            out.failures.append(Failure(i, safe_smiles(mol), str(exc), where=name or None))
    return out
