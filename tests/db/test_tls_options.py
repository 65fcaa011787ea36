"""The TLS options of database URLs, read and checked before anything connects.

(Connections over TLS, to servers of the test's own: tests/faults/test_db_tls.py.)
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from podium._urls import mask_url
from podium.db import Database
from podium.db._tls import tls_connect_args
from podium.db.engine import check_url
from podium.exceptions import InvalidDatabaseURL

PG = "postgresql+psycopg://podium:S3cretPW@db1/podium"
MY = "mysql+pymysql://podium:S3cretPW@db1/podium"


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An authority, a certificate and its key, and a file that is none of these."""
    where = tmp_path_factory.mktemp("pem")
    ca = trustme.CA()
    issued = ca.issue_cert("client.test")
    files = {name: where / name for name in ("ca.pem", "cert.pem", "cert.key", "junk.pem")}
    ca.cert_pem.write_to_path(str(files["ca.pem"]))
    issued.cert_chain_pems[0].write_to_path(str(files["cert.pem"]))
    issued.private_key_pem.write_to_path(str(files["cert.key"]))
    files["junk.pem"].write_text("not a certificate\n")
    return files


def test_a_postgresql_certificate_file_means_verify_full_unless_told_otherwise() -> None:
    assert Database(f"{PG}?sslrootcert=/etc/ca.pem").url.query["sslmode"] == "verify-full"
    told = Database(f"{PG}?sslrootcert=/etc/ca.pem&sslmode=verify-ca").url
    assert told.query["sslmode"] == "verify-ca"
    assert "sslmode" not in Database(PG).url.query


NOT_AN_OPTION = "is not a TLS option of"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"{PG}?ssl_ca=/ca.pem", f"ssl_ca= {NOT_AN_OPTION} PostgreSQL; did you mean sslrootcert=?"),
        (f"{MY}?sslrootcert=/ca.pem", f"sslrootcert= {NOT_AN_OPTION} MariaDB/MySQL; did you mean"),
        (f"{MY}?ssl_verify_cert=false", f"ssl_verify_cert= {NOT_AN_OPTION} MariaDB/MySQL (those"),
        (f"{PG}?sslmode=verify_full", "sslmode=verify_full is none of disable, allow, prefer"),
        (f"{MY}?ssl_check_hostname=maybe", "ssl_check_hostname=maybe is neither true nor false"),
        (f"{MY}?ssl_key=/etc/k.pem", "ssl_key= needs ssl_cert=, the certificate it goes with"),
        (f"{PG}?sslmode=require&sslmode=disable", "sslmode= is given more than once"),
        ("sqlite:////tmp/p.sqlite?sslmode=require", "SQLite is a file, it takes no TLS options"),
    ],
)
def test_tls_options_that_cannot_work_are_refused_when_the_url_is_read(url: str, says: str) -> None:
    with pytest.raises(InvalidDatabaseURL, match=r"^Invalid database URL: ") as info:
        Database(url).url  # noqa: B018
    assert says in str(info.value)
    assert "S3cretPW" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "option"),
    [(PG, "sslrootcert"), (PG, "sslcert"), (PG, "sslkey"), (MY, "ssl_ca"), (MY, "ssl_cert")],
)
def test_a_file_that_cannot_be_read_is_refused_unnamed(url: str, option: str) -> None:
    secret = "/nonexistent/S3cretDir/file.pem"
    url = f"{url}?{option}={secret}"
    # Checked with the settings (the database_url setting calls check_url) and on first use.
    for attempt in (lambda: check_url(url), lambda: Database(url).engine):
        with pytest.raises(InvalidDatabaseURL) as info:
            attempt()
        assert f"the file {option}= names cannot be read (No such file or directory)" in str(
            info.value
        )
        assert "S3cret" not in str(info.value)


def test_sslrootcert_system_is_libpq_s_word_for_the_system_authorities() -> None:
    assert check_url(f"{PG}?sslrootcert=system").query["sslmode"] == "verify-full"


def test_mariadb_tls_options_become_a_context_that_always_verifies(pem: dict[str, Path]) -> None:
    files = f"ssl_ca={pem['ca.pem']}&ssl_cert={pem['cert.pem']}&ssl_key={pem['cert.key']}"
    left, args = tls_connect_args(Database(f"{MY}?{files}").url)
    assert not [name for name in left.query if name.startswith("ssl")]
    context = args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # No authority named: the system's; the host name checked or not, the certificate is.
    for options, checks_name in (
        (f"ssl_cert={pem['cert.pem']}&ssl_key={pem['cert.key']}", True),
        (f"ssl_ca={pem['ca.pem']}&ssl_check_hostname=false", False),
    ):
        _, args = tls_connect_args(Database(f"{MY}?{options}").url)
        assert args["ssl"].verify_mode == ssl.CERT_REQUIRED
        assert args["ssl"].check_hostname is checks_name
    assert tls_connect_args(Database(MY).url)[1] == {}


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ("ssl_ca={junk}", "ssl_ca=/ssl_capath= hold no certificate authority"),
        ("ssl_ca={ca}&ssl_cert={junk}", "ssl_cert=/ssl_key= hold no certificate and its key"),
        ("ssl_ca={ca}&ssl_cert={cert}&ssl_key={ca}", "ssl_cert=/ssl_key= hold no certificate"),
        ("ssl_ca={ca}&ssl_cipher=NO-SUCH-CIPHER", "ssl_cipher= names no cipher"),
        ("ssl_capath=/nonexistent", "ssl_capath= names no directory"),
    ],
)
def test_mariadb_tls_files_that_hold_the_wrong_thing_are_refused_unnamed(
    pem: dict[str, Path], options: str, says: str
) -> None:
    files = {"junk": pem["junk.pem"], "ca": pem["ca.pem"], "cert": pem["cert.pem"]}
    url = f"{MY}?{options.format(**files)}"
    with pytest.raises(InvalidDatabaseURL, match=r"^Invalid database URL: ") as info:
        Database(url).engine  # noqa: B018
    assert says in str(info.value)
    assert str(pem["junk.pem"].parent) not in str(info.value)


def test_keys_and_their_passwords_are_masked_wherever_a_url_is_shown() -> None:
    url = f"{PG}?sslrootcert=/etc/ca.pem&sslkey=/etc/S3cretKey.pem&sslpassword=S3cretPass"
    shown = [Database(url).safe_url, repr(Database(url)), mask_url(url)]
    for text in shown:
        assert "S3cret" not in text
        assert "sslkey=***" in text and "sslpassword=***" in text
        assert "sslrootcert=" in text and "sslrootcert=***" not in text
    my = f"{MY}?ssl_cert=/c.pem&ssl_key=/etc/S3cretKey.pem&ssl_key_password=S3cretPass"
    assert "S3cret" not in Database(my).safe_url
    assert mask_url("rabbits://u:p@h/?certfile=/c.pem&keyfile=/k.pem") == (
        "rabbits://u:***@h/?certfile=/c.pem&keyfile=***"
    )


def test_config_show_masks_the_key_and_its_password(pem: dict[str, Path]) -> None:
    url = (
        f"{PG}?sslrootcert={pem['ca.pem']}&sslcert={pem['cert.pem']}"
        f"&sslkey={pem['cert.key']}&sslpassword=S3cretPass"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    done = subprocess.run(
        [sys.executable, "-m", "podium", "config", "show", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PODIUM_DATABASE_URL": url},
        check=True,
    )
    shown = json.loads(done.stdout)["settings"]["database_url"]["value"]
    assert "sslkey=***" in shown and "sslpassword=***" in shown
    assert "S3cret" not in done.stdout and str(pem["cert.key"]) not in done.stdout
