"""Helpers shared by the results-table scripts (run them as ``python benchmarks/NAME.py``)."""

from pathlib import Path


def finished(model: Path) -> bool:
    """The model folder's checkpoint exists and its training run reached its last step."""
    from fkc.annealing import resolve_checkpoint
    from fkc.checkpoint import load_checkpoint

    try:
        ckpt = load_checkpoint(resolve_checkpoint(model))
    except ValueError:
        return False
    planned = (ckpt.train_config or {}).get("train", {}).get("n_steps")
    return planned is None or ckpt.step >= planned


def write_between_markers(path: str | Path, marker: str, table: str) -> None:
    """Replace the text between ``<!-- marker -->`` and ``<!-- /marker -->`` of ``path`` with
    ``table`` (atomic rename); ``ValueError`` if the markers are missing."""
    path = Path(path)
    text = path.read_text()
    a, b = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if a not in text or b not in text:
        raise ValueError(f"{path} has no {a} ... {b} markers")
    head, rest = text.split(a, 1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(head + a + "\n" + table + "\n" + b + rest.split(b, 1)[1])
    tmp.replace(path)
