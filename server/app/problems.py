"""The one place where errors become HTTP responses: RFC 9457 problem+json with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from server.core.db import DatabaseBusy, DatabaseUnavailable, unavailable
from server.core.errors import ZhifaError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("zhifa")

# Framework errors keep their status; we give them a stable code and a Chinese message.
_FRAMEWORK: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求有误"),
    401: ("not_authenticated", "请先登录"),
    403: ("permission_denied", "没有权限执行此操作"),
    404: ("not_found", "未找到"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("payload_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持该内容类型"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
}


def problem(
    status: int, code: str, title: str, detail: str, **data: Any
) -> Response[dict[str, Any]]:
    body = {"type": f"urn:zhifa:problem:{code}", "title": title, "status": status, "code": code}
    body["detail"] = detail
    body.update(data)
    headers = {"Retry-After": "5"} if status in (423, 429, 503) else None
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def zhifa_error(_: Request[Any, Any, Any], exc: ZhifaError) -> Response[dict[str, Any]]:
    return problem(exc.status, exc.code, exc.title, exc.message, **exc.data)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code, title = _FRAMEWORK.get(exc.status_code, ("http_error", "请求无法处理"))
    data: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        data["errors"] = exc.extra
    detail = title if exc.status_code >= 500 else f"{title}：{exc.detail}" if exc.detail else title
    if isinstance(exc, NotFoundException | MethodNotAllowedException | NotAuthorizedException):
        detail = title
    if isinstance(exc, PermissionDeniedException):
        detail = title
    return problem(exc.status_code, code, title, detail, **data)


def database_unavailable(
    request: Request[Any, Any, Any], exc: DBAPIError
) -> Response[dict[str, Any]]:
    if unavailable(exc):
        log.warning("database unavailable: %s", exc)
        return zhifa_error(request, DatabaseUnavailable())
    return internal_error(request, exc)


def database_busy(request: Request[Any, Any, Any], exc: PoolTimeout) -> Response[dict[str, Any]]:
    log.warning("database busy: %s", exc)
    return zhifa_error(request, DatabaseBusy())


def internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "服务器内部错误", "服务器内部错误，请稍后重试")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ZhifaError: zhifa_error,
    HTTPException: http_error,
    DBAPIError: database_unavailable,
    PoolTimeout: database_busy,  # no pooled connection came free in time
    Exception: internal_error,
}
