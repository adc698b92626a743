"""Per-molecule failure records shared by the dataset loaders.

Every loader either raises (``on_error="raise"``) or returns the molecules it could read together
with one :class:`Failure` per molecule it could not (``on_error="record"``); nothing is dropped
silently.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_ERROR = ("raise", "record")


@dataclass(frozen=True)
class Failure:
    """One molecule that could not be parsed, embedded or loaded.

    ``index``: position in the input (list index, SDF record number or CSV row, 0-based);
    ``smiles``: the SMILES if known, else ``None``; ``reason``: a readable message;
    ``where``: the file, ``mol_id`` or summary key the entry came from, if any.
    """

    index: int
    smiles: str | None
    reason: str
    where: str | None = None

    def __str__(self) -> str:
        at = f" ({self.where})" if self.where else ""
        smi = f" {self.smiles!r}" if self.smiles is not None else ""
        return f"molecule {self.index}{smi}{at}: {self.reason}"


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
