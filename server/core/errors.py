"""The one error hierarchy of zhifa.

Every error carries a stable machine ``code``, an HTTP ``status`` and a Chinese ``message`` meant for
the person who reads it (officer, reviewer, party or public), plus optional structured ``data``.
They are rendered as problem+json in exactly one place: ``server.app.problems``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ZhifaError(Exception):
    """Base of every error we raise on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "服务器内部错误"

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.message = message or self.title
        self.data = data
        super().__init__(self.message)


class BadRequest(ZhifaError):
    code = "bad_request"
    status = 400
    title = "请求有误"


class ValidationFailed(ZhifaError):
    code = "validation_failed"
    status = 422
    title = "数据校验未通过"


class NotAuthenticated(ZhifaError):
    code = "not_authenticated"
    status = 401
    title = "请先登录"


class PermissionDenied(ZhifaError):
    code = "permission_denied"
    status = 403
    title = "没有权限执行此操作"


class NotFound(ZhifaError):
    code = "not_found"
    status = 404
    title = "未找到"


class Conflict(ZhifaError):
    code = "conflict"
    status = 409
    title = "与现有数据冲突"


class Locked(ZhifaError):
    code = "locked"
    status = 423
    title = "资源正被占用，请稍后重试"


class TooManyRequests(ZhifaError):
    code = "rate_limited"
    status = 429
    title = "请求过于频繁，请稍后再试"


class ServiceUnavailable(ZhifaError):
    code = "service_unavailable"
    status = 503
    title = "服务暂不可用"
