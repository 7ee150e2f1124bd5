"""The README keeps up with the CLI: every command is shown there."""

from pathlib import Path

import click

from mloop.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _leaf_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_is_in_the_readme():
    missing = [" ".join(p) for p in _leaf_commands(cli) if f"mloop {' '.join(p)}" not in README]
    assert missing == []


def test_readme_has_exactly_the_two_quickstart_commands():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = quick.split("```bash")[1:]
    commands = [b.split("```", 1)[0].strip() for b in blocks]
    assert len(commands) == 2
    assert commands[0].endswith("mloop demo")
    assert "pytest" in commands[1] and "[test]" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    test_command = quick.split("```bash")[2].split("```", 1)[0].strip()
    assert test_command in ci
    assert "services.sh" in ci and "MLOOP_REQUIRE_SERVICES=1" in ci
