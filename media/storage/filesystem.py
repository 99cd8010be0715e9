"""Local filesystem store: one file per object under a root directory.

Staged objects are plain files written at the committed offset and fsynced on commit. Finalizing
renames the file to its final key (same filesystem, atomic) and makes it read-only; the seal
record sits next to it as ``<key>.lock``.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from media.storage import (
    LOCK_SUFFIX,
    READ_CHUNK,
    ObjectLocked,
    ObjectMissing,
    Seal,
    StorageUnavailable,
    check_key,
)

READ_ONLY = stat.S_IRUSR | stat.S_IRGRP


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileAppender:
    def __init__(self, file: BinaryIO, offset: int) -> None:
        self._file, self._offset = file, offset

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:  # a full or failing disk: the caller aborts, the client retries
            raise StorageUnavailable("媒体存储写入失败", error=exc.strerror) from exc

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fdatasync(self._file.fileno())
        except OSError as exc:
            raise StorageUnavailable("媒体存储写入失败", error=exc.strerror) from exc
        self._file.close()

    def abort(self) -> None:
        self._file.truncate(self._offset)
        self._file.close()


class FilesystemStore:
    backend = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _seal_path(self, key: str) -> Path:
        return self._path(key).with_name(Path(key).name + LOCK_SUFFIX)

    def create(self, key: str) -> None:
        path = self._path(key)
        if self.seal_of(key) is not None:
            raise ObjectLocked(key=key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as file:
            os.fdatasync(file.fileno())
        _fsync_dir(path.parent)

    def append(self, key: str, offset: int) -> _FileAppender:
        path = self._path(key)
        if self.seal_of(key) is not None:
            raise ObjectLocked(key=key)
        try:
            file = open(path, "r+b")  # noqa: SIM115 - closed by commit() or abort()
        except FileNotFoundError as exc:
            raise ObjectMissing(key=key) from exc
        size = os.fstat(file.fileno()).st_size
        if size < offset:
            file.close()
            raise ObjectMissing("已接收的数据在存储中不完整", key=key, size=size, offset=offset)
        # Bytes past the committed offset are left from an attempt that was never committed.
        file.truncate(offset)
        file.seek(offset)
        return _FileAppender(file, offset)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            file = open(self._path(key), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise ObjectMissing(key=key) from exc
        with file:
            file.seek(start)
            remaining = (end - start) if end is not None else None
            while remaining is None or remaining > 0:
                block = file.read(READ_CHUNK if remaining is None else min(READ_CHUNK, remaining))
                if not block:
                    if remaining:
                        raise ObjectMissing("媒体对象比预期短", key=key)
                    return
                if remaining is not None:
                    remaining -= len(block)
                yield block

    def finalize(self, key: str, final_key: str, size: int) -> None:
        staged, final = self._path(key), self._path(final_key)
        if final.exists() and not staged.exists():
            if final.stat().st_size != size:
                raise ObjectMissing("已定稿的媒体对象大小不符", key=final_key)
            return  # finalized before; this is a retry
        try:
            actual = staged.stat().st_size
        except FileNotFoundError as exc:
            raise ObjectMissing(key=key) from exc
        if actual < size:
            raise ObjectMissing("已接收的数据在存储中不完整", key=key, size=actual, expected=size)
        if actual > size:
            os.truncate(staged, size)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged, READ_ONLY)
        os.replace(staged, final)
        _fsync_dir(final.parent)
        _fsync_dir(staged.parent)

    def lock(self, key: str, retain_until: dt.datetime, *, legal_hold: bool = False) -> Seal:
        path = self._path(key)
        if not path.exists():
            raise ObjectMissing(key=key)
        current = self.seal_of(key)
        seal = (
            current.merged(retain_until, legal_hold)
            if current
            else Seal(
                retain_until=retain_until, legal_hold=legal_hold, enforced_by="read-only-file"
            )
        )
        os.chmod(path, READ_ONLY)
        record = self._seal_path(key)
        tmp = record.with_name(record.name + ".tmp")
        tmp.write_bytes(msgspec.json.encode(seal))
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, record)
        _fsync_dir(record.parent)
        return seal

    def seal_of(self, key: str) -> Seal | None:
        try:
            return msgspec.json.decode(self._seal_path(key).read_bytes(), type=Seal)
        except FileNotFoundError:
            return None

    def delete(self, key: str, *, now: dt.datetime) -> None:
        seal = self.seal_of(key)
        if seal is not None and seal.holds(now):
            raise ObjectLocked(key=key, retain_until=seal.retain_until.isoformat())
        self._path(key).unlink(missing_ok=True)
        self._seal_path(key).unlink(missing_ok=True)
