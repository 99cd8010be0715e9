"""``python -m tour [--seconds N] [--exit]``: run the tour, then keep the server up until Ctrl+C."""

from __future__ import annotations

import sys

import click

from edge_agent.client import EdgeError
from server.core.settings import load_settings
from tour.parts import TourFailed
from tour.story import Tour


@click.command()
@click.option(
    "--seconds",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Length of the recording (after the pre-record buffer).",
)
@click.option("--exit", "exit_at_end", is_flag=True, help="Stop the server at the end.")
def main(seconds: float, exit_at_end: bool) -> None:
    """Run the server and two simulated terminals through one whole case, narrated."""
    tour = Tour(load_settings(), seconds)
    try:
        tour.run()
    except (TourFailed, EdgeError) as exc:
        reason = f"{exc.message}（{exc.code}）" if isinstance(exc, EdgeError) else str(exc)
        click.echo(click.style(f"\nThe tour stopped: {reason}", fg="red", bold=True), err=True)
        click.echo(f"server log: {tour.server.log_path}", err=True)
        tour.server.stop()
        sys.exit(1)
    except BaseException:
        tour.server.stop()
        raise
    if exit_at_end:
        tour.server.stop()
        return
    click.echo(click.style("\nThe server keeps running; Ctrl+C stops it.", bold=True))
    try:
        tour.server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        tour.server.stop()


if __name__ == "__main__":
    main()
