"""The content-addressed object store: blobs named by their BLAKE3 hash.

``open_object_store(url)`` picks the implementation: a folder path or ``file://`` URL gives
:class:`LocalObjectStore`; any other fsspec URL (``s3://``, ``gs://``, ``memory://``…)
gives :class:`FsspecObjectStore`. :class:`MemoryObjectStore` is the in-process fake.
:class:`HttpObjectStore` is the object store of an ``mloop server`` (built by the caller
with the server's root URL and a token; ``open_object_store`` does not pick it for
``http://`` URLs, which stay fsspec's). All four implement the whole :class:`ObjectStore`
protocol (mypy checks it in each module) and pass the same contract tests
(``tests/objects/test_contract.py``, where S3 runs against a real S3-protocol server).
"""

from typing import TYPE_CHECKING, Any

from mloop.objects.base import ObjectStore, object_relpath
from mloop.objects.local import LocalObjectStore
from mloop.objects.memory import MemoryObjectStore

if TYPE_CHECKING:
    from mloop.objects.http import HttpObjectStore
    from mloop.objects.remote import FsspecObjectStore


def open_object_store(url: str, **storage_options: Any) -> ObjectStore:
    """The object store at ``url`` (a folder, ``file://…`` or any fsspec URL);
    ``storage_options`` (credentials, endpoint) go to the fsspec driver."""
    if "://" not in url:
        return LocalObjectStore(url)
    if url.startswith("file://"):
        if not url[len("file://"):]:  # not "here": blobs would land in the working folder
            from mloop.errors import InvalidURIError

            raise InvalidURIError("file:// needs a folder, e.g. file:///srv/mloop-store.")
        return LocalObjectStore(url[len("file://"):])
    from mloop.objects.remote import FsspecObjectStore  # fsspec loads only when needed

    return FsspecObjectStore(url, **storage_options)


def __getattr__(name: str) -> Any:
    if name == "FsspecObjectStore":
        from mloop.objects.remote import FsspecObjectStore

        return FsspecObjectStore
    if name == "HttpObjectStore":  # the store of an `mloop server`: see mloop.objects.http
        from mloop.objects.http import HttpObjectStore

        return HttpObjectStore
    raise AttributeError(name)


__all__ = [
    "FsspecObjectStore",
    "HttpObjectStore",
    "LocalObjectStore",
    "MemoryObjectStore",
    "ObjectStore",
    "object_relpath",
    "open_object_store",
]
