"""The `clinicwatch` command line: each command parses, calls one API function, prints.

Exit codes: 0 success; 1 a runtime problem (database unreachable, unreadable file);
2 bad configuration or usage.
"""

from __future__ import annotations

import importlib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import OperationalError

from claims_db.codebook import CATEGORIES, EVENT_TYPES
from claims_db.queries import CHANGE_COLUMNS, CLAIM_COLUMNS, SITE_COLUMNS
from monitor import api
from monitor.check import SUMMARY_COLUMNS
from monitor.cli_support import CliContext, emit_rows, output_format, pass_config
from monitor.config import Config, ConfigError


def fail(message: str, code: int = 1) -> None:
    """Print ``clinicwatch: message`` on stderr (every line prefixed) and exit."""
    for line in message.splitlines() or [""]:
        click.echo(f"clinicwatch: {line}", err=True)
    sys.exit(code)


# Commands that live beside the feature they drive, imported only when used (the web app and the
# exporters pull in heavy libraries that `clinicwatch check` does not need).
FEATURE_COMMANDS = {
    "run": "monitor.scheduler:run_command",
    "alerts": "monitor.alerts:alerts_command",
    "export": "monitor.export_cli:export_command",
    "evaluate": "monitor.extract.cli:evaluate_command",
    "serve": "monitor.web.cli:serve_command",
    "users": "monitor.web.cli:users_group",
}


class ClinicwatchGroup(click.Group):
    """Loads feature commands lazily; turns known errors into one clear message and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *FEATURE_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in FEATURE_COMMANDS and name not in self.commands:
            module_name, attribute = FEATURE_COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail(str(exc), 2)
        except OperationalError as exc:
            fail(f"database: {exc.orig or exc}", 1)
        except BrokenPipeError:
            # The reader went away (`clinicwatch claims | head`): stop quietly, like other tools.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as exc:
            fail(str(exc), 1)


@click.group(cls=ClinicwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CLINICWATCH_CONFIG",
    help="Config file (default: $CLINICWATCH_CONFIG, then ./clinicwatch.yaml).",
)
@click.version_option(package_name="clinicwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Watch clinic websites for efficacy and registry-as-endorsement claims."""
    ctx.obj = CliContext(config_path)


@cli.command("check")
@click.option("--site", help="Check only this site (its name in the config).")
@output_format
@pass_config
def check_command(cfg: Config, site: str | None, fmt: str) -> None:
    """Run one full cycle: crawl, extract, diff, alert.

    Sites that cannot be fetched are reported, not fatal (exit 0).

    Example: clinicwatch check --site aurora
    """
    report = api.check(cfg, site=site)
    rows = report.summary_rows()
    emit_rows(rows, fmt, SUMMARY_COLUMNS)
    if fmt == "table":
        click.echo(
            f"alerts: {report.alerts_queued} queued, {report.alerts_sent} sent, "
            f"{report.alerts_failed} waiting to be retried"
        )
        for error in report.alert_errors:
            click.echo(f"  {error}", err=True)


@cli.command("claims")
@click.option("--site", help="Only this site.")
@click.option("--category", type=click.Choice(CATEGORIES), help="Only this category.")
@click.option("--all", "include_removed", is_flag=True, help="Include removed claims.")
@output_format
@pass_config
def claims_command(
    cfg: Config, site: str | None, category: str | None, include_removed: bool, fmt: str
) -> None:
    """List current claims, one per line.

    Example: clinicwatch claims --format jsonl --category registry_endorsement
    """
    rows = api.claims(cfg, site=site, category=category, include_removed=include_removed)
    emit_rows(rows, fmt, CLAIM_COLUMNS)


def _parse_since(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO date or datetime: {value!r}") from None


@cli.command("changes")
@click.option("--site", help="Only this site.")
@click.option("--event", type=click.Choice(list(EVENT_TYPES)), help="Only this event type.")
@click.option("--category", type=click.Choice(CATEGORIES), help="Only this category.")
@click.option("--since", callback=_parse_since, help="Only events detected at or after (ISO).")
@output_format
@pass_config
def changes_command(
    cfg: Config,
    site: str | None,
    event: str | None,
    category: str | None,
    since: datetime | None,
    fmt: str,
) -> None:
    """List change events (new, changed, removed, reclassified), oldest first.

    Example: clinicwatch changes --format jsonl --since 2026-11-01
    """
    rows = api.changes(cfg, site=site, event=event, category=category, since=since)
    emit_rows(rows, fmt, CHANGE_COLUMNS)


@cli.command("sites")
@output_format
@pass_config
def sites_command(cfg: Config, fmt: str) -> None:
    """List configured sites with their last check.

    Example: clinicwatch sites
    """
    emit_rows(api.sites(cfg), fmt, SITE_COLUMNS)


@cli.command("extract")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--lang", type=click.Choice(["en", "ja", "zh"]), help="Language hint.")
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Rules folder (default: the bundled config/rules).",
)
@output_format
def extract_command(
    files: tuple[str, ...], lang: str | None, rules_dir: Path | None, fmt: str
) -> None:
    """Find claims in local .html/.txt files (no database, no config needed).

    Example: clinicwatch extract page.html notes.txt --format jsonl
    """
    rows = api.extract_files(files, rules_dir=rules_dir, lang=lang)
    emit_rows(rows, fmt, ["source", "category", "lang", "text"])


@cli.command("reextract")
@click.option("--site", help="Only this site.")
@pass_config
def reextract_command(cfg: Config, site: str | None) -> None:
    """Re-apply the current rules to stored snapshots; differences become `reclassified` events.

    Reclassifications are listed by `changes` and never e-mailed.

    Example: clinicwatch reextract
    """
    for name, count in api.reextract(cfg, site=site).items():
        click.echo(f"{name}: {count} reclassified")


@cli.command("demo")
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("clinicwatch-demo"),
    show_default=True,
    help="Where the demo keeps its config, database and e-mails (recreated each run).",
)
def demo_command(workdir: Path) -> None:
    """Demonstrate a whole cycle on bundled sample clinic sites, offline.

    Serves two sample sites on loopback, checks them (baseline), edits them, checks again, prints
    the change events and the alert e-mail.

    Example: clinicwatch demo
    """
    from monitor.demo import run_demo

    run_demo(workdir, echo=click.echo)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="clinicwatch")
