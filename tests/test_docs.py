"""Documentation cannot fall behind: every command is in docs/cli.md and ends with an example."""

from pathlib import Path

import click
import pytest

from monitor.cli import cli

DOCS = Path(__file__).parents[1] / "docs"


@pytest.mark.parametrize("name", cli.list_commands(click.Context(cli)))
def test_every_command_is_documented_with_an_example(name):
    assert f"\n## {name}\n" in (DOCS / "cli.md").read_text(encoding="utf-8")
    command = cli.get_command(click.Context(cli), name)
    # A group's example is in each of its subcommands.
    commands = list(getattr(command, "commands", {}).values()) or [command]
    for each in commands:
        assert "Example:" in (each.help or ""), f"{name}: {each.name} has no Example in its help"


def test_readme_shows_the_two_starting_commands():
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    ci = (DOCS.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in ci.splitlines() if "pytest" in line)
    assert test_command.strip() in readme
    assert "clinicwatch demo" in readme
