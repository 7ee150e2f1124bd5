"""Experiments: named groups of runs (stored by :mod:`mloop.repositories.experiments`)."""

from __future__ import annotations

from mloop.core.uris import check_name
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.experiments import Experiment

DEFAULT_EXPERIMENT = "default"


def get_or_create_experiment(project: Project, name: str) -> Experiment:
    """The experiment called ``name``, created if missing (safe under concurrency)."""
    check_name(name, "experiment name")
    return backend(project).experiments.get_or_create(name)


def get_experiment(project: Project, name_or_id: str) -> Experiment:
    """The experiment with this name or id; raises :class:`ExperimentNotFoundError`."""
    return backend(project).experiments.get(name_or_id)


def list_experiments(project: Project) -> list[Experiment]:
    """Every experiment with its number of (not deleted) runs, oldest first."""
    return backend(project).experiments.all()
