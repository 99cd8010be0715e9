"""What the law decides from the facts, never typed by the officer (DESIGN.md §2).

* The hearing right (《行政处罚法》第63条): 较大数额罚款 and 没收较大数额 thresholds, per agency and
  per 执法类别, separately for persons and organisations, "以上" including the amount itself
  (民法典 第1259条); 降低资质等级, 吊销许可证件, 责令停产停业, 责令关闭, 限制从业 always; and the
  agency's list of 其他较重的行政处罚.
* The simple procedure (第51条): a warning, or a fine of ≤ 200 元 (person) / ≤ 3000 元
  (organisation). A category may allow more only where another law does, and must name it.
* The 陈述、申辩 period (第45条 leaves it to the agency; default 5 working days).

An agency's rules are a TOML file (``templates/rules.toml`` holds the statutory defaults); the file's
SHA-256 travels with every document so the server renders with exactly the same rules.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import msgspec

from mobile_api.contracts.documents.errors import RulesRejected
from mobile_api.contracts.documents.facts import PenaltyItem, Person
from mobile_api.contracts.events import Penalty

RULES_NAME = "rules"
RULES_FILE = Path(__file__).with_name("templates") / "rules.toml"

# 第51条: the simple procedure's statutory ceilings.
STATUTORY_SIMPLE_MAX_PERSON = Decimal(200)
STATUTORY_SIMPLE_MAX_ORGANISATION = Decimal(3000)
SIMPLE_PENALTIES = frozenset({"警告", "罚款"})

# 第63条第一款第（三）、（四）项: these always give the hearing right.
ALWAYS_HEARING: dict[str, str] = {
    "降低资质等级": "第（三）项",
    "吊销许可证件": "第（三）项",
    "责令停产停业": "第（四）项",
    "责令关闭": "第（四）项",
    "限制从业": "第（四）项",
}
CONFISCATION = frozenset({"没收违法所得", "没收非法财物"})
# Kinds that make no sense on a penalty document (a different document states them).
NOT_A_PENALTY = frozenset({"不予处罚"})

NUMBER_FIELDS = frozenset({"机关代字", "文书代字", "年", "序号"})
_FIELD = re.compile(r"\{([^{}]*)\}")

Amount = Decimal  # msgspec cannot bound a Decimal: _positive() checks every amount
_THRESHOLDS = (
    "person_fine",
    "organisation_fine",
    "person_confiscation",
    "organisation_confiscation",
)


class _File(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class _SimpleSection(_File):
    person_max_fine: Amount | None = None
    organisation_max_fine: Amount | None = None
    basis: str = ""  # the law allowing more than 第51条, when a ceiling exceeds it


class _HearingSection(_File):
    person_fine: Amount | None = None
    organisation_fine: Amount | None = None
    person_confiscation: Amount | None = None
    organisation_confiscation: Amount | None = None
    heavier: list[Penalty] | None = None


class _CategorySection(_File):
    simple_procedure: _SimpleSection | None = None
    hearing: _HearingSection | None = None


class _RulesFile(_File):
    number_prefix: str = ""  # 机关代字
    number_format: str = "{机关代字}{文书代字}〔{年}〕{序号}号"
    serial_width: Annotated[int, msgspec.Meta(ge=1, le=10)] = 4
    statement_working_days: Annotated[int, msgspec.Meta(ge=3, le=30)] = 5
    simple_procedure: _SimpleSection = msgspec.field(default_factory=_SimpleSection)
    hearing: _HearingSection = msgspec.field(default_factory=_HearingSection)
    categories: dict[str, _CategorySection] = msgspec.field(default_factory=dict)


class SimpleLimits(msgspec.Struct, frozen=True, kw_only=True):
    person_max_fine: Decimal
    organisation_max_fine: Decimal
    basis: str = ""


class HearingThresholds(msgspec.Struct, frozen=True, kw_only=True):
    person_fine: Decimal
    organisation_fine: Decimal
    person_confiscation: Decimal
    organisation_confiscation: Decimal
    heavier: tuple[str, ...] = ()


class AgencyRules(msgspec.Struct, frozen=True, kw_only=True):
    """An agency's rules, resolved per category; ``sha256`` identifies the file they came from."""

    sha256: str
    source: str
    number_prefix: str
    number_format: str
    serial_width: int
    statement_working_days: int
    simple: SimpleLimits
    hearing: HearingThresholds
    categories: dict[str, tuple[SimpleLimits, HearingThresholds]]

    def simple_for(self, category: str) -> SimpleLimits:
        return self.categories[category][0] if category in self.categories else self.simple

    def hearing_for(self, category: str) -> HearingThresholds:
        return self.categories[category][1] if category in self.categories else self.hearing


class RuleOutcome(msgspec.Struct, frozen=True):
    """A decision by rule and why, in Chinese, citing the article."""

    applies: bool
    reasons: tuple[str, ...] = ()


def yuan(amount: Decimal) -> str:
    """``500`` → ``500``, ``500.5`` → ``500.50``: amounts as printed in reasons and sentences."""
    return str(int(amount)) if amount == amount.to_integral() else f"{amount:.2f}"


def _positive(section: _File, where: str) -> None:
    for name in section.__struct_fields__:
        value = getattr(section, name)
        if isinstance(value, Decimal) and not value > 0:
            raise RulesRejected(f"{where}的 {name} 必须是大于 0 的金额", field=name)


def _simple(section: _SimpleSection, base: SimpleLimits, where: str) -> SimpleLimits:
    _positive(section, where)
    limits = SimpleLimits(
        person_max_fine=section.person_max_fine or base.person_max_fine,
        organisation_max_fine=section.organisation_max_fine or base.organisation_max_fine,
        basis=section.basis or base.basis,
    )
    above = (
        limits.person_max_fine > STATUTORY_SIMPLE_MAX_PERSON
        or limits.organisation_max_fine > STATUTORY_SIMPLE_MAX_ORGANISATION
    )
    if above and not limits.basis.strip():
        raise RulesRejected(
            f"{where}的简易程序罚款上限高于《行政处罚法》第五十一条的标准（个人 200 元、单位 3000 元），"
            "须以 basis 写明允许的法律依据",
            section=where,
        )
    return limits


def _hearing(
    section: _HearingSection, base: HearingThresholds | None, where: str
) -> HearingThresholds:
    """``section`` over ``base``; the agency level (no base) must give every threshold."""
    _positive(section, where)
    values = {name: getattr(section, name) for name in _THRESHOLDS}
    if base is None:
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise RulesRejected(f"[hearing] 缺少较大数额标准：{'、'.join(missing)}", fields=missing)
    else:
        values = {name: value or getattr(base, name) for name, value in values.items()}
    heavier: list[str] = list(section.heavier) if section.heavier is not None else []
    if section.heavier is None and base is not None:
        heavier = list(base.heavier)
    for kind in heavier:
        if kind in NOT_A_PENALTY:
            raise RulesRejected(f"「{kind}」不是行政处罚，不能列为较重的行政处罚", value=kind)
    return HearingThresholds(**values, heavier=tuple(dict.fromkeys(heavier)))


def _check_number_format(fmt: str) -> None:
    fields = set(_FIELD.findall(fmt))
    unknown = sorted(fields - NUMBER_FIELDS)
    if unknown:
        raise RulesRejected(
            f"文书编号格式中有未知字段：{'、'.join('{' + f + '}' for f in unknown)}"
            f"（可用：{'、'.join('{' + f + '}' for f in sorted(NUMBER_FIELDS))}）",
            fields=unknown,
        )
    # serials are unique per agency and year, so both must appear for a number never to repeat
    missing = [f for f in ("年", "序号") if f not in fields]
    if missing:
        raise RulesRejected(
            f"文书编号格式必须包含 {'、'.join('{' + f + '}' for f in missing)}，否则编号会重复",
            fields=missing,
        )


def parse_rules(text: str) -> AgencyRules:
    """Parse and check an agency rules file; raises ``RulesRejected`` naming the problem in Chinese."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesRejected(f"处罚规则文件不是有效的 TOML：{exc}") from None
    try:
        doc = msgspec.convert(raw, _RulesFile, strict=False)
    except msgspec.ValidationError as exc:
        raise RulesRejected(f"处罚规则文件内容有误：{exc}") from None
    _check_number_format(doc.number_format)
    statutory = SimpleLimits(
        person_max_fine=STATUTORY_SIMPLE_MAX_PERSON,
        organisation_max_fine=STATUTORY_SIMPLE_MAX_ORGANISATION,
    )
    simple = _simple(doc.simple_procedure, statutory, "机关")
    hearing = _hearing(doc.hearing, None, "机关")
    categories = {
        name: (
            _simple(cat.simple_procedure or _SimpleSection(), simple, f"执法类别「{name}」"),
            _hearing(cat.hearing or _HearingSection(), hearing, f"执法类别「{name}」"),
        )
        for name, cat in doc.categories.items()
    }
    return AgencyRules(
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        source=text,
        number_prefix=doc.number_prefix,
        number_format=doc.number_format,
        serial_width=doc.serial_width,
        statement_working_days=doc.statement_working_days,
        simple=simple,
        hearing=hearing,
        categories=categories,
    )


def default_rules_text() -> str:
    return RULES_FILE.read_text(encoding="utf-8")


def load_rules(override_dir: str | Path | None = None) -> AgencyRules:
    """The agency's ``rules.toml`` from ``override_dir`` when present, else the statutory defaults."""
    if override_dir is not None:
        path = Path(override_dir) / f"{RULES_NAME}.toml"
        if path.exists():
            return parse_rules(path.read_text(encoding="utf-8"))
    return parse_rules(default_rules_text())


# --- decisions ----------------------------------------------------------------------------------


def _sum(penalties: list[PenaltyItem], kinds: frozenset[str]) -> Decimal:
    return sum((p.amount_yuan or Decimal(0) for p in penalties if p.kind in kinds), Decimal(0))


def hearing_right(
    rules: AgencyRules, category: str, party: object, penalties: list[PenaltyItem]
) -> RuleOutcome:
    """Whether the rights notice must offer a hearing (第63条), with the grounds."""
    limits = rules.hearing_for(category)
    person = isinstance(party, Person)
    who = "个人" if person else "单位"
    reasons: list[str] = []
    fine = _sum(penalties, frozenset({"罚款"}))
    fine_limit = limits.person_fine if person else limits.organisation_fine
    if fine and fine >= fine_limit:
        reasons.append(
            f"罚款 {yuan(fine)} 元，达到较大数额标准（{who} {yuan(fine_limit)} 元以上）"
            "——《行政处罚法》第六十三条第一款第（一）项"
        )
    seized = _sum(penalties, CONFISCATION)
    seized_limit = limits.person_confiscation if person else limits.organisation_confiscation
    if seized and seized >= seized_limit:
        reasons.append(
            f"没收违法所得、非法财物价值 {yuan(seized)} 元，达到较大数额标准（{who} "
            f"{yuan(seized_limit)} 元以上）——《行政处罚法》第六十三条第一款第（二）项"
        )
    for kind in dict.fromkeys(p.kind for p in penalties):
        if kind in ALWAYS_HEARING:
            reasons.append(f"{kind}——《行政处罚法》第六十三条第一款{ALWAYS_HEARING[kind]}")
        elif kind in limits.heavier:
            reasons.append(
                f"{kind}属于本机关规定的其他较重的行政处罚——《行政处罚法》第六十三条第一款第（五）项"
            )
    return RuleOutcome(applies=bool(reasons), reasons=tuple(reasons))


def simple_procedure(
    rules: AgencyRules, category: str, party: object, penalties: list[PenaltyItem]
) -> RuleOutcome:
    """Whether the penalty may be decided on the spot (第51条); ``reasons`` say why or why not."""
    limits = rules.simple_for(category)
    person = isinstance(party, Person)
    limit = limits.person_max_fine if person else limits.organisation_max_fine
    who = "公民" if person else "法人或者其他组织"
    basis = limits.basis or "《行政处罚法》第五十一条"
    if not penalties:
        return RuleOutcome(False, ("未列明处罚",))
    others = [p.kind for p in penalties if p.kind not in SIMPLE_PENALTIES]
    if others:
        return RuleOutcome(
            False,
            (
                f"{'、'.join(dict.fromkeys(others))}不能适用简易程序，只有警告或者罚款可以当场作出——{basis}",
            ),
        )
    fine = _sum(penalties, frozenset({"罚款"}))
    if fine > limit:
        return RuleOutcome(
            False,
            (f"罚款 {yuan(fine)} 元超过当场处罚的上限（对{who} {yuan(limit)} 元以下）——{basis}",),
        )
    what = f"罚款 {yuan(fine)} 元，未超过对{who} {yuan(limit)} 元的上限" if fine else "警告"
    return RuleOutcome(True, (f"{what}，可以当场作出——{basis}",))
