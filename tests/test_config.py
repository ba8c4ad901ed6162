"""A broken config names the file, the key and the problem, and nothing runs (exit 2)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import ConfigError, load_config

GOOD = """\
database: sqlite:///clinicwatch.db
sites:
  - name: aurora
    url: https://aurora.example/
    country: mx
    interval: 6h
alerts:
  smtp: {host: 127.0.0.1, port: 2525, password_env: CW_SMTP_PASSWORD}
  from: alerts@example.org
  subscribers:
    - email: watchdog@example.org
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinicwatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_is_typed_and_relative_database_follows_the_file(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    site = cfg.sites[0]
    assert (site.max_pages, site.max_depth, site.country) == (200, 4, "MX")
    assert site.interval.total_seconds() == 6 * 3600
    assert cfg.database == f"sqlite:///{tmp_path / 'clinicwatch.db'}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("url: https://aurora.example/", "url: aurora"),
            "sites[0].url: not a valid URL: 'aurora'",
        ),
        (
            ("interval: 6h", "intervall: 6h"),
            "sites[0].intervall: unknown key (did you mean 'interval'?)",
        ),
        (("interval: 6h", "interval: soon"), "sites[0].interval: not a duration: 'soon'"),
        (
            ("email: watchdog@example.org", "email: watchdog"),
            "alerts.subscribers[0].email: value is not a valid email address",
        ),
        (
            ("  smtp: {host: 127.0.0.1, port: 2525, password_env: CW_SMTP_PASSWORD}\n", ""),
            "alerts: subscribers are listed but no smtp server is given",
        ),
        (("smtp: {host: 127.0.0.1, ", "smtp: {"), "alerts.smtp.host: required key is missing"),
        (
            ("database: sqlite:///clinicwatch.db", "database: clinicwatch.db"),
            "database: not a database URL: 'clinicwatch.db'",
        ),
        (
            (
                "    country: mx\n",
                "    country: mx\n  - name: aurora\n    url: https://b.example/\n",
            ),
            "site name 'aurora' is used twice",
        ),
        (("sites:", "sites: ["), "invalid YAML"),
    ],
)
def test_broken_config_is_refused_with_file_key_and_problem(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_cli_prints_config_error_once_and_exits_2_without_touching_the_database(tmp_path):
    path = write(tmp_path, GOOD.replace("url: https://aurora.example/", "url: aurora"))
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"clinicwatch: {path}: sites[0].url: not a valid URL: 'aurora' "
        "(expected http:// or https://)"
    )
    assert not (tmp_path / "clinicwatch.db").exists()


def test_missing_config_file_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINICWATCH_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["claims"])
    assert result.exit_code == 2
    assert "clinicwatch.yaml: config file not found" in result.output


def test_config_from_environment_variable(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("CLINICWATCH_CONFIG", str(path))
    result = CliRunner().invoke(cli, ["sites", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert '"name": "aurora"' in result.output and "never checked" in result.output


def test_unknown_site_lists_the_known_ones(tmp_path):
    path = write(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["--config", str(path), "check", "--site", "borealis"])
    assert result.exit_code == 2
    assert "no site named 'borealis' (sites: aurora)" in result.output


def test_smtp_password_comes_from_the_environment_only(tmp_path, monkeypatch):
    monkeypatch.setenv("CW_SMTP_PASSWORD", "s3cret")
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.alerts.smtp.password() == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in cfg.model_dump_json()
    broken = write(tmp_path, GOOD.replace("password_env", "password"))
    with pytest.raises(ConfigError, match=r"alerts.smtp.password: unknown key"):
        load_config(broken)


def test_the_example_config_is_valid():
    example = Path(__file__).parents[1] / "config" / "clinicwatch.example.yaml"
    cfg = load_config(example)
    assert [s.name for s in cfg.sites] == ["aurora", "sakura"]
    assert cfg.alerts.subscribers[1].categories == ["registry_endorsement", "efficacy_promise"]
