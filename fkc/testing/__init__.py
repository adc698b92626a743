"""Test helpers shipped with fkc, so users can test their own models the same way.

* :func:`assert_equivariant` / :func:`assert_invariant` / :func:`equivariance_errors`: rotation,
  reflection, translation and atom-permutation checks of vector fields and invariants;
* :func:`random_rotation`, :func:`random_reflection`, :func:`random_permutation`,
  :func:`permute_graph`: the transformations (float64 Haar matrices, explicit generators);
* :func:`random_molecular_graph`: random atom types and bonds.
"""

from ._equivariance import (
    OUTPUT_KINDS,
    assert_equivariant,
    assert_invariant,
    default_tolerance,
    equivariance_errors,
)
from ._graphs import random_molecular_graph
from ._transforms import permute_graph, random_permutation, random_reflection, random_rotation

__all__ = [
    "OUTPUT_KINDS",
    "assert_equivariant",
    "assert_invariant",
    "default_tolerance",
    "equivariance_errors",
    "permute_graph",
    "random_molecular_graph",
    "random_permutation",
    "random_reflection",
    "random_rotation",
]
