"""Documentation cannot fall behind: every command is in docs/cli.md and ends with an example."""

from pathlib import Path

import pytest

from monitor.cli import cli

DOCS = Path(__file__).parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_documented_with_an_example(name):
    assert f"\n## {name}\n" in (DOCS / "cli.md").read_text(encoding="utf-8")
    help_text = cli.commands[name].help or ""
    assert "Example:" in help_text or isinstance(cli.commands[name], type(cli)), name


def test_readme_shows_the_two_starting_commands():
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    ci = (DOCS.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in ci.splitlines() if "pytest" in line)
    assert test_command.strip() in readme
    assert "clinicwatch demo" in readme
