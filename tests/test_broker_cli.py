"""``podium broker setup`` with no broker: what it would run, its mistakes told in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from podium.cli import main

DOC = Path(__file__).parents[1] / "docs" / "broker.md"


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["broker", "setup", *args], env={"PODIUM_CONFIG": "", **(env or {})}
    )
    return result.exit_code, result.output


def test_the_dry_run_docs_broker_md_shows_is_what_it_prints() -> None:
    blocks = re.findall(
        r"^```console\n\$ (podium broker setup --dry-run[^\n]*)\n(.*?)^```",
        DOC.read_text(),
        re.DOTALL | re.MULTILINE,
    )
    assert blocks, "docs/broker.md shows no dry run"
    for command, shown in blocks:
        code, output = _run(*command.split()[3:])
        assert code == 0, output
        assert output == shown


def test_a_dry_run_names_no_password_and_writes_nothing(tmp_path: Path) -> None:
    code, output = _run("--dry-run", "--service", "api", "--secrets-dir", str(tmp_path / "s"))
    assert code == 0, output
    assert "$PASSWORD" in output
    assert not (tmp_path / "s").exists()


def test_with_no_account_asked_for_it_says_which_flags() -> None:
    code, output = _run("--dry-run")
    assert code == 2
    assert "--service NAME and/or --compute-host HOST" in output


def test_an_unknown_service_is_a_usage_error() -> None:
    code, output = _run("--dry-run", "--service", "compute")
    assert code == 2
    assert "'compute' is not one of" in output


def test_without_rabbitmqctl_it_says_where_to_run_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, output = _run("--service", "api", "--secrets-dir", str(tmp_path / "s"))
    assert code == 1
    assert "rabbitmqctl is not on the PATH: run this on the broker's machine" in output
    assert not (tmp_path / "s").exists()


def test_the_services_offered_are_those_whose_permissions_are_known() -> None:
    from podium.broker_cli import ROLES, _roles

    assert set(ROLES) == set(_roles("conductor"))
