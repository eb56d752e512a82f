"""`python -m chute.bench` (`make bench`): chute side by side with restic and borg."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chute.bench import datasets, runner
from chute.bench.results import TOOL_ORDER


def _tool_list(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    names = [n.strip() for item in value for n in item.split(",") if n.strip()]
    unknown = sorted(set(names) - set(TOOL_ORDER))
    if unknown:
        raise click.BadParameter(
            f"unknown tool(s): {', '.join(unknown)}; choose from " + ", ".join(TOOL_ORDER)
        )
    return tuple(n for n in TOOL_ORDER if n in names) if names else TOOL_ORDER


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-out"),
    show_default=True,
    help="Where data sets are cached and reports, logs and scratch space go.",
)
@click.option("--quick", is_flag=True, help="Small data sets: a smoke run of every phase.")
@click.option(
    "--only",
    "only",
    multiple=True,
    callback=_tool_list,
    metavar="TOOL[,TOOL]",
    help="Run only these tools (chute, restic, borg; repeatable).",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run every phase N times on fresh repositories; report medians.",
)
@click.option(
    "--no-loop",
    is_flag=True,
    help="Use plain folders, not loop-mounted ext4 images (always so without root).",
)
@click.option(
    "--no-drop-caches",
    is_flag=True,
    help="Keep the page cache between commands (warm-cache figures).",
)
@click.option(
    "--no-install",
    is_flag=True,
    help="Do not apt-get install restic or borg when missing; skip them.",
)
def main(
    work_dir: Path,
    quick: bool,
    only: tuple[str, ...],
    repeat: int,
    no_loop: bool,
    no_drop_caches: bool,
    no_install: bool,
) -> None:
    """Build the data sets, run chute, restic and borg phase by phase, print the table.

    Phases: init, first backup (mixed), second backup (mixed-v2), no-change
    backup, full restore (verified by hashing), a find across snapshots, and a
    backup of smallfiles into a fresh repository. Writes report.md and
    report.json in the work directory. Exit status 0 when every step
    succeeded, 1 when one failed (the report says which), 2 for no tool.
    """
    options = runner.Options(
        work_dir=work_dir,
        profile=datasets.QUICK if quick else datasets.FULL,
        tools=only,
        repeat=repeat,
        loop=not no_loop,
        drop_caches=not no_drop_caches,
        install=not no_install,
    )
    sys.exit(runner.run(options))


if __name__ == "__main__":
    main()
