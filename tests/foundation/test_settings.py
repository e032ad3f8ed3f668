import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from choreoscope.env import database_from_url, env_bool, env_int, env_list, env_networks, env_str
from tests.conftest import ROOT


def test_env_bool_reads_the_usual_spellings_and_rejects_anything_else():
    assert env_bool("X", False, {"X": "yes"}) is True
    assert env_bool("X", True, {"X": "0"}) is False
    assert env_bool("X", True, {}) is True
    with pytest.raises(ImproperlyConfigured, match="X='maybe' is not a boolean"):
        env_bool("X", False, {"X": "maybe"})


def test_env_int_fails_loudly_on_garbage_and_on_values_below_the_minimum():
    assert env_int("N", 7, {"N": " 12 "}) == 12
    with pytest.raises(ImproperlyConfigured, match="is not an integer"):
        env_int("N", 7, {"N": "twelve"})
    with pytest.raises(ImproperlyConfigured, match="below its minimum"):
        env_int("N", 7, {"N": "0"}, minimum=1)


def test_a_secret_can_come_from_a_file_but_not_from_both_places(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(secret)}) == "s3cret"
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(secret), "SECRET_KEY": "x"})
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(tmp_path / "absent")})


def test_env_list_splits_on_commas_and_drops_blanks():
    assert env_list("H", ["d"], {"H": "a.example, b.example,,"}) == ["a.example", "b.example"]
    assert env_list("H", ["d"], {}) == ["d"]


def test_trusted_proxies_are_addresses_or_networks_and_nothing_else():
    assert env_networks("P", environ={"P": "10.0.0.5, 10.0.0.0/8,::1,*"}) == ["10.0.0.5", "10.0.0.0/8", "::1", "*"]
    assert env_networks("P", environ={}) == []
    with pytest.raises(ImproperlyConfigured, match=r"'proxy\.local' is not an IP address or network"):
        env_networks("P", environ={"P": "10.0.0.5,proxy.local"})


def test_database_url_becomes_a_postgresql_entry():
    entry = database_from_url("postgres://cs:p%40ss@db.internal:6543/choreoscope?sslmode=require")
    assert entry["ENGINE"] == "django.db.backends.postgresql"
    assert (entry["NAME"], entry["USER"], entry["PASSWORD"], entry["HOST"], entry["PORT"]) == (
        "choreoscope",
        "cs",
        "p@ss",
        "db.internal",
        "6543",
    )
    assert entry["OPTIONS"] == {"sslmode": "require"}
    with pytest.raises(ImproperlyConfigured, match="not supported"):
        database_from_url("mysql://db/choreoscope")
    with pytest.raises(ImproperlyConfigured, match="no database name"):
        database_from_url("postgres://db:5432/")


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHOREOSCOPE_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "CHOREOSCOPE_ENV": "production",
    "SECRET_KEY": "k" * 10 + "3fG9!xQ2@vL7#pR5$wT8%zY1^bN4&mC6*dH0(jK)",
    "ALLOWED_HOSTS": "choreoscope.example.com",
}


def test_production_settings_pass_django_deployment_checks_without_a_warning(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key_or_allowed_hosts(tmp_path):
    no_secret = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _manage("check", env={**no_secret, "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    no_hosts = {k: v for k, v in PRODUCTION.items() if k != "ALLOWED_HOSTS"}
    result = _manage("check", env={**no_hosts, "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert "ALLOWED_HOSTS must be set in production" in result.stderr


def test_a_bad_setting_stops_the_process_with_a_message_naming_it(tmp_path):
    result = _manage("check", env={"CHOREOSCOPE_RETENTION_DAYS": "a week", "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "CHOREOSCOPE_RETENTION_DAYS='a week' is not an integer" in result.stderr


def test_production_demands_ingest_tokens_and_the_embedded_default_does_not(settings, tmp_path):
    # The running test process uses the embedded default.
    assert settings.INGEST_AUTH == "optional"
    code = "from django.conf import settings; print(settings.INGEST_AUTH, settings.DEBUG, settings.SESSION_COOKIE_SECURE)"
    result = _manage("shell", "--no-imports", "-c", code, env={**PRODUCTION, "CHOREOSCOPE_DATA_DIR": str(tmp_path)})
    assert result.stdout.split() == ["required", "False", "True"], result.stderr
