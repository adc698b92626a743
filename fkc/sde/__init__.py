"""Noise processes (forward SDEs) and state spaces. See :mod:`fkc.sde.processes` for conventions."""

from .processes import NoiseProcess, VESDE, VPSDE
from .space import CoMFreeSpace, EuclideanSpace, remove_com

__all__ = ["NoiseProcess", "VPSDE", "VESDE", "EuclideanSpace", "CoMFreeSpace", "remove_com"]
