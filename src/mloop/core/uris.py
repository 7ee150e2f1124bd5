"""The URIs that name things across mloop: ``runs:/``, ``models:/``, ``data:/`` and friends.

=====================  =====================================================
``runs:/<run_id>/<path>``          an artifact (or the whole tree) of a run
``models:/<name>/<version>``       a model version
``models:/<name>@<alias>``         the model version an alias points at
``data:/<name>@<version|tag>``     a dataset version (``data:/<name>`` = latest)
``deployments:/<name>``            a deployment
``pipelines:/<name>/<run_id>``     a pipeline run
=====================  =====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mloop.core.paths import safe_relpath
from mloop.errors import InvalidURIError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}\Z")
#: the largest version number (of a dataset or a model) a store holds: a signed 64-bit int
MAX_VERSION = 2**63 - 1
RUN_ID_RE = re.compile(r"^[0-9a-f]{6,32}\Z")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid mloop name (letters, digits, ``_.-``), else raise."""
    # \Z, not $: "$" also matches before a trailing newline, and "train\n" is no name
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidURIError(
            f"Invalid {what} {name!r}: use 1-200 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    return name


def is_version(text: str) -> bool:
    """Whether ``text`` spells a version number: ASCII digits only (``"²"`` and ``"٣"``
    are digits to Python but not to a database)."""
    return text.isascii() and text.isdigit()


def version_number(text: str, uri: str) -> int:
    """The version number ``text`` spells (see :func:`is_version`), at most
    :data:`MAX_VERSION`; raises InvalidURIError naming ``uri`` beyond."""
    number = int(text)
    if number > MAX_VERSION:
        raise InvalidURIError(f"{uri!r}: version {text[:30]}… is larger than any version "
                              "can be; see the versions with `mloop models versions` or "
                              "`mloop data log`.")
    return number


@dataclass(frozen=True, slots=True)
class RunURI:
    run_id: str
    path: str  # "" for the run's whole artifact tree

    def __str__(self) -> str:
        return f"runs:/{self.run_id}/{self.path}" if self.path else f"runs:/{self.run_id}"


@dataclass(frozen=True, slots=True)
class ModelURI:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class DataURI:
    name: str
    ref: str | None = None  # version number as text, a tag, or None for the latest

    def __str__(self) -> str:
        return f"data:/{self.name}@{self.ref}" if self.ref else f"data:/{self.name}"


@dataclass(frozen=True, slots=True)
class DeploymentURI:
    name: str

    def __str__(self) -> str:
        return f"deployments:/{self.name}"


@dataclass(frozen=True, slots=True)
class PipelineURI:
    name: str
    run_id: str

    def __str__(self) -> str:
        return f"pipelines:/{self.name}/{self.run_id}"


URI = RunURI | ModelURI | DataURI | DeploymentURI | PipelineURI


def _split_scheme(uri: str) -> tuple[str, str]:
    scheme, sep, rest = uri.partition(":/")
    if not sep or not scheme:
        raise InvalidURIError(
            f"{uri!r} is not an mloop URI; expected e.g. 'runs:/<run_id>/model', "
            "'models:/churn/1', 'models:/churn@champion' or 'data:/train@2'."
        )
    return scheme, rest.lstrip("/")


def parse_run_uri(rest: str, uri: str) -> RunURI:
    run_id, _, path = rest.partition("/")
    if not RUN_ID_RE.match(run_id):
        raise InvalidURIError(f"{uri!r}: {run_id!r} is not a run id (32 hex digits).")
    return RunURI(run_id, safe_relpath(path, allow_empty=True))


def parse_model_uri(rest: str, uri: str) -> ModelURI:
    if "@" in rest:
        name, _, alias = rest.partition("@")
        return ModelURI(check_name(name, "model name"), alias=check_name(alias, "alias"))
    name, _, version = rest.partition("/")
    if not is_version(version) or int(version) < 1:
        raise InvalidURIError(
            f"{uri!r}: give a version number or an alias, e.g. 'models:/{name}/1' "
            f"or 'models:/{name}@champion'."
        )
    return ModelURI(check_name(name, "model name"), version=version_number(version, uri))


def parse_data_uri(rest: str, uri: str) -> DataURI:
    name, sep, ref = rest.partition("@")
    if sep and not ref:
        raise InvalidURIError(f"{uri!r}: nothing after '@'; write e.g. 'data:/{name}@2'.")
    ref_name = check_name(ref, "version or tag") if sep else None
    return DataURI(check_name(name, "dataset name"), ref_name)


def parse_uri(uri: str) -> URI:
    """Parse any mloop URI; raises :class:`InvalidURIError` with an example when malformed."""
    scheme, rest = _split_scheme(uri)
    if scheme == "runs":
        return parse_run_uri(rest, uri)
    if scheme == "models":
        return parse_model_uri(rest, uri)
    if scheme == "data":
        return parse_data_uri(rest, uri)
    if scheme == "deployments":
        return DeploymentURI(check_name(rest, "deployment name"))
    if scheme == "pipelines":
        name, _, run_id = rest.partition("/")
        if not RUN_ID_RE.match(run_id):
            raise InvalidURIError(f"{uri!r}: expected 'pipelines:/<name>/<run_id>'.")
        return PipelineURI(check_name(name, "pipeline name"), run_id)
    raise InvalidURIError(
        f"{uri!r}: unknown scheme {scheme!r}; use runs:/, models:/, data:/, deployments:/ "
        "or pipelines:/."
    )
