"""Hybrid logical clock (Kulkarni et al.): stamps that follow the wall clock yet never go backwards,
and that move past every stamp the terminal has seen from others, so a partner's later event sorts
after the one it answers even when the two terminals' clocks disagree.

Stateless: the caller keeps the last stamp (in the store, inside the transaction that writes the
event) and passes it in.
"""

from __future__ import annotations

from mobile_api.contracts.events import HLC_COUNTER_MAX, format_hlc, parse_hlc


def _advance(last_wall: int, last_counter: int, wall_ms: int, node: str) -> str:
    if wall_ms > last_wall:
        return format_hlc(wall_ms, 0, node)
    if last_counter < HLC_COUNTER_MAX:
        return format_hlc(last_wall, last_counter + 1, node)
    # The counter is spent within one millisecond: borrow the next millisecond.
    return format_hlc(last_wall + 1, 0, node)


def tick(last: str | None, wall_ms: int, node: str) -> str:
    """The stamp of a new local event."""
    if not last:
        return format_hlc(wall_ms, 0, node)
    last_wall, last_counter, _ = parse_hlc(last)
    return _advance(last_wall, last_counter, wall_ms, node)


def observe(last: str | None, remote: str, wall_ms: int, node: str) -> str:
    """The clock after seeing ``remote``: the next local stamp sorts after both."""
    if not remote:
        return last or format_hlc(wall_ms, 0, node)
    if last and last >= remote:
        return last
    remote_wall, remote_counter, _ = parse_hlc(remote)
    if wall_ms > remote_wall:
        return last or format_hlc(wall_ms, 0, node)
    return format_hlc(remote_wall, remote_counter, node)
