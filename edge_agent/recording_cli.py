"""``zhifa-edge video / attach / upload / recordings``: the officer's audio-video commands."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import click

from edge_agent.agent import Agent
from edge_agent.recordings import (
    QUOTA_ENV,
    STOP_LABELS,
    WARN_MINUTES,
    RecordingLine,
    Recordings,
    Take,
    capture,
    open_source,
    outcome_text,
    parse_gps,
    quota_bytes_default,
)
from media.edge.config import RecorderConfig
from media.edge.recorder import RecorderError


def _agent(ctx: click.Context) -> AbstractContextManager[Agent]:
    # The CLI's agent with its officer-facing error handling (imported late: cli imports us).
    from edge_agent.cli import _agent as agent

    return agent(ctx)


@contextmanager
def _recordings(ctx: click.Context, quota_mb: float | None) -> Iterator[Recordings]:
    with _agent(ctx) as agent:
        quota = int(quota_mb * 1024 * 1024) if quota_mb is not None else quota_bytes_default()
        yield Recordings(agent.home, agent.session, agent.desk, quota_bytes=quota)


def _quota_option(function: Any) -> Any:
    return click.option(
        "--quota-mb",
        type=click.FloatRange(min=0, min_open=True),
        envvar=QUOTA_ENV,
        default=None,
        help="Local storage for recordings in MiB (default 8192).",
    )(function)


class _Bar:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    WIDTH = 30

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._shown: dict[str, int] = {}

    def __call__(self, recording_id: str, offset: int, size: int) -> None:
        percent = offset * 100 // size if size else 100
        if self._shown.get(recording_id) == percent:
            return
        self._shown[recording_id] = percent
        filled = self.WIDTH * percent // 100
        bar = (
            f"上传 {recording_id[:13]} [{'#' * filled}{'-' * (self.WIDTH - filled)}] {percent:3d}%"
        )
        click.echo(("\r" + bar) if self.tty else bar, err=True, nl=not self.tty or percent == 100)


def _press_on_enter(pressed: threading.Event) -> None:
    sys.stdin.readline()
    pressed.set()


# `record` already records a case action (an event), hence `video`.
@click.command("video")
@click.option("--case", "case_id", default=None, help="Case the recording belongs to.")
@click.option(
    "--source",
    default="synthetic",
    show_default=True,
    help="synthetic | file:PATH | device (V4L2 camera + ALSA microphone).",
)
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None, help="Stop after N s.")
@click.option(
    "--pre-record",
    type=click.FloatRange(min=0),
    default=RecorderConfig().pre_record_seconds,
    show_default=True,
    help="Seconds kept from standby before record is pressed (0: none).",
)
@click.option("--officer", "officers", multiple=True, help="证号 of another officer present.")
@click.option("--gps", default=None, help="Position LAT,LON[,ACCURACY_M].")
@click.option("--width", type=click.IntRange(16), default=RecorderConfig().width, show_default=True)
@click.option(
    "--height", type=click.IntRange(16), default=RecorderConfig().height, show_default=True
)
@click.option("--fps", type=click.IntRange(1, 60), default=RecorderConfig().fps, show_default=True)
@click.option(
    "--segment-seconds",
    type=click.FloatRange(min=0.5),
    default=RecorderConfig().segment_seconds,
    show_default=True,
)
@click.option(
    "--pace",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Synthetic source speed (times real time; 0: as fast as possible).",
)
@click.option("--warn-minutes", type=float, default=WARN_MINUTES, show_default=True)
@_quota_option
@click.pass_context
def record(
    ctx: click.Context,
    case_id: str | None,
    source: str,
    seconds: float | None,
    pre_record: float,
    officers: tuple[str, ...],
    gps: str | None,
    width: int,
    height: int,
    fps: int,
    segment_seconds: float,
    pace: float,
    warn_minutes: float,
    quota_mb: float | None,
) -> None:
    """Record audio-video (执法记录) with the time, terminal id and 证号 burned in.

    On a terminal the standby keeps the pre-record seconds until Enter is pressed; without a
    terminal, record starts once the pre-record buffer is full. Ctrl+C or --seconds stops.
    An interrupted recording is continued first.
    """
    config = RecorderConfig(
        width=width,
        height=height,
        fps=fps,
        segment_seconds=segment_seconds,
        pre_record_seconds=pre_record,
        preset="ultrafast" if width * height <= 320 * 240 else RecorderConfig().preset,
    )
    stop, pressed = threading.Event(), threading.Event()
    interactive = sys.stdin.isatty()
    warned = False

    def on_space(minutes: float) -> None:
        nonlocal warned
        if minutes < warn_minutes and not warned:
            warned = True
            click.echo(f"注意：存储空间仅够再录约 {minutes:.1f} 分钟，请尽快上传", err=True)

    def interrupted(*_: object) -> None:
        stop.set()

    with _recordings(ctx, quota_mb) as recordings:
        if case_id is not None:
            recordings.desk.case(case_id)  # an unknown case is refused before recording
        clock_now = recordings.desk.clock()
        take = Take(
            case_id=case_id,
            officers=list(officers),
            position=parse_gps(gps, clock_now) if gps else None,
            seconds=seconds,
            press_after=None if interactive else pre_record,
        )
        media = open_source(source, config, pace=pace or None)
        recorder = recordings.recorder(config, epoch=media.epoch)
        if recorder.recording is not None:
            click.echo(f"继续录制中断的录像 {recorder.recording.recording_id}", err=True)
        click.echo(f"可录像时间约 {recordings.minutes_left(recorder):.0f} 分钟", err=True)
        if interactive and recorder.recording is None:
            click.echo(f"待机中（预录 {pre_record:g} 秒），按回车开始录像", err=True)
            threading.Thread(target=_press_on_enter, args=(pressed,), daemon=True).start()
        # Ctrl+C and SIGTERM end the take cleanly: the chain is closed, nothing torn.
        previous = (
            signal.signal(signal.SIGTERM, interrupted),
            signal.signal(signal.SIGINT, interrupted),
        )
        try:
            with recorder:
                result = capture(
                    recordings,
                    recorder,
                    media.frames(),
                    take,
                    stop=stop,
                    pressed=pressed,
                    on_space=on_space,
                )
        except RecorderError as exc:
            click.echo(f"错误：{exc}", err=True)
            sys.exit(2)
        finally:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
    click.echo(result.recording_id)
    click.echo(
        f"录像已结束（{STOP_LABELS.get(result.stop_reason, result.stop_reason)}），"
        f"共 {result.seconds:g} 秒" + ("，已关联案件" if result.event_id else ""),
        err=True,
    )
    if result.stop_reason == "storage_full":
        click.echo("存储空间已满：录像已完整保存并封闭，请上传后再录", err=True)


@click.command()
@click.argument("recording_id")
@click.option("--case", "case_id", required=True, help="Case to attach the recording to.")
@click.option("--for-event", default=None, help="Id of the action this recording documents.")
@click.pass_context
def attach(ctx: click.Context, recording_id: str, case_id: str, for_event: str | None) -> None:
    """Attach a finished recording to a case (an evidence-attached event, synced as usual)."""
    with _recordings(ctx, None) as recordings:
        event = recordings.attach(recording_id, case_id, for_event=for_event)
    click.echo(f"已关联案件 {case_id}：{event.id}")


@click.command()
@click.option(
    "--limit-kbps", type=click.IntRange(min=1), default=None, help="Bandwidth cap (KiB/s)."
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds without progress before stopping (resumed next time).",
)
@click.option(
    "--chunk-kb", type=click.IntRange(16), default=1024, show_default=True, help="Bytes per PATCH."
)
@_quota_option
@click.pass_context
def upload(
    ctx: click.Context,
    limit_kbps: int | None,
    give_up_after: float,
    chunk_kb: int,
    quota_mb: float | None,
) -> None:
    """Upload every finished recording; local files go only once the server sealed them."""
    with _recordings(ctx, quota_mb) as recordings:
        outcomes = recordings.upload_all(
            max_bytes_per_second=limit_kbps * 1024 if limit_kbps else None,
            progress=_Bar(),
            stall_seconds=give_up_after,
            chunk_size=chunk_kb * 1024,
        )
    if not outcomes:
        click.echo("没有待上传的录像")
    for outcome in outcomes:
        click.echo(outcome_text(outcome))
    if any(o.state == "interrupted" for o in outcomes):
        sys.exit(3)
    if any(o.state == "refused" for o in outcomes):
        sys.exit(2)


def _line(line: RecordingLine) -> str:
    case = f"案件 {line.case_id}" if line.case_id else "未关联案件"
    started = line.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if line.started_at else "-"
    return f"{line.recording_id}  {started}  {line.seconds:g} 秒  {case}  [{line.label}]"


@click.command("recordings")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_quota_option
@click.pass_context
def list_recordings(ctx: click.Context, as_json: bool, quota_mb: float | None) -> None:
    """Local recordings and their state (recording, waiting, uploading n%, sealed, refused)."""
    from edge_agent.cli import _echo_json

    with _recordings(ctx, quota_mb) as recordings:
        lines, space = recordings.lines(), recordings.space()
    if as_json:
        _echo_json({"recordings": lines, "space": space})
        return
    for line in lines:
        click.echo(_line(line))
    click.echo(f"可录像时间约 {space.minutes_left:g} 分钟")


def register(group: click.Group) -> None:
    for command in (record, attach, upload, list_recordings):
        group.add_command(command)
