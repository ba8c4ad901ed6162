"""The scheduler on a real database: persisted jobs, intervals, misfires, stopping, the lock.

Jobs run `record_run` below instead of a real check; it appends one line per start and end to
the file named by $CW_SCHEDULER_LOG, so the tests see what ran and in which order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from click.testing import CliRunner

from claims_db.engine import make_engine
from monitor.cli_support import CliContext
from monitor.config import Config, ConfigError, config_from_dict, load_config
from monitor.scheduler import JOBS_TABLE, SchedulerBusyError, run_command, run_scheduler

JOB_REF = "tests.test_scheduler:record_run"
LOG_ENV = "CW_SCHEDULER_LOG"
SLEEP_ENV = "CW_SCHEDULER_JOB_SECONDS"
ROOT = Path(__file__).resolve().parent.parent
WAIT_LIMIT = 30.0  # generous: only reached when something is broken


def record_run(config_path: str, site_name: str) -> None:
    """The test job: note start and end, optionally working for a while in between."""
    log = Path(os.environ[LOG_ENV])
    with log.open("a", encoding="utf-8") as out:
        out.write(f"start {site_name}\n")
    time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
    with log.open("a", encoding="utf-8") as out:
        out.write(f"end {site_name}\n")


def log_lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def write_config(tmp_path: Path, database: str, sites: dict[str, str | float]) -> Config:
    data = {
        "database": database,
        "sites": [
            {"name": name, "url": f"http://127.0.0.1:9/{name}/", "interval": interval}
            for name, interval in sites.items()
        ],
    }
    path = tmp_path / "clinicwatch.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "runs.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    return log


class Running:
    """`run_scheduler` in a thread, as `clinicwatch run` would run it."""

    def __init__(self, cfg: Config) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(cfg,), daemon=True)
        self.thread.start()

    def _run(self, cfg: Config) -> None:
        try:
            run_scheduler(cfg, stop=self.stop, job_ref=JOB_REF)
        except BaseException as exc:
            self.errors.append(exc)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(WAIT_LIMIT)
        assert not self.thread.is_alive(), "scheduler did not stop"
        assert self.errors == []


@pytest.fixture
def start_scheduler() -> Iterator[Callable[[Config], Running]]:
    started: list[Running] = []

    def start(cfg: Config) -> Running:
        started.append(Running(cfg))
        return started[-1]

    yield start
    for running in started:  # a failed test must not leave a scheduler behind
        running.stop.set()
        running.thread.join(WAIT_LIMIT)


def persisted_jobs(database: str) -> dict[str, tuple[timedelta, datetime | None]]:
    engine = make_engine(database)
    try:
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        store.start(None, "default")
        return {job.id: (job.trigger.interval, job.next_run_time) for job in store.get_all_jobs()}
    finally:
        engine.dispose()


def move_next_run(database: str, job_id: str, when: datetime) -> None:
    """What a scheduler that was down during the due time leaves behind."""
    engine = make_engine(database)
    try:
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        store.start(None, "default")
        job = store.lookup_job(job_id)
        job.next_run_time = when
        store.update_job(job)
    finally:
        engine.dispose()


def test_jobs_are_persisted_per_site_and_synced_on_restart(
    tmp_path, sqlite_url, run_log, start_scheduler
):
    cfg = write_config(tmp_path, sqlite_url, {"aurora": "1h", "sakura": "2h"})
    first = start_scheduler(cfg)
    wait_for(lambda: {"end aurora", "end sakura"} <= set(log_lines(run_log)), "first runs")
    first.finish()

    jobs = persisted_jobs(sqlite_url)
    assert set(jobs) == {"site:aurora", "site:sakura"}
    assert jobs["site:aurora"][0] == timedelta(hours=1)
    assert jobs["site:sakura"][0] == timedelta(hours=2)
    aurora_next = jobs["site:aurora"][1]
    assert aurora_next is not None and aurora_next > datetime.now(UTC)

    # sakura leaves the config, kyoto joins; aurora's interval is unchanged.
    cfg = write_config(tmp_path, sqlite_url, {"aurora": "1h", "kyoto": "30m"})
    second = start_scheduler(cfg)
    wait_for(lambda: "end kyoto" in log_lines(run_log), "the new site's immediate run")
    second.finish()

    jobs = persisted_jobs(sqlite_url)
    assert set(jobs) == {"site:aurora", "site:kyoto"}
    assert jobs["site:aurora"][1] == aurora_next  # not reset by the restart
    assert log_lines(run_log).count("start aurora") == 1


def test_changed_interval_is_applied_and_never_waits_longer(
    tmp_path, sqlite_url, run_log, start_scheduler
):
    cfg = write_config(tmp_path, sqlite_url, {"aurora": "1d"})
    first = start_scheduler(cfg)
    wait_for(lambda: "end aurora" in log_lines(run_log), "first run")
    first.finish()

    cfg = write_config(tmp_path, sqlite_url, {"aurora": "1h"})
    second = start_scheduler(cfg)
    second.finish()

    interval, next_run = persisted_jobs(sqlite_url)["site:aurora"]
    assert interval == timedelta(hours=1)
    assert next_run is not None and next_run <= datetime.now(UTC) + timedelta(hours=1)


def test_interval_is_respected(tmp_path, sqlite_url, run_log, start_scheduler):
    cfg = write_config(tmp_path, sqlite_url, {"aurora": 1})
    began = time.monotonic()
    running = start_scheduler(cfg)
    wait_for(lambda: log_lines(run_log).count("end aurora") >= 3, "three runs")
    running.finish()
    elapsed = time.monotonic() - began

    runs = log_lines(run_log).count("start aurora")
    assert runs >= 3
    # One immediate run, then at most one per elapsed interval: it never runs more often.
    assert runs <= elapsed / 1.0 + 1


def test_slow_job_never_overlaps_itself(
    tmp_path, sqlite_url, run_log, start_scheduler, monkeypatch
):
    monkeypatch.setenv(SLEEP_ENV, "1.2")
    cfg = write_config(tmp_path, sqlite_url, {"aurora": 0.3})
    running = start_scheduler(cfg)
    wait_for(lambda: log_lines(run_log).count("end aurora") >= 2, "two slow runs")
    running.finish()

    lines = log_lines(run_log)
    assert lines[:4] == ["start aurora", "end aurora", "start aurora", "end aurora"]
    assert lines == ["start aurora", "end aurora"] * (len(lines) // 2)


def test_run_missed_while_down_happens_once_at_start(
    tmp_path, sqlite_url, run_log, start_scheduler
):
    cfg = write_config(tmp_path, sqlite_url, {"aurora": "1h"})
    first = start_scheduler(cfg)
    wait_for(lambda: "end aurora" in log_lines(run_log), "first run")
    first.finish()
    # Down for three intervals: three runs were missed.
    move_next_run(sqlite_url, "site:aurora", datetime.now(UTC) - timedelta(hours=3, minutes=1))

    second = start_scheduler(cfg)
    wait_for(lambda: log_lines(run_log).count("end aurora") == 2, "the missed run")
    time.sleep(0.5)  # room for a wrongly repeated run to show up
    second.finish()

    assert log_lines(run_log).count("start aurora") == 2
    _, next_run = persisted_jobs(sqlite_url)["site:aurora"]
    assert next_run is not None and next_run > datetime.now(UTC)


def test_stop_waits_for_the_running_check_and_starts_no_new_one(
    tmp_path, sqlite_url, run_log, start_scheduler, monkeypatch
):
    monkeypatch.setenv(SLEEP_ENV, "1.0")
    cfg = write_config(tmp_path, sqlite_url, {"aurora": 0.2, "sakura": 0.2})
    running = start_scheduler(cfg)
    wait_for(lambda: "start aurora" in log_lines(run_log), "a running check")
    running.finish()

    lines = log_lines(run_log)
    starts = [line for line in lines if line.startswith("start")]
    ends = [line for line in lines if line.startswith("end")]
    assert sorted(starts) == sorted(line.replace("end", "start") for line in ends)
    time.sleep(0.5)
    assert log_lines(run_log) == lines  # nothing ran after the stop


def test_sigterm_stops_a_real_run_process_with_exit_0(tmp_path, sqlite_url, run_log):
    cfg = write_config(tmp_path, sqlite_url, {"aurora": "1h"})
    code = (
        "import sys\n"
        "from monitor.config import load_config\n"
        "from monitor.scheduler import run_scheduler\n"
        f"run_scheduler(load_config(sys.argv[1]), job_ref={JOB_REF!r})\n"
    )
    env = {**os.environ, LOG_ENV: str(run_log), SLEEP_ENV: "1.0"}
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(cfg.path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "start aurora" in log_lines(run_log), "the child's first run")
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=WAIT_LIMIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode == 0, output.decode(errors="replace")
    assert log_lines(run_log) == ["start aurora", "end aurora"]  # the check finished first


def test_second_scheduler_on_the_same_database_is_refused(
    tmp_path, database_url, run_log, start_scheduler
):
    cfg = write_config(tmp_path, database_url, {"aurora": "1h"})
    first = start_scheduler(cfg)
    wait_for(lambda: "end aurora" in log_lines(run_log), "the first scheduler")

    with pytest.raises(SchedulerBusyError, match="another `clinicwatch run`"):
        run_scheduler(cfg, stop=threading.Event(), job_ref=JOB_REF)
    context = CliContext(cfg.path)
    result = CliRunner().invoke(run_command, [], obj=context)
    assert result.exit_code == 1 and "already scheduling checks" in result.output

    first.finish()
    # Once the first one has gone, a new scheduler may start.
    stop = threading.Event()
    stop.set()
    run_scheduler(cfg, stop=stop, job_ref=JOB_REF)


def test_config_not_from_a_file_is_refused():
    cfg = config_from_dict({"database": "sqlite:///:memory:"}, path="")
    with pytest.raises(ConfigError, match="needs the config as a file"):
        run_scheduler(cfg)


def test_scheduled_check_logs_a_failure_instead_of_raising(tmp_path, caplog):
    from monitor.scheduler import scheduled_check

    scheduled_check(str(tmp_path / "missing.yaml"), "aurora")

    assert "scheduled check of site 'aurora' failed" in caplog.text
    assert "config file not found" in caplog.text
