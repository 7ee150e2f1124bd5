"""Every error mloop raises on purpose.

Each class knows the HTTP status the server answers with and the exit code the CLI
ends with, and every message says what went wrong *and what to do next*::

    MloopError                         500 / exit 1
    ├── ConfigError                    400 / exit 2   bad setting, bad config.toml
    ├── ProjectNotFoundError           404 / exit 2   no .mloop/ here or above
    ├── NotFoundError                  404 / exit 3
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── ArtifactNotFoundError
    │   └── ObjectNotFoundError
    ├── InvalidInputError              400 / exit 2
    │   ├── InvalidURIError
    │   ├── InvalidMetricError
    │   ├── UnsafePathError            a path that would escape its root
    │   └── FilterSyntaxError          carries the position of the mistake
    ├── ConflictError                  409 / exit 4
    │   ├── ParamConflictError         a param re-set to another value
    │   └── RunStateError              e.g. logging into a finished run
    ├── StepFailedError                500 / exit 1   a pipeline step did not do its job
    ├── IntegrityError                 500 / exit 5
    │   └── CorruptObjectError         stored bytes no longer match their hash
    └── SchemaError                    500 / exit 6
        └── SchemaTooNewError          the store was written by a newer mloop
"""

from __future__ import annotations


class MloopError(Exception):
    """Root of every error mloop raises on purpose."""

    http_status: int = 500
    exit_code: int = 1
    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The JSON body the server answers with: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class ConfigError(MloopError):
    """A setting has a value mloop cannot use."""

    http_status, exit_code, code = 400, 2, "config"


class ProjectNotFoundError(MloopError):
    """No mloop project in the folder or any of its parents."""

    http_status, exit_code, code = 404, 2, "project_not_found"


class NotFoundError(MloopError):
    """Something named by the caller does not exist."""

    http_status, exit_code, code = 404, 3, "not_found"


class ExperimentNotFoundError(NotFoundError):
    code = "experiment_not_found"


class RunNotFoundError(NotFoundError):
    code = "run_not_found"


class ArtifactNotFoundError(NotFoundError):
    code = "artifact_not_found"


class ObjectNotFoundError(NotFoundError):
    code = "object_not_found"


class InvalidInputError(MloopError):
    """The caller passed a value mloop cannot accept."""

    http_status, exit_code, code = 400, 2, "invalid_input"


class InvalidURIError(InvalidInputError):
    code = "invalid_uri"


class InvalidMetricError(InvalidInputError):
    code = "invalid_metric"


class UnsafePathError(InvalidInputError):
    code = "unsafe_path"


class FilterSyntaxError(InvalidInputError):
    """A search filter that does not parse; ``position`` is the 0-based offset."""

    code = "invalid_filter"

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} (at position {position})\n  {text}\n  {caret}")


class ConflictError(MloopError):
    """The request contradicts what is already stored."""

    http_status, exit_code, code = 409, 4, "conflict"


class ParamConflictError(ConflictError):
    code = "param_conflict"


class RunStateError(ConflictError):
    code = "run_state"


class StepFailedError(MloopError):
    """A pipeline step failed: its command or function raised, or an output is missing."""

    code = "step_failed"


class IntegrityError(MloopError):
    """Stored data failed a consistency check."""

    http_status, exit_code, code = 500, 5, "integrity"


class CorruptObjectError(IntegrityError):
    code = "corrupt_object"


class SchemaError(MloopError):
    """The metadata store's schema is not one this mloop can use."""

    http_status, exit_code, code = 500, 6, "schema"


class SchemaTooNewError(SchemaError):
    code = "schema_too_new"


__all__ = [
    "ArtifactNotFoundError",
    "ConfigError",
    "ConflictError",
    "CorruptObjectError",
    "ExperimentNotFoundError",
    "FilterSyntaxError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidMetricError",
    "InvalidURIError",
    "MloopError",
    "NotFoundError",
    "ObjectNotFoundError",
    "ParamConflictError",
    "ProjectNotFoundError",
    "RunNotFoundError",
    "RunStateError",
    "SchemaError",
    "SchemaTooNewError",
    "StepFailedError",
    "UnsafePathError",
]
