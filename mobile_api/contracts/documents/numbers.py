"""Document numbers (文书编号) allocated offline from blocks the server gives each terminal.

The server hands out disjoint, increasing blocks of serials per agency and year; a terminal takes
numbers from its blocks without asking anyone. A number is never handed out twice, even across a
crash: the allocator persists its new state (through the callback the edge store provides) before
it returns a number, so a crash after the write loses at most that one number, never repeats it.
The state is a small Struct: the blocks in use with their next serial, and per year the highest
serial ever consumed, below which no block is taken again.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from mobile_api.contracts.documents.errors import NumberBlockRejected, NumbersExhausted
from mobile_api.contracts.documents.rules import AgencyRules
from mobile_api.contracts.documents.templates import Template


class NumberBlock(msgspec.Struct, frozen=True, kw_only=True):
    """Serials ``first``..``last`` (inclusive) of ``agency_code``'s ``year``, given to one terminal."""

    id: str
    agency_code: str
    year: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class BlockCursor(msgspec.Struct, frozen=True, kw_only=True):
    block: NumberBlock
    next: int  # the next serial to hand out


class AllocatorState(msgspec.Struct, frozen=True, kw_only=True):
    cursors: tuple[BlockCursor, ...] = ()
    # year → the highest serial consumed or given up: blocks at or below it are refused
    floors: dict[int, int] = msgspec.field(default_factory=dict)


class AllocatedNumber(msgspec.Struct, frozen=True, kw_only=True):
    year: int
    serial: int
    block_id: str


def add_block(state: AllocatorState, block: NumberBlock) -> AllocatorState:
    """The state with ``block`` added; the same block again changes nothing."""
    if any(c.block == block for c in state.cursors):
        return state
    if block.first < 1 or block.last < block.first:
        raise NumberBlockRejected(f"号段 {block.first}–{block.last} 无效", block=block.id)
    if any(c.block.id == block.id for c in state.cursors):
        raise NumberBlockRejected("同一号段的内容与已有的不同", block=block.id)
    if block.first <= state.floors.get(block.year, 0):
        raise NumberBlockRejected(
            f"{block.year} 年号段 {block.first}–{block.last} 中的编号已经使用过，不能再次领用",
            block=block.id,
        )
    for c in state.cursors:
        held = c.block
        if held.year == block.year and held.first <= block.last and block.first <= held.last:
            raise NumberBlockRejected(
                f"{block.year} 年号段 {block.first}–{block.last} 与已有号段 {held.first}–{held.last} 重叠",
                block=block.id,
            )
    cursors = sorted((*state.cursors, BlockCursor(block=block, next=block.first)), key=_order)
    return AllocatorState(cursors=tuple(cursors), floors=state.floors)


def _order(cursor: BlockCursor) -> tuple[int, int]:
    return cursor.block.year, cursor.block.first


def remaining(state: AllocatorState, year: int) -> int:
    return sum(c.block.last - c.next + 1 for c in state.cursors if c.block.year == year)


def allocate(state: AllocatorState, year: int) -> tuple[AllocatedNumber, AllocatorState]:
    """The next number of ``year`` and the state after it; the lowest block is used first."""
    for i, cursor in enumerate(state.cursors):
        if cursor.block.year != year:
            continue
        serial = cursor.next
        floors = {**state.floors, year: max(state.floors.get(year, 0), serial)}
        rest = list(state.cursors)
        if serial == cursor.block.last:
            del rest[i]  # used up: the floor keeps it from coming back
        else:
            rest[i] = BlockCursor(block=cursor.block, next=serial + 1)
        number = AllocatedNumber(year=year, serial=serial, block_id=cursor.block.id)
        return number, AllocatorState(cursors=tuple(rest), floors=floors)
    raise NumbersExhausted(f"本终端 {year} 年的文书编号已用完，请联网同步以领取新的号段", year=year)


class NumberAllocator:
    """The terminal's allocator: pure state plus ``persist``, called before a number is returned."""

    def __init__(self, state: AllocatorState, persist: Callable[[AllocatorState], None]) -> None:
        self._state = state
        self._persist = persist

    @property
    def state(self) -> AllocatorState:
        return self._state

    def add_block(self, block: NumberBlock) -> None:
        new = add_block(self._state, block)
        if new is not self._state:
            self._persist(new)
            self._state = new

    def remaining(self, year: int) -> int:
        return remaining(self._state, year)

    def take(self, year: int) -> AllocatedNumber:
        number, new = allocate(self._state, year)
        self._persist(new)  # raises → the number is not handed out and the state is unchanged
        self._state = new
        return number


def format_number(rules: AgencyRules, template: Template, year: int, serial: int) -> str:
    """The printed 文书编号, e.g. 示文执罚告〔2026〕0012号 (the format is the agency's)."""
    values = {
        "机关代字": rules.number_prefix,
        "文书代字": template.code,
        "年": str(year),
        "序号": str(serial).zfill(rules.serial_width),
    }
    out = rules.number_format
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out
