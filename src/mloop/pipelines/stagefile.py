"""The schema of ``mloop.yaml`` (shell-command stages), checked when the file is parsed.

Kept apart from :mod:`mloop.pipelines.stages` because that module is on the path of a
no-op ``mloop pipeline run``, which reuses the last parse of an unchanged file and so
needs neither the YAML parser nor pydantic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from mloop.core.schema import Schema, TypeName, one_or_many, validate
from mloop.core.uris import NAME_RE


def _stage_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError("stage names use letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit; rename it")
    return name


def _command(value: str) -> str:
    if not value.strip():
        raise ValueError("an empty command; write the shell command that runs the stage, "
                         "e.g. 'cmd: python train.py'")
    return value


Command = Annotated[str, AfterValidator(_command)]
Paths = Annotated[list[str] | None, BeforeValidator(one_or_many),
                  TypeName("a path or a list of paths, relative to the project root")]


class Stage(Schema):
    """One stage of ``stages:``."""

    cmd: Annotated[list[Command], BeforeValidator(one_or_many), Field(min_length=1),
                   TypeName("a shell command, or a list of commands run in turn")] = Field(
        ..., description="run by the shell in the project root; a list stops at the first "
        "command that fails")
    deps: Paths = Field(None, description="files or folders the stage reads; a stage that "
                        "writes one of them runs first")
    outs: Paths = Field(None, description="files or folders the stage writes (deleted before "
                        "it runs, stored by content after)")
    params: Annotated[list[str] | None, BeforeValidator(one_or_many),
                      TypeName("a list of keys of params.yaml (train.C, or a whole section)")
                      ] = Field(None, description="the params.yaml values in the stage's key")
    desc: str | None = Field(None, description="a description, shown by `mloop pipeline show`")


class StagesFile(Schema):
    """``mloop.yaml``: the stages of the ``default`` pipeline."""

    stages: dict[Annotated[str, AfterValidator(_stage_name)], Stage] = Field(
        ..., description="stage names (letters, digits, _ . -) to their cmd, deps and outs")

    @field_validator("stages")
    @classmethod
    def _some(cls, stages: dict[str, Stage]) -> dict[str, Stage]:
        if not stages:
            raise ValueError("'stages' must map stage names to their cmd, deps and outs, e.g. "
                             "{train: {cmd: python train.py}}")
        return stages


def check(data: Any, path: Path) -> None:
    """Raise a :class:`~mloop.errors.ConfigError` naming ``path`` and the key at fault
    when ``data`` (the parsed mloop.yaml) is not a stages file."""
    validate(StagesFile, data, source=path)
