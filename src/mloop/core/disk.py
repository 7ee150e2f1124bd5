"""A full disk, said once and the same way wherever mloop writes.

``ENOSPC`` (no space left) and ``EDQUOT`` (the user's quota is used up) become
:class:`~mloop.errors.DiskFullError`: one line in the CLI, exit 69, and a message that
says where and what to do. Writers remove their temporary files before raising it.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from mloop.errors import DiskFullError

DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(where: str) -> DiskFullError:
    """The error for a full disk under ``where`` (a store, a folder, a file)."""
    return DiskFullError(f"No space left on the device holding {where}. Free some space "
                         "(`mloop data gc` removes unreferenced objects and stale temporary "
                         "files) and run the command again.")


@contextmanager
def writing(where: str) -> Iterator[None]:
    """Turn a full-disk OSError raised inside the block into DiskFullError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise disk_full_error(where) from exc
        raise
