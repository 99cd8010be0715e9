"""The server's refusals for documents, as problem+json (rendered in server.app.problems)."""

from __future__ import annotations

from mobile_api.contracts.documents import errors as contract
from server.core.errors import Conflict, PermissionDenied, ValidationFailed, ZhifaError


class TerminalRequired(PermissionDenied):
    code = "terminal_required"
    title = "须在已注册的执法终端上操作"


class DocumentMismatch(ValidationFailed):
    code = "document_mismatch"
    title = "服务器重新生成的文书与终端提交的不一致"


class NumberNotIssued(ValidationFailed):
    code = "document_number_not_issued"
    title = "文书编号不属于本终端领取的号段"


class TemplateUnknown(ValidationFailed):
    code = "document_template_unknown"
    title = "服务器上没有该版本的文书模板或规则"


class NumberTaken(Conflict):
    code = "document_number_taken"
    title = "该文书编号已登记为另一份文书"


def _mapped(cls: type[contract.DocumentError]) -> type[ValidationFailed]:
    return type(cls.__name__, (ValidationFailed,), {"code": cls.code, "title": cls.title})


# Each refusal of the shared document code keeps its code and title as a 422 problem.
_REFUSALS = {
    cls: _mapped(cls)
    for cls in (
        contract.DocumentError,
        contract.TemplateRejected,
        contract.RulesRejected,
        contract.FactsIncomplete,
        contract.ProcedureRefused,
        contract.UnprintableText,
        contract.FontMissing,
        contract.NumbersExhausted,
        contract.NumberBlockRejected,
    )
}


def refused(exc: contract.DocumentError) -> ZhifaError:
    """The server error for a refusal of the shared code (same code, Chinese message, data)."""
    for cls in type(exc).__mro__:
        if cls in _REFUSALS:
            return _REFUSALS[cls](exc.message, **exc.data)
    raise TypeError(type(exc))
