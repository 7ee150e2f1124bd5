"""What tracking returns: plain data objects with no I/O of their own, except Run's lazy views.

The records live with the tables they are read from (:mod:`mloop.repositories.runs`,
:mod:`mloop.repositories.experiments`); this module keeps their public import path.
"""

from __future__ import annotations

from mloop.repositories.experiments import Experiment
from mloop.repositories.runs import ArtifactInfo, Environment, Run, RunStatus, json_float

__all__ = ["ArtifactInfo", "Environment", "Experiment", "Run", "RunStatus", "json_float"]
