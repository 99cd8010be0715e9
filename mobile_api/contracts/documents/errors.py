"""Why a document cannot be made. These run on terminals, so they are not server errors; the server
turns each into a 422 problem with the same ``code`` (mobile_api.documents.errors)."""

from __future__ import annotations

from typing import Any, ClassVar


class DocumentError(ValueError):
    """Base: a stable ``code``, a Chinese ``title`` and a Chinese ``message`` for the officer."""

    code: ClassVar[str] = "document_invalid"
    title: ClassVar[str] = "无法生成文书"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class TemplateRejected(DocumentError):
    """A template file that must not be loaded (malformed, or missing a legally required part)."""

    code = "document_template_invalid"
    title = "文书模板无效"


class RulesRejected(DocumentError):
    """An agency rules file that must not be loaded."""

    code = "document_rules_invalid"
    title = "处罚规则文件无效"


class FactsIncomplete(DocumentError):
    """The facts lack something this kind of document must state."""

    code = "document_facts_incomplete"
    title = "文书内容不完整"


class ProcedureRefused(DocumentError):
    """The law does not allow this document for these facts (simple procedure, hearing, timing)."""

    code = "document_procedure_refused"
    title = "不符合法定程序"


class UnprintableText(DocumentError):
    """A character none of the document fonts can draw: printing it would leave a blank box."""

    code = "document_unprintable_text"
    title = "文书含有无法打印的字符"


class FontMissing(DocumentError):
    code = "document_font_missing"
    title = "缺少文书字体"


class NumbersExhausted(DocumentError):
    """No number left on the terminal for that year: sync to fetch a new block."""

    code = "document_numbers_exhausted"
    title = "文书编号已用完"


class NumberBlockRejected(DocumentError):
    """A number block the terminal must not take (overlapping, or already used)."""

    code = "document_number_block_invalid"
    title = "文书编号号段无效"
