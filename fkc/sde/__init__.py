"""Noise processes (forward SDEs) and state spaces. See :mod:`fkc.sde.processes` for conventions."""

from .processes import VESDE, VPSDE, NoiseProcess
from .space import CoMFreeSpace, EuclideanSpace, remove_com

__all__ = ["NoiseProcess", "VPSDE", "VESDE", "EuclideanSpace", "CoMFreeSpace", "remove_com"]
