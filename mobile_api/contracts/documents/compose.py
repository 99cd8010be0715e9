"""From facts, template, rules and calendar to the content of one document (before layout).

Here the rules decide (hearing right, simple procedure), the calendar dates every period, and the
law's order of steps is checked: a document the law does not allow for these facts is refused
with the reason, not printed. The result feeds both the on-screen text and the PDF.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import msgspec

from mobile_api.contracts.calendar import WorkingDayCalendar
from mobile_api.contracts.documents import periods
from mobile_api.contracts.documents.errors import FactsIncomplete, ProcedureRefused
from mobile_api.contracts.documents.facts import (
    DocumentFacts,
    Organisation,
    PenaltyItem,
    Person,
    Statement,
)
from mobile_api.contracts.documents.periods import Period, chinese_count
from mobile_api.contracts.documents.rules import (
    CONFISCATION,
    NOT_A_PENALTY,
    AgencyRules,
    RuleOutcome,
    hearing_right,
    simple_procedure,
)
from mobile_api.contracts.documents.templates import Template, fill

RECONSIDERATION_FIRST = "《中华人民共和国行政复议法》第二十三条"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_SIGNATURE_BYTES = 512 * 1024


class Paragraph(msgspec.Struct, frozen=True):
    text: str
    indent: bool = True
    align: str = "left"
    small: bool = False


class Row(msgspec.Struct, frozen=True):
    label: str
    text: str
    image: bytes = b""  # a handwritten signature (PNG), drawn after the text


class Table(msgspec.Struct, frozen=True):
    rows: tuple[Row, ...]


class Composed(msgspec.Struct, frozen=True, kw_only=True):
    """A document's content: what the text and the PDF show, plus what the rules decided."""

    kind: str
    title: str
    agency: str
    number: str
    blocks: tuple[Paragraph | Table, ...]
    officers: str  # the officers line ("" when the template has none)
    party_sign: bool
    seal: bool
    date: str
    footer: str
    periods: dict[str, Period]
    hearing: RuleOutcome
    simple: RuleOutcome | None
    warnings: tuple[str, ...]


# --- printing values ----------------------------------------------------------------------------

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")


def rmb_upper(amount: Decimal) -> str:
    """An amount in 元 in 大写 as on financial documents: 500 → 伍佰元整, 1010.5 → 壹仟零壹拾元伍角."""
    cents = int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if cents < 0:
        raise ValueError("negative amount")
    yuan, rest = divmod(cents, 100)
    jiao, fen = divmod(rest, 10)
    digits = str(yuan)
    if len(digits) > 16:
        raise ValueError("amount too large")
    out: list[str] = []
    zero = False
    for i, ch in enumerate(digits):
        pos = len(digits) - 1 - i
        if ch == "0":
            zero = True
        else:
            if zero and out:
                out.append("零")
            zero = False
            out.append(_DIGITS[int(ch)] + _UNITS[pos % 4])
        if pos % 4 == 0 and pos and int(digits[max(0, i - 3) : i + 1]):
            out.append(_GROUPS[pos // 4])
    text = "".join(out)
    if yuan:
        text += "元"
    if not jiao and not fen:
        return (text or "零元") + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif yuan:
        text += "零"
    if fen:
        text += _DIGITS[fen] + "分"
    return text


def money(amount: Decimal) -> str:
    return (
        f"人民币{rmb_upper(amount)}（￥{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}）"
    )


def cn_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def clock_time(hhmm: str) -> str:
    """``09:30`` → ``9时30分``, ``15:00`` → ``15时``."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return f"{hours}时{minutes}分" if minutes else f"{hours}时"


def _penalty_text(item: PenaltyItem) -> str:
    detail = f"（{item.detail}）" if item.detail else ""
    if item.kind == "罚款":
        return f"罚款{money(item.amount_yuan or Decimal(0))}{detail}"
    if item.kind == "没收违法所得":
        return f"没收违法所得{money(item.amount_yuan or Decimal(0))}{detail}"
    if item.kind == "没收非法财物":
        value = f"，价值{money(item.amount_yuan or Decimal(0))}"
        return f"没收非法财物{detail or ''}{value}"
    return f"{item.kind}{detail}"


def _penalties_text(penalties: list[PenaltyItem]) -> str:
    if len(penalties) == 1:
        return _penalty_text(penalties[0])
    return "；".join(f"{i}. {_penalty_text(p)}" for i, p in enumerate(penalties, 1))


def _officers_text(facts: DocumentFacts) -> str:
    return "、".join(f"{o.name}（执法证号 {o.credential_number}）" for o in facts.officers)


def _party_table(party: Person | Organisation) -> Table:
    if isinstance(party, Person):
        name = f"{party.name}　　性别：{party.gender}" if party.gender else party.name
        rows = [("当事人", name), ("身份证件号码", party.id_number)]
        rows += [("住址", party.address), ("联系电话", party.phone)]
    else:
        rows = [("当事人（名称）", party.name), ("统一社会信用代码", party.credit_code)]
        rows += [("法定代表人（负责人）", party.representative), ("地址", party.address)]
        rows += [("联系电话", party.phone)]
    return Table(tuple(Row(label, value) for label, value in rows if value))


# --- checks -------------------------------------------------------------------------------------


def _require(kind_label: str, **fields: object) -> None:
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise FactsIncomplete(f"{kind_label}缺少：{'、'.join(missing)}", missing=missing)


def _check_amounts(penalties: list[PenaltyItem]) -> None:
    """Amounts are printed in 大写 and compared with thresholds: only real 元 and 分 will do."""
    for item in penalties:
        amount = item.amount_yuan
        if amount is not None and (
            not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01"))
        ):
            raise FactsIncomplete(f"{item.kind}的金额须为不小于零、最多精确到分的数额")


def _check_penalties(label: str, penalties: list[PenaltyItem]) -> Decimal:
    """The total fine; refuses penalties that cannot be printed as stated."""
    if not penalties:
        raise FactsIncomplete(f"{label}缺少：处罚内容", missing=["处罚内容"])
    for item in penalties:
        if item.kind in NOT_A_PENALTY:
            raise FactsIncomplete(f"「{item.kind}」不是行政处罚，应制作不予行政处罚决定书")
        if (item.kind == "罚款" or item.kind in CONFISCATION) and not item.amount_yuan:
            what = "罚款数额" if item.kind == "罚款" else "没收的金额或价值"
            raise FactsIncomplete(f"{label}缺少：{what}", missing=[what])
    return sum((p.amount_yuan or Decimal(0) for p in penalties if p.kind == "罚款"), Decimal(0))


# --- composing ----------------------------------------------------------------------------------


class _Values:
    """Placeholder values and conditions for one document, filled kind by kind."""

    def __init__(self, facts: DocumentFacts) -> None:
        self.values: dict[str, str] = {
            "机关名称": facts.agency.name,
            "机关地址": facts.agency.address,
            "机关电话": facts.agency.phone,
            "文书编号": facts.number,
            "案号": facts.case_number,
            "案由": facts.case_title,
            "执法类别": facts.category,
            "当事人": facts.party.name,
            "执法人员": _officers_text(facts),
            "落款日期": cn_date(facts.issued_on),
            "违法事实": facts.facts,
            "证据": "、".join(facts.evidence),
            "违反规定": facts.grounds,
            "处罚依据": facts.legal_basis,
            "处罚内容": _penalties_text(facts.penalties) if facts.penalties else "",
            "执法地点": facts.place,
        }
        self.conditions: set[str] = set()
        if facts.evidence:
            self.conditions.add("有证据")
        if any(p.kind == "罚款" for p in facts.penalties):
            self.conditions.add("罚款")
        if any(p.kind in CONFISCATION for p in facts.penalties):
            self.conditions.add("没收")
        self.periods: dict[str, Period] = {}

    def period(self, key: str, period: Period) -> Period:
        self.periods[key] = period
        return period


def _remedies(label: str, facts: DocumentFacts, v: _Values) -> None:
    _require(label, 复议机关和人民法院=facts.remedies)
    assert facts.remedies is not None
    v.values["复议机关"] = facts.remedies.reconsideration_body
    v.values["人民法院"] = facts.remedies.court
    v.values["复议期限"] = f"{chinese_count(periods.RECONSIDERATION_DAYS)}日"
    v.values["诉讼期限"] = f"{chinese_count(periods.LAWSUIT_MONTHS)}个月"


def _payment(
    label: str,
    facts: DocumentFacts,
    fine: Decimal,
    cal: WorkingDayCalendar,
    v: _Values,
    *,
    on_the_spot: bool,
) -> None:
    v.values["罚款金额"] = money(fine) if fine else ""
    if not fine:
        return
    _require(label, 缴款方式=facts.payment)
    assert facts.payment is not None
    if facts.payment.collected_on_spot:
        if not on_the_spot:  # 第68条: only a fine decided on the spot is collected there
            raise ProcedureRefused(
                "只有当场作出的处罚决定才能当场收缴罚款（《行政处罚法》第六十八条）"
            )
        v.conditions.add("当场收缴")
        return
    _require(label, 缴款银行=facts.payment.bank, 缴款账号=facts.payment.account_number)
    v.conditions.add("银行缴款")
    pay = v.period("payment", periods.payment(cal, facts.service_date))
    account = f"{facts.payment.bank}（户名：{facts.payment.account_name or facts.agency.name}，账号：{facts.payment.account_number}）"
    v.values.update(
        {
            "缴款期限": f"{chinese_count(periods.PAYMENT_DAYS)}日",
            "缴款截止日期": cn_date(pay.deadline),
            "缴款账户": account,
            "加处罚款比例": f"百分之{chinese_count(periods.SURCHARGE_PERCENT_PER_DAY)}",
            "加处罚款起算日期": cn_date(pay.deadline + dt.timedelta(days=1)),
            "加处罚款上限": f"人民币{fine.quantize(Decimal('0.01'))}元",
        }
    )


def _rights_notice(
    facts: DocumentFacts,
    rules: AgencyRules,
    cal: WorkingDayCalendar,
    v: _Values,
    hearing: RuleOutcome,
) -> None:
    label = "行政处罚事先告知书"
    _check_penalties(label, facts.penalties)
    _require(label, 违法事实=facts.facts, 违反的规定=facts.grounds, 处罚依据=facts.legal_basis)
    _remedies(label, facts, v)
    served = facts.service_date
    days = rules.statement_working_days
    statement = v.period("statement", periods.statement(cal, served, days))
    v.values["陈述申辩期限"] = f"{chinese_count(days)}个工作日"
    v.values["陈述申辩截止日期"] = cn_date(statement.deadline)
    request = periods.hearing_request(cal, served)
    v.values["听证申请期限"] = f"{chinese_count(periods.HEARING_REQUEST_WORKING_DAYS)}个工作日"
    v.values["听证申请截止日期"] = cn_date(request.deadline)
    if hearing.applies:
        v.period("hearing_request", request)
        v.conditions.add("听证权利")


def _onsite_decision(
    facts: DocumentFacts, cal: WorkingDayCalendar, v: _Values, simple: RuleOutcome
) -> None:
    label = "当场处罚决定书"
    fine = _check_penalties(label, facts.penalties)
    if not simple.applies:
        raise ProcedureRefused(
            f"不能适用简易程序当场处罚：{'；'.join(simple.reasons)}", reasons=list(simple.reasons)
        )
    _require(
        label,
        违法事实=facts.facts,
        处罚依据=facts.legal_basis,
        执法地点=facts.place,
        执法时间=facts.time,
    )
    _remedies(label, facts, v)
    v.values["执法时间"] = f"{cn_date(facts.issued_on)}{clock_time(facts.time or '')}"
    statement = facts.statement.summary if facts.statement and facts.statement.summary else ""
    v.values["陈述申辩情况"] = statement or "你（单位）未提出陈述、申辩意见。"
    _payment(label, facts, fine, cal, v, on_the_spot=True)
    v.values["复议前置依据"] = RECONSIDERATION_FIRST
    recon = v.period("reconsideration", periods.reconsideration(cal, facts.service_date))
    v.values["复议截止日期"] = cn_date(recon.deadline)


def _hearing_notice(
    facts: DocumentFacts, cal: WorkingDayCalendar, v: _Values, hearing: RuleOutcome
) -> None:
    label = "听证通知书"
    _check_penalties(label, facts.penalties)
    _require(label, 听证安排=facts.hearing, 案由=facts.case_title)
    assert facts.hearing is not None
    if not hearing.applies:
        raise ProcedureRefused(
            "拟作出的行政处罚不属于《行政处罚法》第六十三条规定应当告知听证权利的情形，不能制作听证通知书"
        )
    notice = v.period("hearing_notice", periods.hearing_notice(cal, facts.service_date))
    earliest = notice.deadline + dt.timedelta(days=1)
    if facts.hearing.date < earliest:
        raise ProcedureRefused(
            f"听证通知书应当在听证的七个工作日前送达：本通知书于{cn_date(facts.service_date)}送达，"
            f"听证最早可于{cn_date(earliest)}举行（《行政处罚法》第六十四条第（二）项）",
            earliest=earliest.isoformat(),
        )
    h = facts.hearing
    v.values.update(
        {
            "听证时间": f"{cn_date(h.date)}{clock_time(h.time)}",
            "听证地点": h.place,
            "听证主持人": h.host,
            "听证记录员": h.clerk or "本机关工作人员",
            "听证申请日期": cn_date(h.requested_on) if h.requested_on else "",
            "告知书编号": facts.notice.number if facts.notice else "",
            "告知书送达日期": cn_date(facts.notice.served_on) if facts.notice else "",
        }
    )
    if h.requested_on:
        _require(label, 行政处罚事先告知书=facts.notice)
        v.conditions.add("当事人申请听证")


def _penalty_decision(
    facts: DocumentFacts,
    rules: AgencyRules,
    cal: WorkingDayCalendar,
    v: _Values,
    hearing: RuleOutcome,
) -> None:
    label = "行政处罚决定书"
    fine = _check_penalties(label, facts.penalties)
    _require(label, 违法事实=facts.facts, 违反的规定=facts.grounds, 处罚依据=facts.legal_basis)
    _require(label, 行政处罚事先告知书=facts.notice)
    assert facts.notice is not None
    _remedies(label, facts, v)
    said = facts.statement or Statement()
    notice_served = facts.notice.served_on
    if facts.issued_on < notice_served:
        raise ProcedureRefused("决定日期早于行政处罚事先告知书的送达日期")
    # 第62条: no decision before the party could be heard, unless they waived it in writing.
    statement = periods.statement(cal, notice_served, rules.statement_working_days)
    if not said.waived_in_writing and facts.issued_on <= statement.deadline:
        raise ProcedureRefused(
            f"陈述、申辩期限至{cn_date(statement.deadline)}届满，此前不能作出处罚决定"
            "（当事人书面放弃的除外，《行政处罚法》第六十二条）",
            deadline=statement.deadline.isoformat(),
        )
    sentences = [
        said.summary
        or (
            "你（单位）书面放弃了陈述、申辩的权利。"
            if said.waived_in_writing
            else "你（单位）在规定期限内未提出陈述、申辩意见。"
        )
    ]
    if hearing.applies:
        request = periods.hearing_request(cal, notice_served)
        if said.hearing_requested and not said.hearing_held and not said.hearing_waived_in_writing:
            raise ProcedureRefused(
                "当事人已申请听证，应当在听证结束后作出处罚决定（《行政处罚法》第六十五条）"
            )
        if (
            not (said.hearing_requested or said.hearing_waived_in_writing)
            and facts.issued_on <= request.deadline
        ):
            raise ProcedureRefused(
                f"听证申请期限至{cn_date(request.deadline)}届满，此前不能作出处罚决定"
                "（当事人书面放弃听证的除外）",
                deadline=request.deadline.isoformat(),
            )
        if said.hearing_held:
            sentences.append("本机关应你（单位）的申请依法举行了听证。")
        elif said.hearing_waived_in_writing:
            sentences.append("你（单位）书面放弃了听证的权利。")
        else:
            sentences.append("你（单位）在规定期限内未要求举行听证。")
    v.values["陈述申辩情况"] = "".join(sentences)
    v.values["告知书编号"] = facts.notice.number
    v.values["告知书送达日期"] = cn_date(notice_served)
    _payment(label, facts, fine, cal, v, on_the_spot=False)
    served = facts.service_date
    recon = v.period("reconsideration", periods.reconsideration(cal, served))
    suit = v.period("lawsuit", periods.lawsuit(cal, served))
    v.values["复议截止日期"] = cn_date(recon.deadline)
    v.values["诉讼截止日期"] = cn_date(suit.deadline)


def _service_receipt(facts: DocumentFacts, v: _Values) -> bytes:
    label = "送达回证"
    _require(label, 送达情况=facts.service)
    s = facts.service
    assert s is not None
    _require(label, 送达地点=s.place)
    if s.refused:
        if s.signature_png:
            raise FactsIncomplete("受送达人拒绝签收时不应有其签名")
        if s.method != "留置送达":
            raise FactsIncomplete("受送达人拒绝签收的，送达方式应为留置送达")
        if not s.witnesses and not s.recording_id:
            raise ProcedureRefused("留置送达须有见证人在场，或以音像记录送达过程")
        v.conditions.add("留置送达")
    else:
        if s.method == "留置送达":
            raise FactsIncomplete("留置送达须注明受送达人拒绝签收的情况")
        v.conditions.add("已签收")
    if s.signature_png and (
        not s.signature_png.startswith(PNG_MAGIC) or len(s.signature_png) > MAX_SIGNATURE_BYTES
    ):
        raise FactsIncomplete("签名图像须为不超过 512 KB 的 PNG 图片")
    v.values.update(
        {
            "送达文书": s.document_title,
            "送达文书编号": s.document_number,
            "受送达人": s.recipient,
            "送达方式": s.method,
            "送达地点": s.place,
            "送达日期": cn_date(s.served_on),
            "受送达人签名": "（已在执法终端签名）" if s.signature_png else "",
            "留置送达情况": s.refusal_note or "受送达人拒绝签收，已将文书留置于送达地点",
            "见证人": "、".join(f"{w.name}（{w.unit}）" if w.unit else w.name for w in s.witnesses)
            or "无",
            "音像记录": s.recording_id or "无",
            "送达人": _officers_text(facts),
        }
    )
    return s.signature_png


def _fallback_note(found: dict[str, Period], cal: WorkingDayCalendar) -> tuple[str, ...]:
    """A note for the party when a printed date depends on a year the calendar does not know."""
    years = sorted(
        {
            year
            for p in found.values()
            if p.fallback
            for year in range(p.start.year, p.deadline.year + 1)
            if not cal.is_known_year(year)
        }
    )
    if not years:
        return ()
    listed = "、".join(f"{y}年" for y in years)
    return (
        f"注：{listed}的法定节假日安排尚未公布，上列日期暂按每日均为工作日推算；"
        "实际期限以法律规定和国务院公布的节假日安排为准。",
    )


def compose(
    kind: str,
    facts: DocumentFacts,
    template: Template,
    rules: AgencyRules,
    calendar: WorkingDayCalendar,
) -> Composed:
    if template.kind != kind:
        raise FactsIncomplete(f"模板种类 {template.kind} 与文书种类 {kind} 不符")
    _check_amounts(facts.penalties)
    values = _Values(facts)
    hearing = hearing_right(rules, facts.category, facts.party, facts.penalties)
    simple: RuleOutcome | None = None
    image = b""
    if kind == "rights_notice":
        _rights_notice(facts, rules, calendar, values, hearing)
    elif kind == "onsite_decision":
        simple = simple_procedure(rules, facts.category, facts.party, facts.penalties)
        _onsite_decision(facts, calendar, values, simple)
    elif kind == "hearing_notice":
        _hearing_notice(facts, calendar, values, hearing)
    elif kind == "penalty_decision":
        _penalty_decision(facts, rules, calendar, values, hearing)
    else:
        image = _service_receipt(facts, values)
    blocks: list[Paragraph | Table] = []
    rows: list[Row] = []
    for block in template.blocks:
        if block.when and block.when not in values.conditions:
            continue
        if block.row:
            text = fill(block.text, values.values)
            signed = "受送达人签名" in block.text and bool(image)
            rows.append(Row(fill(block.row, values.values), text, image if signed else b""))
            continue
        if rows:
            blocks.append(Table(tuple(rows)))
            rows = []
        if block.party:
            blocks.append(_party_table(facts.party))
        else:
            blocks.append(Paragraph(fill(block.text, values.values), block.indent, block.align))
    if rows:
        blocks.append(Table(tuple(rows)))
    warnings = _fallback_note(values.periods, calendar)
    blocks.extend(Paragraph(note, small=True) for note in warnings)
    return Composed(
        kind=kind,
        title=template.title,
        agency=facts.agency.name,
        number=facts.number,
        blocks=tuple(blocks),
        officers=f"执法人员：{_officers_text(facts)}" if template.officers else "",
        party_sign=template.party_sign,
        seal=template.seal,
        date=cn_date(facts.issued_on),
        footer=template.footer,
        periods=values.periods,
        hearing=hearing,
        simple=simple,
        warnings=warnings,
    )
