"""Cell helpers shared by the notebook generators (``python notebooks/_make_NN.py``)."""

from pathlib import Path

import nbformat as nbf

cells = []


def md(text):
    cells.append(nbf.v4.new_markdown_cell(text.strip()))


def code(text):
    cells.append(nbf.v4.new_code_cell(text.strip()))


def write(name: str) -> None:
    """Write the collected cells as ``notebooks/<name>`` (Python 3 kernel)."""
    nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                   "display_name": "Python 3",
                                                                   "language": "python"}})
    nbf.write(nb, Path(__file__).with_name(name))
