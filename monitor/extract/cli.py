"""The ``evaluate`` command: the extractor's precision, recall and F1 on the labelled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.config import ConfigError
from monitor.extract.evaluate import (
    ALL,
    SPLITS,
    EvaluationReport,
    evaluate,
    evaluate_splits,
    format_summary,
    format_table,
)
from monitor.extract.extractor import Extractor, load_extractor

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
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default=None,
    help="Only this part of the corpus (default: a dev / held-out / all summary, then all).",
)
@click.option(
    "--pages",
    is_flag=True,
    help="Read the items of one source_url as one page (its blocks, in corpus order).",
)
@click.option("--mistakes", is_flag=True, help="Also list the items the extractor got wrong.")
@click.option(
    "--rules-only",
    is_flag=True,
    help="Switch the model stage (config/rules/model.yaml) off: the rules alone.",
)
def evaluate_command(
    corpus_dir: Path,
    output_format: str,
    rules_dir: Path | None,
    split: str | None,
    pages: bool,
    mistakes: bool,
    rules_only: bool,
) -> None:
    """Print precision, recall, F1 and support per category and language, and overall.

    Look for classes of errors with ``--mistakes --split dev`` only; the held-out figures are the
    honest ones. ``--pages`` reads a real-text corpus as the pages its items came from, so the
    page's context counts, as it does on the web.

    Example: clinicwatch evaluate --corpus tests/labelled_real --split held-out
    """
    try:
        extractor = (
            Extractor(rules_dir, use_model=False) if rules_only else load_extractor(rules_dir)
        )
        if split:
            reports = {split: evaluate(corpus_dir, extractor, split, pages=pages)}
        else:
            reports = evaluate_splits(corpus_dir, extractor, pages=pages)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    shown = reports[split or ALL]
    if output_format == "json":
        click.echo(json.dumps(_json(reports, shown, mistakes), ensure_ascii=False, indent=2))
        return
    if not split:
        for lang in ("en", "ja", "zh", ALL):
            click.echo(format_summary(reports, lang) + "\n")
    click.echo(format_table(shown))
    if mistakes:
        for m in shown.mistakes:
            click.echo(f"{m.lang} [{m.kind}] missed={m.missed} spurious={m.spurious}: {m.text}")


def _json(
    reports: dict[str, EvaluationReport], shown: EvaluationReport, mistakes: bool
) -> dict[str, object]:
    """The shown split's report at the top level, every split's scores under ``splits``."""
    data: dict[str, object] = shown.as_dict()
    data["splits"] = {name: report.as_dict() for name, report in reports.items()}
    if mistakes:
        data["mistakes"] = [m.__dict__ for m in shown.mistakes]
    return data


if __name__ == "__main__":
    evaluate_command()
