"""Document templates: TOML files per agency and kind, versioned by their SHA-256.

An agency changes the wording without a code change; it cannot drop what the law requires. Every
template is checked when loaded: a template missing a required part (the 陈述、申辩 right, the
hearing right in a paragraph printed only when it applies, the reconsideration and lawsuit rights,
the payment terms ...) is refused, naming the part in Chinese.

A template is a title, a 文书代字 for the document number, and blocks:

* ``text = "…{占位符}…"``: a paragraph (``indent`` = first-line indent of two characters,
  ``align`` = left / center / right);
* ``row = "标签"`` with ``text``: a row of a ruled table (consecutive rows form one table);
* ``party = true``: the party's particulars as a table (person or organisation);

each with an optional ``when = "条件"``: the block is printed only when the condition holds.
Placeholders are filled by ``compose`` from the facts, the rules and the calendar; ``{{`` and ``}}``
are literal braces. Which placeholders and conditions a kind offers is fixed in ``VOCABULARY`` and
``CONDITIONS``; anything else is refused, so a typo cannot silently print nothing.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from mobile_api.contracts.documents.errors import TemplateRejected
from mobile_api.contracts.documents.facts import DOCUMENT_KINDS, KIND_LABELS, DocumentKind

TEMPLATE_DIR = Path(__file__).with_name("templates")
# "{{" and "}}" are literal braces; "{name}" is a placeholder.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")

ALL = frozenset(DOCUMENT_KINDS)
CASE = frozenset({"rights_notice", "onsite_decision", "penalty_decision", "hearing_notice"})
DECISIONS = frozenset({"onsite_decision", "penalty_decision"})
NOTICE = frozenset({"rights_notice"})
ONSITE = frozenset({"onsite_decision"})
DECISION = frozenset({"penalty_decision"})
HEARING = frozenset({"hearing_notice"})
SERVICE = frozenset({"service_receipt"})

# Placeholder → the kinds that offer it. What each one prints is defined in ``compose``.
VOCABULARY: dict[str, frozenset[str]] = {
    "机关名称": ALL,
    "机关地址": ALL,
    "机关电话": ALL,
    "文书编号": ALL,
    "案号": ALL,
    "案由": ALL,
    "执法类别": ALL,
    "当事人": ALL,
    "执法人员": ALL,
    "落款日期": ALL,
    "违法事实": CASE,
    "证据": CASE,
    "违反规定": CASE,
    "处罚依据": CASE,
    "处罚内容": CASE,
    "执法地点": CASE,
    "执法时间": ONSITE,
    "陈述申辩期限": NOTICE,
    "陈述申辩截止日期": NOTICE,
    "听证申请期限": NOTICE,
    "听证申请截止日期": NOTICE,
    "复议期限": NOTICE | DECISIONS,
    "诉讼期限": NOTICE | DECISION,
    "复议机关": NOTICE | DECISIONS,
    "人民法院": NOTICE | DECISION,
    "复议截止日期": DECISIONS,
    "诉讼截止日期": DECISION,
    "复议前置依据": ONSITE,
    "陈述申辩情况": DECISIONS,
    "告知书编号": DECISION | HEARING,
    "告知书送达日期": DECISION | HEARING,
    "罚款金额": DECISIONS,
    "缴款期限": DECISIONS,
    "缴款截止日期": DECISIONS,
    "缴款账户": DECISIONS,
    "加处罚款比例": DECISIONS,
    "加处罚款起算日期": DECISIONS,
    "加处罚款上限": DECISIONS,
    "听证时间": HEARING,
    "听证地点": HEARING,
    "听证主持人": HEARING,
    "听证记录员": HEARING,
    "听证申请日期": HEARING,
    "送达文书": SERVICE,
    "送达文书编号": SERVICE,
    "受送达人": SERVICE,
    "送达方式": SERVICE,
    "送达地点": SERVICE,
    "送达日期": SERVICE,
    "受送达人签名": SERVICE,
    "留置送达情况": SERVICE,
    "见证人": SERVICE,
    "音像记录": SERVICE,
    "送达人": SERVICE,
}

# Condition → the kinds that offer it.
CONDITIONS: dict[str, frozenset[str]] = {
    "听证权利": NOTICE,  # the proposed penalty gives the hearing right (第63条)
    "罚款": CASE,
    "没收": CASE,
    "有证据": CASE,
    "银行缴款": DECISIONS,  # a fine paid at the bank within 15 days
    "当场收缴": ONSITE,  # a fine collected on the spot (第68条)
    "当事人申请听证": HEARING,
    "已签收": SERVICE,
    "留置送达": SERVICE,
}


class RequiredPart(msgspec.Struct, frozen=True):
    """A legally required part: some block (with exactly condition ``when``) holds all of it."""

    name: str
    placeholders: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    when: str = ""


_P = RequiredPart
REQUIRED: dict[str, tuple[RequiredPart, ...]] = {
    # 第44条: content, facts, grounds, basis and rights; 第45条, 第63条, 第64条.
    "rights_notice": (
        _P("拟作出的行政处罚内容", ("处罚内容",)),
        _P("违法事实", ("违法事实",)),
        _P("处罚理由", ("违反规定",)),
        _P("处罚依据", ("处罚依据",)),
        _P("陈述、申辩权利及期限", ("陈述申辩截止日期",), ("陈述", "申辩")),
        _P("听证权利及申请期限", ("听证申请截止日期",), ("听证",), when="听证权利"),
        _P("行政复议权利", ("复议机关", "复议期限")),
        _P("行政诉讼权利", ("人民法院", "诉讼期限")),
    ),
    # 第52条: act, kind and basis, amount, time, place, remedies, agency; 行政复议法 第23条.
    "onsite_decision": (
        _P("违法事实", ("违法事实",)),
        _P("处罚依据", ("处罚依据",)),
        _P("处罚内容", ("处罚内容",)),
        _P("执法时间、地点", ("执法时间", "执法地点")),
        _P("当场告知陈述、申辩权利", ("陈述申辩情况",), ("陈述", "申辩")),
        _P("缴纳罚款的期限和方式", ("缴款截止日期", "缴款账户"), when="银行缴款"),
        _P("加处罚款", ("加处罚款比例", "加处罚款上限"), when="银行缴款"),
        _P("当场收缴罚款", ("罚款金额",), when="当场收缴"),
        _P("复议前置告知", ("复议前置依据", "复议机关", "复议截止日期"), ("行政复议",)),
    ),
    # 第64条: time, place, host; the rights of the party at the hearing.
    "hearing_notice": (
        _P("听证时间、地点", ("听证时间", "听证地点")),
        _P("听证主持人", ("听证主持人",)),
        _P("申请回避的权利", (), ("回避",)),
        _P("委托代理人的权利", (), ("委托",)),
    ),
    # 第59条, 第67条, 第72条; 行政复议法 第20条; 行政诉讼法 第46条.
    "penalty_decision": (
        _P("违法事实", ("违法事实",)),
        _P("处罚理由", ("违反规定",)),
        _P("处罚依据", ("处罚依据",)),
        _P("处罚内容", ("处罚内容",)),
        _P("陈述、申辩及听证情况", ("陈述申辩情况",)),
        _P("缴纳罚款的期限和方式", ("缴款截止日期", "缴款账户"), when="银行缴款"),
        _P("加处罚款", ("加处罚款比例", "加处罚款起算日期", "加处罚款上限"), when="银行缴款"),
        _P("行政复议权利", ("复议机关", "复议截止日期")),
        _P("行政诉讼权利", ("人民法院", "诉讼截止日期")),
    ),
    # 第61条; 民事诉讼法 第87条, 第89条 (as applied to service of administrative documents).
    "service_receipt": (
        _P("送达文书及文号", ("送达文书", "送达文书编号")),
        _P("受送达人", ("受送达人",)),
        _P("送达方式", ("送达方式",)),
        _P("送达地点", ("送达地点",)),
        _P("送达日期", ("送达日期",)),
        _P("受送达人签收", ("受送达人签名",), when="已签收"),
        _P("留置送达的见证", ("留置送达情况", "见证人"), when="留置送达"),
        _P("送达人", ("送达人",)),
    ),
}


class Block(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str = ""
    row: str = ""
    party: bool = False
    when: str = ""
    indent: bool = True
    align: Literal["left", "center", "right"] = "left"


class _TemplateFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: DocumentKind
    title: str
    code: str  # 文书代字 in the number, e.g. 罚告
    version: str
    footer: str = ""
    officers: bool = True  # a line naming the officers (and their 证号) under the body
    party_sign: bool = False  # a line for the party's signature and date
    seal: bool = True  # the agency's name, seal position and date at the end
    blocks: list[Block]


class Template(msgspec.Struct, frozen=True, kw_only=True):
    """A checked template; ``sha256`` of ``source`` is its identity on terminals and the server."""

    kind: DocumentKind
    title: str
    code: str
    version: str
    footer: str
    officers: bool
    party_sign: bool
    seal: bool
    blocks: tuple[Block, ...]
    sha256: str
    source: str

    @property
    def name(self) -> str:
        return self.kind


def placeholders(text: str) -> list[str]:
    """The placeholders of ``text`` in order."""
    return [m.group(1) for m in _TOKEN.finditer(text) if m.group(1) is not None]


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with every placeholder replaced and literal braces unescaped."""
    return _TOKEN.sub(lambda m: m.group(0)[0] if m.group(1) is None else values[m.group(1)], text)


def _label(kind: str) -> str:
    return f"「{KIND_LABELS[kind]}」模板"


def _check_block(kind: str, index: int, block: Block) -> None:
    where = f"{_label(kind)}第 {index + 1} 段"
    shapes = sum([bool(block.row), block.party, bool(block.text) and not block.row])
    if block.party and (block.text or block.row):
        raise TemplateRejected(f"{where}：party = true 的段落不能同时有 text 或 row")
    if shapes != 1 or (block.row and not block.text):
        raise TemplateRejected(
            f"{where}：须为正文（text）、表格行（row + text）或当事人信息（party）之一"
        )
    for name in placeholders(block.text) + placeholders(block.row):
        kinds = VOCABULARY.get(name)
        if kinds is None:
            raise TemplateRejected(f"{where}：未知的占位符 {{{name}}}", placeholder=name)
        if kind not in kinds:
            raise TemplateRejected(
                f"{where}：占位符 {{{name}}} 不适用于{KIND_LABELS[kind]}", placeholder=name
            )
    if block.when:
        kinds = CONDITIONS.get(block.when)
        if kinds is None or kind not in kinds:
            offered = "、".join(c for c, ks in CONDITIONS.items() if kind in ks) or "无"
            raise TemplateRejected(
                f'{where}：未知的条件 when = "{block.when}"（可用：{offered}）',
                condition=block.when,
            )
    stray = _TOKEN.sub("", block.text + block.row)
    if "{" in stray or "}" in stray:
        raise TemplateRejected(f"{where}：花括号不成对（字面花括号请写作 {{{{ 和 }}}}）")


def _describe(part: RequiredPart) -> str:
    need = [f"{{{p}}}" for p in part.placeholders] + [f"「{k}」" for k in part.keywords]
    where = f'在 when = "{part.when}" 的段落中' if part.when else "在无条件的段落中"
    return f"{part.name}（须{where}包含 {'、'.join(need)}）"


def _check_required(kind: str, blocks: list[Block]) -> None:
    missing: list[RequiredPart] = []
    for part in REQUIRED[kind]:
        held = any(
            block.when == part.when
            and set(part.placeholders) <= set(placeholders(block.text))
            and all(k in block.text for k in part.keywords)
            for block in blocks
        )
        if not held:
            missing.append(part)
    if missing:
        raise TemplateRejected(
            f"{_label(kind)}缺少法定内容：{'；'.join(_describe(p) for p in missing)}",
            missing=[p.name for p in missing],
        )
    # the hearing paragraph printed to everyone would promise a right the party may not have
    for block in blocks:
        if "听证申请截止日期" in placeholders(block.text) and block.when != "听证权利":
            raise TemplateRejected(
                f'{_label(kind)}：含 {{听证申请截止日期}} 的段落须设置 when = "听证权利"，'
                "只在拟作出的处罚依法应当告知听证权利时印出"
            )


def parse_template(text: str, kind: str | None = None) -> Template:
    """Parse and check one template file; ``kind``, when given, must match the file's."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateRejected(f"文书模板不是有效的 TOML：{exc}") from None
    try:
        doc = msgspec.convert(raw, _TemplateFile)
    except msgspec.ValidationError as exc:
        raise TemplateRejected(f"文书模板内容有误：{exc}") from None
    if kind is not None and doc.kind != kind:
        raise TemplateRejected(
            f"模板种类为 {doc.kind}，不是所需的 {kind}", expected=kind, actual=doc.kind
        )
    for field, value in (("title", doc.title), ("code", doc.code), ("version", doc.version)):
        if not value.strip():
            raise TemplateRejected(f"{_label(doc.kind)}缺少 {field}")
    if not doc.blocks:
        raise TemplateRejected(f"{_label(doc.kind)}没有任何段落")
    for index, block in enumerate(doc.blocks):
        _check_block(doc.kind, index, block)
    _check_required(doc.kind, doc.blocks)
    return Template(
        kind=doc.kind,
        title=doc.title,
        code=doc.code,
        version=doc.version,
        footer=doc.footer,
        officers=doc.officers,
        party_sign=doc.party_sign,
        seal=doc.seal,
        blocks=tuple(doc.blocks),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        source=text,
    )


def default_template_text(kind: str) -> str:
    if kind not in ALL:
        raise TemplateRejected(f"没有这种文书：{kind}", kind=kind)
    return (TEMPLATE_DIR / f"{kind}.toml").read_text(encoding="utf-8")


def load_templates(override_dir: str | Path | None = None) -> dict[str, Template]:
    """Every kind's template: ``<override_dir>/<kind>.toml`` where present, else the default."""
    out: dict[str, Template] = {}
    for kind in DOCUMENT_KINDS:
        path = Path(override_dir) / f"{kind}.toml" if override_dir is not None else None
        if path is not None and path.exists():
            try:
                out[kind] = parse_template(path.read_text(encoding="utf-8"), kind)
            except TemplateRejected as exc:
                raise TemplateRejected(
                    f"{path.name}：{exc.message}", file=path.name, **exc.data
                ) from exc
        else:
            out[kind] = parse_template(default_template_text(kind), kind)
    return out
