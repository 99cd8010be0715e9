"""Redaction before anything is public (DESIGN.md §7).

A natural person keeps the surname and the given name becomes 某 (张三 → 张某, 欧阳娜娜 → 欧阳某);
other people named in the case disappear (某某); ID numbers, phone numbers, bank accounts, vehicle
plates, addresses and health data are removed. Organisations keep their name and 统一社会信用代码.
Decisions on minors are not published at all (``services`` excludes them before this runs).

Redaction errs on the side of removing too much; ``pii_scanner`` then checks the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from disclosure.pii_scanner import HEALTH_WORDS, PLATE

# 复姓: a name starting with one of these keeps two characters.
_COMPOUND = """
    欧阳 太史 端木 上官 司马 东方 独孤 南宫 万俟 闻人 夏侯 诸葛 尉迟 公羊 赫连 澹台 皇甫 宗政 濮阳
    公冶 太叔 申屠 公孙 慕容 仲孙 钟离 长孙 宇文 司徒 鲜于 司空 闾丘 子车 亓官 司寇 巫马 公西 颛孙
    壤驷 公良 漆雕 乐正 宰父 谷梁 拓跋 夹谷 轩辕 令狐 段干 百里 呼延 东郭 南门 羊舌 微生 公户 公玉
    公仪 梁丘 公仲 公上 公门 公山 公坚 左丘 公伯 西门 公祖 第五 公乘 贯丘 公皙 南荣 东里 东宫 仲长
    子书 子桑 即墨 达奚 褚师 单于 东门 商牟 伯赏 墨哈 谯笪 阳佟 纳兰 完颜
"""
COMPOUND_SURNAMES = frozenset(_COMPOUND.split())
GONE = "（已隐去）"
OTHER_PERSON = "某某"
# Private-use characters do not occur in real text: they stand in for tokens that must survive
# redaction untouched (and, being neither digits nor letters, match no pattern below).
_FENCE_BASE = 0xE000
_FENCED = re.compile("[\ue000-\uefff]")

_ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
    r"(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])[1-9]\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?![0-9A-Za-z])"
)
# Any run of 11 or more digits (single spaces or hyphens allowed between them) is a phone, an ID
# number or an account: nothing an enforcement record needs in public.
_LONG_DIGITS = re.compile(r"(?<![0-9A-Za-z])\+?\d(?:[ -]?\d){10,}(?![0-9A-Za-z])")
_LANDLINE = re.compile(r"(?:\(0\d{2,3}\)|（0\d{2,3}）|(?<!\d)0\d{2,3}-)\s?\d{7,8}(?!\d)")
_CONTACT = re.compile(
    r"(电话|手机|手机号码|联系电话|联系方式|微信号?|QQ号?|邮箱|电子邮箱|E-?mail)\s*[：:为是]?\s*"
    r"[0-9A-Za-z_.@+\-（）() ]{5,}",
    re.I,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_ADDRESS_LABEL = re.compile(
    r"(家庭住址|住址|住所地?|户籍所在地|户籍地|居住地|现住址|现住|经常居住地|地址)"
    r"([：:为在系是]?\s*)[^，。；;,、\s）)]{2,60}"
)
_REGION = r"(?:[\u4e00-\u9fff]{1,8}?(?:省|自治区|市|自治州|区|县|旗|镇|乡|街道))*"
_STREET_ADDRESS = re.compile(
    _REGION + r"[\u4e00-\u9fff0-9]{1,12}?(?:路|街|大道|大街|巷|弄|胡同|里)[0-9０-９]+号"
    r"(?:[0-9０-９A-Za-z]+(?:号楼|栋|幢|座|单元|层|楼|室|号))*"
    r"|" + _REGION + r"[\u4e00-\u9fff]{1,10}?(?:小区|花园|公寓|新村|大厦|村)"
    r"(?:[0-9０-９一二三四五六七八九十]+(?:号楼|栋|幢|座|单元|层|楼|室|号|组))+"
    r"|[0-9０-９]+(?:号楼|栋|幢)(?:[0-9０-９]+(?:单元|层|楼|室|号))*"
    r"|[0-9０-９]+单元[0-9０-９]*(?:室|号)?"
    r"|[0-9０-９]+室"
)
# "法定代表人：李四" and the like name a natural person even when the case data does not.
_NAME_AFTER_LABEL = re.compile(
    r"(法定代表人|负责人|联系人|委托代理人|代理人|证人|监护人|经营者|户主|实际经营人)([：:]\s*)"
    r"([\u4e00-\u9fff·]{2,5})(?=[，。；;,、\s（(]|$)"
)
_PREPOSITIONS = frozenset("在于到至从向往住位距")
_HEALTH = re.compile("|".join(map(re.escape, HEALTH_WORDS)))
_BOOK_TITLE = re.compile(r"《[^《》]{1,80}》")
_CLAUSE = re.compile(r"[^，。；;,！？!?\n]+[，。；;,！？!?\n]?")


def split_name(name: str) -> tuple[str, str]:
    """(surname, given name). 复姓 keep two characters; names with · keep their first character."""
    name = name.strip()
    if "·" in name or "•" in name:
        return name[:1], name[1:]
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], name[1:]


def person_display(name: str) -> str:
    """张三 → 张某, 欧阳娜娜 → 欧阳某, 司马相如 → 司马某."""
    surname, _ = split_name(name)
    return f"{surname}某"


def _fence(text: str, keep: Iterable[str]) -> tuple[str, list[str]]:
    kept: list[str] = []
    text = _FENCED.sub("", text)
    for token in sorted({k for k in keep if k}, key=len, reverse=True)[:0x1000]:
        if token in text:
            text = text.replace(token, chr(_FENCE_BASE + len(kept)))
            kept.append(token)
    return text, kept


def _unfence(text: str, kept: list[str]) -> str:
    return _FENCED.sub(lambda m: kept[ord(m.group()) - _FENCE_BASE], text)


def _replace_names(text: str, parties: Iterable[str], others: Iterable[str]) -> str:
    replacements: dict[str, str] = {}
    for name in others:
        name = name.strip()
        if name:
            replacements[name] = OTHER_PERSON
            given = split_name(name)[1]
            if len(given) >= 2:
                replacements.setdefault(given, OTHER_PERSON)
    for name in parties:
        name = name.strip()
        if name:
            shown = person_display(name)
            replacements[name] = shown
            given = split_name(name)[1]
            # A one-character given name alone is an ordinary word (张三 → 三); leave it.
            if len(given) >= 2:
                replacements[given] = shown
    for name in sorted(replacements, key=len, reverse=True):
        text = text.replace(name, replacements[name])
    return text


def _address(m: re.Match[str]) -> str:
    # The pattern starts at the first Chinese character it can; a preposition before the address
    # ("在人民路8号") belongs to the sentence.
    found = m.group()
    return found[0] + GONE if found[0] in _PREPOSITIONS else GONE


def _remove_health(text: str) -> str:
    def clause(m: re.Match[str]) -> str:
        part = m.group()
        if _HEALTH.search(_BOOK_TITLE.sub("《》", part)):
            end = part[-1] if part[-1] in "，。；;,！？!?\n" else ""
            return "（健康信息已隐去）" + end
        return part

    return _CLAUSE.sub(clause, text)


def redact_text(
    text: str,
    *,
    parties: Iterable[str] = (),
    others: Iterable[str] = (),
    keep: Iterable[str] = (),
) -> str:
    """Redact free text: ``parties`` are natural persons shown as 张某, ``others`` vanish,
    ``keep`` (an organisation's name and credit code) survives untouched."""
    if not text:
        return text
    text, kept = _fence(text, keep)
    text = _replace_names(text, parties, others)
    text = _NAME_AFTER_LABEL.sub(
        lambda m: m.group(0) if "某" in m.group(3) else f"{m.group(1)}{m.group(2)}{OTHER_PERSON}",
        text,
    )
    text = _EMAIL.sub(GONE, text)
    text = _CONTACT.sub(lambda m: f"{m.group(1)}{GONE}", text)
    text = _ID_NUMBER.sub(GONE, text)
    text = _LANDLINE.sub(GONE, text)
    text = _LONG_DIGITS.sub(GONE, text)
    text = PLATE.sub(GONE, text)
    text = _ADDRESS_LABEL.sub(lambda m: f"{m.group(1)}{m.group(2)}{GONE}", text)
    text = _STREET_ADDRESS.sub(_address, text)
    text = _remove_health(text)
    return _unfence(text, kept)
