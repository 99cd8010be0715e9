"""tus 1.0.0 (https://tus.io/protocols/resumable-upload): headers, parsing and protocol errors.

Extensions: creation, creation-with-upload, expiration, checksum (sha1, which the protocol
requires, and sha256), termination.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import format_datetime
from typing import Any

import msgspec

from server.core.errors import BadRequest, Conflict, Locked, NotFound, ZhifaError

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


class TusVersionUnsupported(ZhifaError):
    code = "tus_version_unsupported"
    status = 412
    title = "不支持的 tus 协议版本（需要 1.0.0）"


class ChecksumMismatch(ZhifaError):
    code = "checksum_mismatch"
    status = 460
    title = "数据校验和不符，本段数据未保存，请重新发送"


class ChecksumUnsupported(BadRequest):
    code = "checksum_algorithm_unsupported"
    title = "不支持的校验算法（支持 sha1、sha256）"


class BadTusHeader(BadRequest):
    code = "tus_header_invalid"
    title = "tus 请求头有误"


class OffsetMismatch(Conflict):
    code = "upload_offset_mismatch"
    title = "上传偏移量与服务器记录不符，请先查询当前偏移量"


class UploadBusy(Locked):
    code = "upload_busy"
    title = "该上传正在被另一个请求写入，请稍后重试"


class UploadNotFound(NotFound):
    code = "upload_not_found"
    title = "上传不存在或已终止"


class UploadGone(ZhifaError):
    code = "upload_gone"
    status = 410
    title = "上传已过期或已失效，请重新开始上传"


class UploadTooLarge(ZhifaError):
    code = "upload_too_large"
    status = 413
    title = "上传内容超出声明的长度或允许的上限"


class WrongContentType(ZhifaError):
    code = "unsupported_media_type"
    status = 415
    title = f"上传数据的 Content-Type 应为 {OFFSET_CONTENT_TYPE}"


class Checksum(msgspec.Struct, frozen=True):
    algorithm: str
    digest: bytes

    def hasher(self) -> Any:
        return hashlib.new(self.algorithm)


def require_version(headers: MutableMapping[str, str] | Any) -> None:
    if headers.get("tus-resumable") != VERSION:
        raise TusVersionUnsupported(supported=VERSION)


def parse_length(value: str | None, name: str) -> int:
    if value is None or not value.isdigit():
        raise BadTusHeader(f"缺少或无效的 {name} 请求头", header=name)
    return int(value)


def parse_metadata(header: str | None) -> dict[str, str]:
    """``key base64,key2 base64`` → dict; values must be UTF-8 text here."""
    metadata: dict[str, str] = {}
    if not header or not header.strip():
        return metadata
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key or key in metadata or " " in value.strip():
            raise BadTusHeader("Upload-Metadata 格式不正确", header="Upload-Metadata")
        try:
            metadata[key] = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadTusHeader(
                f"Upload-Metadata 中 {key} 的值不是 Base64 编码的文本", header="Upload-Metadata"
            ) from exc
    return metadata


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


def parse_checksum(header: str | None) -> Checksum | None:
    if not header:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ChecksumUnsupported(algorithm=algorithm, supported=list(CHECKSUM_ALGORITHMS))
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise BadTusHeader("Upload-Checksum 的值不是 Base64", header="Upload-Checksum") from exc
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise BadTusHeader("Upload-Checksum 的长度与算法不符", header="Upload-Checksum")
    return Checksum(algorithm, digest)


def http_date(at: dt.datetime) -> str:
    return format_datetime(at.astimezone(dt.UTC), usegmt=True)


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def resumable_header(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: every response of the tus routes, errors included, names the protocol."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_version(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"tus-resumable", VERSION.encode()),
                    (b"tus-version", VERSION.encode()),
                ]
            await send(message)

        await app(scope, receive, send_with_version)

    return middleware
