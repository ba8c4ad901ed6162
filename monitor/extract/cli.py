"""The ``evaluate`` command: the extractor's precision, recall and F1 on the labelled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.config import ConfigError
from monitor.extract.evaluate import evaluate, format_table
from monitor.extract.extractor import load_extractor

DEFAULT_CORPUS = Path("tests/labelled")


@click.command("evaluate")
@click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CORPUS,
    show_default=True,
    help="Folder of labelled *.jsonl files.",
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Rules folder (default: config/rules).",
)
@click.option("--mistakes", is_flag=True, help="Also list the items the extractor got wrong.")
def evaluate_command(
    corpus_dir: Path, output_format: str, rules_dir: Path | None, mistakes: bool
) -> None:
    """Print precision, recall, F1 and support per category and language, and overall.

    Example: clinicwatch evaluate --corpus tests/labelled --format table
    """
    try:
        report = evaluate(corpus_dir, load_extractor(rules_dir))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if output_format == "json":
        data = report.as_dict()
        if mistakes:
            data["mistakes"] = [m.__dict__ for m in report.mistakes]
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(format_table(report))
    if mistakes:
        for m in report.mistakes:
            click.echo(f"{m.lang} [{m.kind}] missed={m.missed} spurious={m.spurious}: {m.text}")


if __name__ == "__main__":
    evaluate_command()
