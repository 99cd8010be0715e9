"""The PII scanner: the last check before anything is public, and the test of every public byte.

It looks for what DESIGN.md §7 forbids in public text: resident ID numbers (18 digits, checksum and
birth date valid), mobile and landline phone numbers, vehicle plates, bank card numbers (Luhn),
street addresses, health data, and the full names of natural persons known from the case data.
It is deliberately independent of ``redaction``: redaction rewrites, the scanner only reports, so a
gap in one is caught by the other. A finding holds a publication; it is never published.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable
from typing import Any

import msgspec

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![\d+])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
_LANDLINE = re.compile(
    r"(?<!\d)(?:(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3}-)\s?\d{7,8}|0\d{2,3}[2-9]\d{6,7})(?!\d)"
)
_CARD = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){15,18}(?![0-9A-Za-z])")
# 省份简称 + 发证机关代号 + 5 (燃油) or 6 (新能源) characters; 挂/学/警/港/澳 endings.
PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领]"
    r"[A-HJ-NP-Z][·•\s-]?[A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳](?![A-Za-z0-9])"
)
_ADDRESS = re.compile(
    r"(?:路|街|大道|大街|巷|弄|胡同|里)[0-9０-９]+号"
    r"|[0-9０-９]+(?:号楼|栋|幢|单元)"
    r"|[0-9０-９]+室"
    r"|[村庄屯][0-9一二三四五六七八九十]+组"
    r"|(?:小区|花园|公寓|新村|大厦)[0-9０-９]+(?:号|栋|幢|座)"
)
HEALTH_WORDS = (
    "患有",
    "患病",
    "病史",
    "病历",
    "诊断",
    "确诊",
    "住院治疗",
    "精神疾病",
    "精神病",
    "残疾",
    "怀孕",
    "妊娠",
    "艾滋",
    "HIV",
    "乙肝",
    "梅毒",
    "癌症",
    "抑郁症",
)
_HEALTH = re.compile("|".join(map(re.escape, HEALTH_WORDS)))
# Titles of laws (《传染病防治法》, 《残疾人保障法》) may name illnesses; they are not health data.
_BOOK_TITLE = re.compile(r"《[^《》]{1,80}》")
# Invisible characters and separators someone could put inside a name to slip it past a search.
_NAME_NOISE = re.compile(r"[\s·•・\u200b-\u200f\u2060\ufeff]")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)

LABELS = {
    "id_number": "身份证号码",
    "mobile": "手机号码",
    "landline": "固定电话",
    "plate": "车牌号码",
    "bank_card": "银行卡号",
    "address": "住址",
    "health": "健康信息",
    "name": "自然人姓名",
}


class Finding(msgspec.Struct, frozen=True):
    kind: str
    label: str
    # The match with its middle masked: findings go to dashboards and logs, not the PII itself.
    masked: str
    start: int


def id_number_valid(candidate: str) -> bool:
    """GB 11643: 17 digits, a valid birth date at 6..14 and the ISO 7064 MOD 11-2 check digit."""
    if len(candidate) != 18 or not candidate[:17].isdigit():
        return False
    try:
        born = dt.date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2100:
        return False
    total = sum(int(d) * w for d, w in zip(candidate[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == candidate[17].upper()


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def mask(value: str) -> str:
    if len(value) <= 2:
        return value[0] + "*" * (len(value) - 1)
    return value[0] + "*" * (len(value) - 2) + value[-1]


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "#" * (end - start)
    return "".join(chars)


def scan(text: str, *, names: Iterable[str] = (), allowed: Iterable[str] = ()) -> list[Finding]:
    """Everything in ``text`` that must not be public. ``allowed``: tokens that may appear (an
    organisation's 统一社会信用代码 can look like an ID number or a card number)."""
    spans = [
        (m.start(), m.end())
        for token in allowed
        if token
        for m in re.finditer(re.escape(token), text)
    ]
    text = _blank(text, spans)
    found: list[Finding] = []

    def add(kind: str, value: str, start: int) -> None:
        found.append(Finding(kind=kind, label=LABELS[kind], masked=mask(value), start=start))

    for m in _ID.finditer(text):
        if id_number_valid(m.group()):
            add("id_number", m.group(), m.start())
    for m in _MOBILE.finditer(text):
        add("mobile", m.group(), m.start())
    for m in _LANDLINE.finditer(text):
        add("landline", m.group(), m.start())
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 16 <= len(digits) <= 19 and luhn_valid(digits) and not id_number_valid(digits):
            add("bank_card", m.group(), m.start())
    for m in PLATE.finditer(text):
        add("plate", m.group(), m.start())
    for m in _ADDRESS.finditer(text):
        add("address", m.group(), m.start())
    outside_titles = _BOOK_TITLE.sub(lambda m: "《" + "#" * (len(m.group()) - 2) + "》", text)
    for m in _HEALTH.finditer(outside_titles):
        add("health", m.group(), m.start())
    found.extend(_names(text, names))
    return sorted(found, key=lambda f: f.start)


def _names(text: str, names: Iterable[str]) -> list[Finding]:
    # Search with separators removed on both sides; positions are reported in the cleaned text.
    cleaned = _NAME_NOISE.sub("", text)
    out = []
    for name in {_NAME_NOISE.sub("", n) for n in names}:
        if len(name) < 2:
            continue
        for m in re.finditer(re.escape(name), cleaned):
            out.append(
                Finding(kind="name", label=LABELS["name"], masked=mask(name), start=m.start())
            )
    return out


def visible_text(markup: str) -> str:
    """The text a reader of an HTML page sees (tags dropped, entities decoded)."""
    return html.unescape(_TAGS.sub(" ", markup))


def scan_html(
    markup: str, *, names: Iterable[str] = (), allowed: Iterable[str] = ()
) -> list[Finding]:
    """A page is scanned twice: as sent (attributes, URLs) and as read (tags between letters)."""
    names, allowed = list(names), list(allowed)
    return scan(html.unescape(markup), names=names, allowed=allowed) + scan(
        visible_text(markup), names=names, allowed=allowed
    )


def json_strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)
    elif value is not None:
        yield str(value)


def scan_json(
    raw: bytes, *, names: Iterable[str] = (), allowed: Iterable[str] = ()
) -> list[Finding]:
    """A JSON document: its raw text and every decoded string (escapes could hide characters)."""
    names, allowed = list(names), list(allowed)
    decoded = "\n".join(json_strings(msgspec.json.decode(raw)))
    return scan(raw.decode("utf-8"), names=names, allowed=allowed) + scan(
        decoded, names=names, allowed=allowed
    )
