"""``module:attribute`` references to the user's code (``--client mymodule:make_client``).

The module is imported as ``python -m`` would find it, with the working directory first
on ``sys.path`` (as uvicorn and Celery do), so a file beside the command works.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

from mloop.errors import ConfigError

_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")


def load_ref(ref: str, what: str = "object") -> Any:
    """The object ``ref`` names (``package.module:name`` or ``module:Class.method``)."""
    if not _REF.match(ref):
        raise ConfigError(f"{ref[:100]!r} is not a reference to the {what}: write "
                          "module:name, e.g. mymodule:make_client")
    module_name, _, attr = ref.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for the {what}: {exc}. Run from the "
                          "folder that holds it, or install it.") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{module_name} has no {attr!r} (the {what} {ref!r})") from None
    return obj


__all__ = ["load_ref"]
