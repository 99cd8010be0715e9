"""S3 store (boto3), for the scaled deployment (DESIGN.md §3).

A staged object is kept as numbered part objects ``<key>.parts/NNNNNN`` of exactly
``part_bytes`` each but the last, so any instance can append to it, re-read what was committed
(S3 cannot read the parts of an unfinished multipart upload) and overwrite what an uncommitted
attempt left. ``finalize`` assembles the parts server-side with a multipart upload of
UploadPartCopy calls: no byte goes through us again. Where the bucket has Object Lock, ``lock``
sets a retention date and, for permanent evidence, a legal hold; S3 itself then refuses changes.

Direct uploads (media.ingest.direct) skip us for the bytes: a multipart upload whose parts the
terminal PUTs through presigned URLs, completed here into a whole staged object, which
``finalize`` then copies server-side like the part objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from media.storage import (
    LOCK_SUFFIX,
    READ_CHUNK,
    ObjectLocked,
    ObjectMissing,
    Seal,
    StorageUnavailable,
    check_key,
)
from server.core.settings import Settings

MIN_PART = 5 * 1024 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _S3Appender:
    def __init__(self, store: S3Store, key: str, offset: int) -> None:
        self._store, self._key = store, key
        size = store.part_bytes
        self._first = self._number = offset // size + 1
        keep = offset % size
        # The committed head of the part being filled; put back as it was on abort.
        self._original = store._read_part(key, self._first, 0, keep) if keep else b""
        self._buffer = bytearray(self._original)
        self._put: list[int] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        size = self._store.part_bytes
        while len(self._buffer) >= size:
            self._store._put_part(self._key, self._number, bytes(self._buffer[:size]))
            self._put.append(self._number)
            del self._buffer[:size]
            self._number += 1

    def commit(self) -> None:
        if self._buffer and (
            self._number != self._first or len(self._buffer) > len(self._original)
        ):
            self._store._put_part(self._key, self._number, bytes(self._buffer))
        self._buffer.clear()

    def abort(self) -> None:
        for number in self._put:
            if number == self._first and self._original:
                self._store._put_part(self._key, number, self._original)
            else:
                self._store._delete_versions(self._store._part_key(self._key, number))
        self._buffer.clear()


class S3Store:
    backend = "s3"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        part_bytes: int = 8 * 1024 * 1024,
        lock_mode: str = "COMPLIANCE",
    ) -> None:
        if part_bytes < MIN_PART:
            raise ValueError(f"S3 parts must be at least {MIN_PART} bytes")
        if lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ValueError("lock mode is COMPLIANCE or GOVERNANCE")
        self.client, self.bucket = client, bucket
        self.part_bytes, self.lock_mode = part_bytes, lock_mode
        self._object_lock: bool | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.media_s3_bucket:
            raise ValueError("media_storage is s3 but media_s3_bucket is empty")
        client = boto3.client(
            "s3",
            endpoint_url=settings.media_s3_endpoint_url or None,
            region_name=settings.media_s3_region,
            # SigV4: presigned part URLs sign the x-amz-checksum-sha256 header.
            config=Config(
                signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}
            ),
        )
        return cls(
            client,
            settings.media_s3_bucket,
            part_bytes=settings.media_s3_part_bytes,
            lock_mode=settings.media_s3_lock_mode,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ObjectMissing(key=kwargs.get("Key", "")) from exc
            if _code(exc) == "AccessDenied" and operation.startswith("delete"):
                raise ObjectLocked(key=kwargs.get("Key", "")) from exc
            raise StorageUnavailable(operation=operation, error=_code(exc)) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(operation=operation) from exc

    def _part_key(self, key: str, number: int) -> str:
        return f"{key}.parts/{number:06d}"

    def _put_part(self, key: str, number: int, data: bytes) -> None:
        self._call("put_object", Key=self._part_key(key, number), Body=data)

    def _read_part(self, key: str, number: int, start: int, end: int) -> bytes:
        body = self._call(
            "get_object", Key=self._part_key(key, number), Range=f"bytes={start}-{end - 1}"
        )["Body"].read()
        if len(body) != end - start:
            raise ObjectMissing("已接收的数据在存储中不完整", key=key, part=number)
        return body

    def _part_sizes(self, key: str) -> dict[int, int]:
        sizes: dict[int, int] = {}
        prefix = f"{key}.parts/"
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    sizes[int(item["Key"][len(prefix) :])] = item["Size"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(operation="list_objects_v2") from exc
        return sizes

    def _delete_versions(self, key: str) -> None:
        """Delete every version of exactly `key` (versioned Object Lock buckets keep them)."""
        paginator = self.client.get_paginator("list_object_versions")
        found = False
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] == key:
                    found = True
                    self._call("delete_object", Key=key, VersionId=item["VersionId"])
        if not found:
            self._call("delete_object", Key=key)

    def _delete_parts(self, key: str) -> None:
        for number in self._part_sizes(key):
            self._delete_versions(self._part_key(key, number))

    def _final_size(self, key: str) -> int | None:
        try:
            return int(self._call("head_object", Key=key)["ContentLength"])
        except ObjectMissing:
            return None

    def has_object_lock(self) -> bool:
        if self._object_lock is None:
            try:
                config = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._object_lock = enabled == "Enabled"
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise StorageUnavailable(operation="get_object_lock_configuration") from exc
                self._object_lock = False
        return self._object_lock

    # -- the interface -------------------------------------------------------------------------

    def create(self, key: str) -> None:
        check_key(key)
        if self.seal_of(key) is not None:
            raise ObjectLocked(key=key)
        self._delete_parts(key)

    def append(self, key: str, offset: int) -> _S3Appender:
        check_key(key)
        return _S3Appender(self, key, offset)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_key(key)
        final = self._final_size(key)
        if final is not None:
            end = final if end is None else end
            if start < end:
                body = self._call("get_object", Key=key, Range=f"bytes={start}-{end - 1}")["Body"]
                try:
                    yield from body.iter_chunks(READ_CHUNK)
                finally:
                    body.close()
            return
        if end is None:
            sizes = self._part_sizes(key)
            if not sizes:
                raise ObjectMissing(key=key)
            end = (max(sizes) - 1) * self.part_bytes + sizes[max(sizes)]
        size = self.part_bytes
        at = start
        while at < end:
            number, inside = at // size + 1, at % size
            stop = min(size, inside + READ_CHUNK, inside + end - at)
            yield self._read_part(key, number, inside, stop)
            at += stop - inside

    def finalize(self, key: str, final_key: str, size: int) -> None:
        check_key(key)
        check_key(final_key)
        if self._final_size(final_key) == size:
            self._delete_versions(key)  # finalized before; a retry cleans up what is left
            self._delete_parts(key)
            return
        count = -(-size // self.part_bytes)
        # A direct upload left one whole object; a tus upload left part objects.
        whole = self._final_size(key) is not None
        sizes = {} if whole else self._part_sizes(key)
        for number in range(1, count + 1):
            want = min(self.part_bytes, size - (number - 1) * self.part_bytes)
            if not whole and sizes.get(number, 0) < want:
                raise ObjectMissing("已接收的数据在存储中不完整", key=key, part=number)
        if count == 0:
            self._call("put_object", Key=final_key, Body=b"")
            return
        upload = self._call("create_multipart_upload", Key=final_key)["UploadId"]
        try:
            parts = []
            for number in range(1, count + 1):
                start = (number - 1) * self.part_bytes
                want = min(self.part_bytes, size - start)
                source, first = (key, start) if whole else (self._part_key(key, number), 0)
                copied = self._call(
                    "upload_part_copy",
                    Key=final_key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceRange=f"bytes={first}-{first + want - 1}",
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self._call(
                "complete_multipart_upload",
                Key=final_key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=final_key, UploadId=upload)
            raise
        if whole:
            self._delete_versions(key)
        self._delete_parts(key)

    def lock(self, key: str, retain_until: dt.datetime, *, legal_hold: bool = False) -> Seal:
        check_key(key)
        if self._final_size(key) is None:
            raise ObjectMissing(key=key)
        enforced = "s3-object-lock" if self.has_object_lock() else ""
        current = self.seal_of(key)
        seal = (
            current.merged(retain_until, legal_hold)
            if current
            else Seal(retain_until=retain_until, legal_hold=legal_hold, enforced_by=enforced)
        )
        if enforced:
            self._call(
                "put_object_retention",
                Key=key,
                Retention={"Mode": self.lock_mode, "RetainUntilDate": seal.retain_until},
            )
            if seal.legal_hold:
                self._call("put_object_legal_hold", Key=key, LegalHold={"Status": "ON"})
        self._call("put_object", Key=key + LOCK_SUFFIX, Body=msgspec.json.encode(seal))
        return seal

    def seal_of(self, key: str) -> Seal | None:
        try:
            body = self._call("get_object", Key=key + LOCK_SUFFIX)["Body"].read()
        except ObjectMissing:
            return None
        return msgspec.json.decode(body, type=Seal)

    def delete(self, key: str, *, now: dt.datetime) -> None:
        check_key(key)
        seal = self.seal_of(key)
        if seal is not None and seal.holds(now):
            raise ObjectLocked(key=key, retain_until=seal.retain_until.isoformat())
        self._delete_parts(key)
        self._delete_versions(key)
        if seal is not None:
            self._delete_versions(key + LOCK_SUFFIX)

    # -- direct uploads: the terminal sends the parts of a multipart upload itself --------------

    def begin_multipart(self, key: str) -> str:
        """A multipart upload at the staged key whose parts carry SHA-256 checksums."""
        check_key(key)
        return str(
            self._call("create_multipart_upload", Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
        )

    def part_url(
        self, key: str, upload_id: str, number: int, sha256_b64: str, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """A presigned PUT of one part and the headers it must carry: S3 refuses a body whose
        SHA-256 differs from the signed ``x-amz-checksum-sha256``."""
        url = self.client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": check_key(key),
                "UploadId": upload_id,
                "PartNumber": number,
                "ChecksumSHA256": sha256_b64,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url, {"x-amz-checksum-sha256": sha256_b64}

    def multipart_parts(self, key: str, upload_id: str) -> dict[int, dict[str, Any]] | None:
        """Part number -> S3's listing (Size, ETag, ChecksumSHA256); None if the upload is gone."""
        parts: dict[int, dict[str, Any]] = {}
        marker = 0
        while True:
            try:
                page = self._call(
                    "list_parts", Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            except StorageUnavailable as exc:
                if exc.data.get("error") == "NoSuchUpload":
                    return None
                raise
            for part in page.get("Parts", []):
                parts[int(part["PartNumber"])] = part
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])

    def complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        listed = [
            {
                "PartNumber": part["PartNumber"],
                "ETag": part["ETag"],
                **({"ChecksumSHA256": part["ChecksumSHA256"]} if "ChecksumSHA256" in part else {}),
            }
            for part in parts
        ]
        self._call(
            "complete_multipart_upload",
            Key=check_key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._call("abort_multipart_upload", Key=check_key(key), UploadId=upload_id)
        except StorageUnavailable as exc:
            if exc.data.get("error") != "NoSuchUpload":
                raise

    def staged_size(self, key: str) -> int | None:
        return self._final_size(check_key(key))
