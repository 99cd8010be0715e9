"""Blob storage behind one small interface (DESIGN.md §3, §5): local filesystem or S3.

    create(key)                      start a staged object (empty)
    append(key, offset) -> Appender  write at `offset`, then commit() or abort()
    read(key, start, end)            bytes of a staged or final object
    finalize(key, final_key, size)   staged bytes [0, size) become one immutable object
    lock(key, retain_until, ...)     write-once seal: no change or deletion before the date,
                                     none ever with a legal hold (S3 Object Lock where available)
    delete(key, now)                 refused while the object is sealed

S3 also takes multipart uploads whose parts the client sends itself (``DirectStore``).

The database, not the store, holds how many staged bytes count (the upload offset): an append
always starts at that committed offset and overwrites whatever an unfinished earlier attempt left
beyond it. The methods block; async callers run them in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import msgspec

from server.core.errors import Conflict, NotFound, ServiceUnavailable
from server.core.settings import Settings

READ_CHUNK = 1024 * 1024


class ObjectMissing(NotFound):
    code = "media_object_missing"
    title = "存储中找不到该媒体对象"


class ObjectLocked(Conflict):
    code = "media_object_locked"
    title = "该媒体对象已封存，不能修改或删除"


class StorageUnavailable(ServiceUnavailable):
    code = "media_storage_unavailable"
    title = "媒体存储暂不可用"


class Seal(msgspec.Struct, frozen=True):
    """The write-once state of a final object, kept next to it (``<key>.lock``)."""

    retain_until: dt.datetime
    legal_hold: bool = False
    # What enforces it beyond our own code: "s3-object-lock", or "read-only-file" on disk.
    enforced_by: str = ""

    def holds(self, now: dt.datetime) -> bool:
        return self.legal_hold or now < self.retain_until

    def merged(self, retain_until: dt.datetime, legal_hold: bool) -> Seal:
        """A seal only ever grows: later date, hold once set stays set."""
        return Seal(
            retain_until=max(self.retain_until, retain_until),
            legal_hold=self.legal_hold or legal_hold,
            enforced_by=self.enforced_by,
        )


class Appender(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make everything written durable."""

    def abort(self) -> None:
        """Drop everything written since append(); the object is as before."""


class Store(Protocol):
    backend: str

    def create(self, key: str) -> None: ...

    def append(self, key: str, offset: int) -> Appender: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def finalize(self, key: str, final_key: str, size: int) -> None: ...

    def lock(self, key: str, retain_until: dt.datetime, *, legal_hold: bool = False) -> Seal: ...

    def seal_of(self, key: str) -> Seal | None: ...

    def delete(self, key: str, *, now: dt.datetime) -> None: ...


@runtime_checkable
class DirectStore(Store, Protocol):
    """A store the client uploads parts to directly: a multipart upload at a staged key, parts
    PUT through presigned URLs; completing it leaves one whole staged object for ``finalize``."""

    def begin_multipart(self, key: str) -> str: ...

    def part_url(
        self, key: str, upload_id: str, number: int, sha256_b64: str, expires_in: int
    ) -> tuple[str, dict[str, str]]: ...

    def multipart_parts(self, key: str, upload_id: str) -> dict[int, dict[str, Any]] | None: ...

    def complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None: ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...

    def staged_size(self, key: str) -> int | None:
        """Size of the whole staged object a completed multipart upload left, if any."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad storage key {key!r}")
    if key.endswith(LOCK_SUFFIX):
        raise ValueError(f"storage key {key!r} ends like a seal record")
    return key


LOCK_SUFFIX = ".lock"


class StoreReader(io.RawIOBase):
    """A seekable read-only file over ``store.read`` with read-ahead (for PyAV)."""

    def __init__(self, store: Store, key: str, size: int, block: int = 4 * READ_CHUNK) -> None:
        self._store, self._key, self._size, self._block = store, key, size, block
        self._pos = 0
        self._cache_start = 0
        self._cache = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        inside = self._cache_start <= self._pos < self._cache_start + len(self._cache)
        if not inside:
            end = min(self._size, self._pos + max(self._block, len(buffer)))
            self._cache = b"".join(self._store.read(self._key, self._pos, end))
            self._cache_start = self._pos
        at = self._pos - self._cache_start
        piece = self._cache[at : at + len(buffer)]
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


def open_store(settings: Settings) -> Store:
    """The store the settings name; S3 credentials come from boto3's usual sources."""
    if settings.media_storage == "filesystem":
        from media.storage.filesystem import FilesystemStore

        return FilesystemStore(settings.resolved_media_dir)
    if settings.media_storage == "s3":
        from media.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    raise ValueError(f"unknown media_storage {settings.media_storage!r} (filesystem or s3)")
