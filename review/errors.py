"""Errors of the review area; rendered to problem+json by server.app.problems like every ZhifaError."""

from __future__ import annotations

from server.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed


class ReviewNotFound(NotFound):
    code = "review_not_found"
    title = "没有该案件的法制审核记录"


class ReviewStateConflict(Conflict):
    code = "review_state_conflict"
    title = "当前审核状态下不能进行此操作"


class ConflictOfInterest(PermissionDenied):
    """审执分离: whoever acted on the case, or submitted it, never reviews it."""

    code = "review_conflict_of_interest"
    title = "审核人员不得审核本人承办的案件"


class NotOnCase(PermissionDenied):
    code = "review_not_handler"
    title = "只有本案承办人员或本机关管理员可以办理"


class ChecklistIncomplete(ValidationFailed):
    code = "review_checklist_incomplete"
    title = "审核要点未填写完整"


class RuleFileInvalid(ValidationFailed):
    code = "review_rule_file_invalid"
    title = "目录清单或裁量基准文件有误"
