"""Every error mloop raises on purpose.

Each class knows the HTTP status the server answers with and the exit code the CLI
ends with, and every message says what went wrong *and what to do next*. Exit codes
mean one thing each (documented in the README, pinned by a test)::

    0  ok                            5  integrity (corrupt object, hash mismatch)
    1  a check, gate or step failed  6  schema too new
    2  bad input or usage            7  unsafe model refused
    3  not found                     69 a service, port or disk unavailable
    4  conflict                      70 internal error (a bug: please report it)
                                     130 interrupted (Ctrl-C)

The tree::

    MloopError                         500 / exit 70  (only subclasses are raised)
    ├── CheckFailedError               422 / exit 1   a gate, check or test failed
    │   └── StepFailedError                           a pipeline step did not do its job
    ├── ConfigError                    400 / exit 2   bad setting, config or YAML file
    ├── ProjectNotFoundError           404 / exit 2   no .mloop/ here or above
    ├── InvalidInputError              422 / exit 2   a value that does not fit
    │   ├── MalformedRequestError      400            a request not in its protocol's form
    │   ├── PayloadTooLargeError       413            a request body over the server's limit
    │   ├── UnsupportedMediaTypeError  415            a body that is not declared JSON
    │   ├── MisdirectedRequestError    421            a Host this server does not answer to
    │   ├── InvalidURIError
    │   ├── InvalidMetricError
    │   ├── UnsafePathError                           a path that would escape its root
    │   ├── FilterSyntaxError                         carries the position of the mistake
    │   ├── TokenError                 401            a missing, wrong or expired token
    │   └── ForbiddenError             403            a token whose role may not do this
    ├── NotFoundError                  404 / exit 3
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   ├── ModelNotFoundError                        no such registered model, version or alias
    │   ├── ArtifactNotFoundError
    │   ├── ObjectNotFoundError
    │   └── DatasetNotFoundError
    ├── ConflictError                  409 / exit 4
    │   ├── ParamConflictError                        a param re-set to another value
    │   └── RunStateError                             e.g. logging into a finished run
    ├── IntegrityError                 500 / exit 5
    │   └── CorruptObjectError                        stored bytes no longer match their hash
    ├── SchemaError                    500 / exit 6
    │   └── SchemaTooNewError                         the store was written by a newer mloop
    ├── UnsafeModelError               403 / exit 7   loading would run code from a file
    │   └── UnsafeValueError                          a pipeline value not signed by you
    ├── ServiceUnavailableError        503 / exit 69  a database, remote, broker or port
    │   ├── OverloadedError                           a served model's request queue is full
    │   ├── RateLimitedError           429            a token over its rate: retry after a while
    │   └── DiskFullError              507            no space left where mloop writes
    ├── ModelFailedError               500 / exit 70  a served model raised on a request
    ├── JobFailedError                 500 / exit 70  a queued prediction job failed for good
    └── InternalError                  500 / exit 70  an unexpected failure, wrapped
"""

from __future__ import annotations

from mloop.core.redact import redact


class MloopError(Exception):
    """Root of every error mloop raises on purpose."""

    http_status: int = 500
    exit_code: int = 70
    code: str = "internal"

    def __init__(self, message: str) -> None:
        # messages quote URLs, settings and driver errors: hide any secret in them once,
        # here, so that no printer, log or stored error can show it
        message = redact(message)
        super().__init__(message)
        self.message = message

    @classmethod
    def of_redacted_parts(cls, message: str) -> MloopError:
        """An error of this class whose message the caller assembled from parts it redacted
        one by one (the user's values, keys and paths). Redacting the whole again would mask
        mloop's own words after a key named like a secret: "jwt: unknown key"."""
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.message = message
        return error

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


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ArtifactNotFoundError(NotFoundError):
    code = "artifact_not_found"


class ObjectNotFoundError(NotFoundError):
    code = "object_not_found"


class DatasetNotFoundError(NotFoundError):
    code = "dataset_not_found"


class InvalidInputError(MloopError):
    """The caller passed a value mloop cannot accept.

    HTTP 422: the request was read, a value in it does not fit (a body that is not JSON or
    not in the protocol's form is 400, see ``mloop.serving.protocol.PayloadError``).
    """

    http_status, exit_code, code = 422, 2, "invalid_input"


class MalformedRequestError(InvalidInputError):
    """A request that is not in its protocol's form: a body that does not parse, a header
    missing (HTTP 400)."""

    http_status, code = 400, "malformed_request"


class PayloadTooLargeError(InvalidInputError):
    """A request body over the server's limit (HTTP 413)."""

    http_status, code = 413, "too_large"


class UnsupportedMediaTypeError(InvalidInputError):
    """A request body not declared as the JSON the server reads (HTTP 415)."""

    http_status, code = 415, "unsupported_media_type"


class MisdirectedRequestError(InvalidInputError):
    """A request naming a host this server does not answer to (HTTP 421)."""

    http_status, code = 421, "misdirected_request"


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
        from mloop.core.printable import printable

        self.text = text
        self.position = position
        # a window of the filter around the mistake, on one line, with a caret under it
        start, end = max(0, position - 40), min(len(text), position + 40)
        before = ("…" if start else "") + printable(text[start:position], one_line=True)
        after = printable(text[position:end], one_line=True) + ("…" if end < len(text) else "")
        caret = " " * len(before) + "^"
        super().__init__(f"{message} (at position {position})\n  {before}{after}\n  {caret}")


class TokenError(InvalidInputError):
    """A token that is malformed, unknown, wrong or expired (HTTP 401)."""

    http_status, code = 401, "invalid_token"


class ForbiddenError(InvalidInputError):
    """A valid token whose role does not allow the request (HTTP 403)."""

    http_status, code = 403, "forbidden"


class ConflictError(MloopError):
    """The request contradicts what is already stored."""

    http_status, exit_code, code = 409, 4, "conflict"


class ParamConflictError(ConflictError):
    code = "param_conflict"


class RunStateError(ConflictError):
    code = "run_state"


class CheckFailedError(MloopError):
    """What the user asked to verify did not hold: a gate, a check, a test suite."""

    http_status, exit_code, code = 422, 1, "check_failed"


class StepFailedError(CheckFailedError):
    """A pipeline step failed: its command or function raised, or an output is missing."""

    http_status, code = 500, "step_failed"


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


class UnsafeModelError(MloopError):
    """Loading a model would run code stored in one of its files (a pickle), unasked."""

    http_status, exit_code, code = 403, 7, "unsafe_model"


class UnsafeValueError(UnsafeModelError):
    """A pipeline value is a pickle that this user's key did not sign (or it was changed)."""

    code = "unsafe_value"


class ServiceUnavailableError(MloopError):
    """A database, remote, broker or port mloop needs cannot be reached or used."""

    http_status, exit_code, code = 503, 69, "unavailable"


class OverloadedError(ServiceUnavailableError):
    """A served model's request queue is full: try again shortly (HTTP 503)."""

    code = "overloaded"


class RateLimitedError(ServiceUnavailableError):
    """A token sent writes faster than the server's rate limit allows (HTTP 429); the
    server answers with ``Retry-After: retry_after`` (whole seconds, at least 1)."""

    http_status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class DiskFullError(ServiceUnavailableError):
    """No space is left on the device mloop writes to."""

    http_status, code = 507, "disk_full"


class ModelFailedError(MloopError):
    """A served model raised on one request's own rows (predicted alone); ``error`` is what
    it raised."""

    code = "model_failed"

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class JobFailedError(MloopError, RuntimeError):
    """A queued prediction job ended in the dead-letter list (still a ``RuntimeError``, as
    it was before it joined the tree)."""

    code = "job_failed"


class InternalError(MloopError):
    """An unexpected failure: a bug in mloop or a library, reported in one line."""

    code = "internal"


#: Exit codes of the ``mloop`` command, one meaning each (see the module docstring).
EXIT_CODES: dict[int, str] = {
    0: "ok",
    1: "a check, gate or pipeline step failed",
    2: "bad input or usage",
    3: "not found",
    4: "conflict",
    5: "integrity: a corrupt object or a hash mismatch",
    6: "the store's schema is newer than this mloop",
    7: "an unsafe model was refused",
    69: "a service, port or disk is unavailable",
    70: "internal error (a bug; please report it)",
    130: "interrupted (Ctrl-C)",
}


__all__ = [
    "EXIT_CODES",
    "ArtifactNotFoundError",
    "CheckFailedError",
    "ConfigError",
    "ConflictError",
    "CorruptObjectError",
    "DiskFullError",
    "ExperimentNotFoundError",
    "FilterSyntaxError",
    "ForbiddenError",
    "IntegrityError",
    "InternalError",
    "InvalidInputError",
    "InvalidMetricError",
    "InvalidURIError",
    "JobFailedError",
    "MalformedRequestError",
    "MisdirectedRequestError",
    "MloopError",
    "ModelFailedError",
    "NotFoundError",
    "ObjectNotFoundError",
    "OverloadedError",
    "ParamConflictError",
    "PayloadTooLargeError",
    "ProjectNotFoundError",
    "RateLimitedError",
    "RunNotFoundError",
    "RunStateError",
    "SchemaError",
    "SchemaTooNewError",
    "ServiceUnavailableError",
    "StepFailedError",
    "TokenError",
    "UnsafeModelError",
    "UnsafePathError",
    "UnsafeValueError",
    "UnsupportedMediaTypeError",
]
