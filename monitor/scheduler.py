"""`clinicwatch run`: check every site on its own interval until SIGINT/SIGTERM.

APScheduler 3.x in a background thread, with its jobs persisted in the clinicwatch database (table
``apscheduler_jobs``), so a restart keeps each site's next run and a run missed while the scheduler
was down happens once, at start. One process per database: a lock (PostgreSQL advisory lock, or a
lock file next to the SQLite file) refuses a second scheduler on the same job store.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from claims_db.engine import open_database
from monitor.cli_support import pass_config
from monitor.config import Config, ConfigError, SiteConfig, load_config

logger = logging.getLogger(__name__)

DEFAULT_JOB_REF = "monitor.scheduler:scheduled_check"
JOBS_TABLE = "apscheduler_jobs"
# Same number in every clinicwatch process; PostgreSQL scopes advisory locks to one database.
ADVISORY_LOCK_KEY = 0x636C696E6963
# Checks crawl in child processes and write to one database; a few at a time is plenty.
MAX_PARALLEL_CHECKS = 4
# coalesce: several missed runs become one. misfire_grace_time=None: a run missed while the
# scheduler was down still happens (the default of 1 s would silently skip it).
JOB_POLICY: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


class SchedulerBusyError(RuntimeError):
    """Another scheduler already runs on this database."""


def job_id(site: SiteConfig) -> str:
    """The job id of a site: ``site:<name>``."""
    return f"site:{site.name}"


# --- the job -----------------------------------------------------------------------------------


def scheduled_check(config_path: str, site_name: str) -> None:
    """The job: reload the config, check one site, log the outcome; never raises.

    The config is read again on every run so edited rules and subscribers apply without a restart
    (new, removed or re-timed sites need a restart of `clinicwatch run`).
    """
    try:
        from monitor.check import check  # imported here: the check pulls in the crawler stack

        report = check(load_config(config_path), site=site_name)
    except Exception:
        # A failing site must not take the scheduler down; the next interval tries again.
        logger.exception("scheduled check of site %r failed", site_name)
        return
    logger.info("scheduled check of site %r done: %s", site_name, report)


# --- one scheduler per database ----------------------------------------------------------------


def _busy(engine: Engine) -> SchedulerBusyError:
    where = engine.url.render_as_string(hide_password=True)
    return SchedulerBusyError(
        f"another `clinicwatch run` is already scheduling checks on {where}; "
        "stop it first (two schedulers would run every check twice)"
    )


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a private in-memory database cannot be shared anyway
        return
    lock_path = Path(f"{database}.scheduler.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(engine) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _postgresql_lock(engine: Engine) -> Iterator[None]:
    # A dedicated autocommit connection: the lock lives as long as this session, and an idle
    # transaction could be cut by idle_in_transaction_session_timeout.
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        locked = connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
        if not locked:
            raise _busy(engine)
        try:
            yield
        finally:
            # If the connection is gone the lock went with it; nothing to undo then.
            with suppress(SQLAlchemyError):
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
    finally:
        connection.close()


@contextmanager
def scheduler_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's scheduler lock; `SchedulerBusyError` if another process holds it."""
    backend = engine.dialect.name
    if backend == "sqlite":
        lock = _sqlite_lock(engine)
    elif backend == "postgresql":
        lock = _postgresql_lock(engine)
    else:
        logger.warning("no scheduler lock for %s databases; run only one scheduler", backend)
        lock = _no_lock()
    with lock:
        yield


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


# --- jobs --------------------------------------------------------------------------------------


def _trigger(site: SiteConfig) -> IntervalTrigger:
    return IntervalTrigger(seconds=site.interval.total_seconds(), timezone=UTC)


def _job_changes(job: Job, site: SiteConfig, job_ref: str, args: list[str]) -> dict[str, Any]:
    """What must change in a persisted job; its next run time stays unless the interval changed."""
    changes: dict[str, Any] = dict(JOB_POLICY)
    if job.func_ref != job_ref or tuple(job.args) != tuple(args):
        changes.update(func=job_ref, args=args, name=site.name)
    if job.trigger.interval != site.interval:
        changes["trigger"] = _trigger(site)
        # A shorter interval must not wait out the old, longer one.
        soonest = datetime.now(UTC) + site.interval
        previous = job.next_run_time
        changes["next_run_time"] = min(previous, soonest) if previous else soonest
    return changes


def sync_jobs(scheduler: BackgroundScheduler, cfg: Config, job_ref: str = DEFAULT_JOB_REF) -> None:
    """Make the persisted jobs match the config: one per site, stale ones removed.

    A new site runs at once; a known site keeps its persisted next run time (so a restart does not
    re-check everything, and a run missed while stopped happens once).
    """
    wanted = {job_id(site): site for site in cfg.sites}
    existing: dict[str, Job] = {}
    for job in scheduler.get_jobs():
        if job.id in wanted:
            existing[job.id] = job
        else:
            scheduler.remove_job(job.id)
            logger.info("job %s removed: its site is no longer in the config", job.id)
    for identifier, site in wanted.items():
        args = [str(cfg.path), site.name]
        job = existing.get(identifier)
        if job is None:
            scheduler.add_job(
                job_ref,
                trigger=_trigger(site),
                args=args,
                id=identifier,
                name=site.name,
                next_run_time=datetime.now(UTC),
                **JOB_POLICY,
            )
        else:
            scheduler.modify_job(identifier, **_job_changes(job, site, job_ref, args))
    for job in scheduler.get_jobs():
        logger.info(
            "job %s: every %s, next run %s", job.id, job.trigger.interval, job.next_run_time
        )


def _make_scheduler(engine: Engine) -> BackgroundScheduler:
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
        executors={"default": ThreadPoolExecutor(max_workers=MAX_PARALLEL_CHECKS)},
        job_defaults=JOB_POLICY,
        timezone=UTC,
    )


# --- running -----------------------------------------------------------------------------------


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "%s received: finishing running checks, then stopping", signal.Signals(signum).name
        )
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_scheduler(
    cfg: Config,
    *,
    stop: threading.Event | None = None,
    job_ref: str = DEFAULT_JOB_REF,
) -> None:
    """Check each site on its interval until SIGINT/SIGTERM or `stop.set()`.

    Jobs live in the database (table ``apscheduler_jobs``) and are synced with the config at start.
    On stop no new check starts and running ones finish. Raises `SchedulerBusyError` when another
    scheduler holds this database, `ConfigError` when `cfg` was not loaded from a file (each run
    re-reads it).
    """
    if cfg.path is None or not cfg.path.is_file():
        raise ConfigError(
            f"{cfg.path or 'config'}: the scheduler needs the config as a file "
            "(each run reads it again); pass --config FILE"
        )
    stop = stop or threading.Event()
    # Migrate once here, before any job runs: concurrent first checks must not race on the schema.
    engine = open_database(cfg.database)
    try:
        with _stop_on_signals(stop), scheduler_lock(engine):
            _serve(engine, cfg, stop, job_ref)
    finally:
        engine.dispose()


def _serve(engine: Engine, cfg: Config, stop: threading.Event, job_ref: str) -> None:
    scheduler = _make_scheduler(engine)
    scheduler.start(paused=True)  # sync first, so no stale job fires during the sync
    try:
        sync_jobs(scheduler, cfg, job_ref)
        scheduler.resume()
        logger.info("scheduler running (%d sites); SIGINT or SIGTERM stops it", len(cfg.sites))
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=True)
        logger.info("scheduler stopped")


@click.command("run")
@pass_config
def run_command(cfg: Config) -> None:
    """Check every site on its interval until stopped with Ctrl-C or SIGTERM.

    Example: clinicwatch --config clinicwatch.yaml run
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        run_scheduler(cfg)
    except SchedulerBusyError as exc:
        raise click.ClickException(str(exc)) from None
