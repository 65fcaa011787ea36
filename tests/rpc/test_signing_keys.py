"""Signing keys: `podium keys`, the key files, the keys directory and the settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from podium.cli import main
from podium.config import ConfigError
from podium.rpc import KeyRing, MessageSigning, Sender, SigningKey
from podium.rpc import _codec as codec
from podium.service.config import ServiceConfig

ENV = {"PODIUM_CONFIG": ""}


def keys(*args: str, cwd: Path) -> Result:
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, ["keys", *args], env=ENV)
    finally:
        os.chdir(old)


def test_keys_create_writes_a_private_key_only_its_owner_reads_and_the_public_half(
    tmp_path: Path,
) -> None:
    result = keys(
        "create", "--service", "compute", "--host", "h1", "--keys-dir", "pub", cwd=tmp_path
    )
    assert result.exit_code == 0, result.output
    private, public = tmp_path / "compute.h1.key", tmp_path / "pub" / "compute.h1.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    # The pair works: what the private key signs, the keys directory verifies.
    key = SigningKey.load(private, Sender("compute", "h1"))
    signing = MessageSigning(None, KeyRing(tmp_path / "pub"), require_signed=True)
    request = {"method": "m", "args": {}, "_unique_id": "u1", codec.DESTINATION: "t"}
    message = codec.decode(codec.encode(request, key))
    assert signing.check_request(message[codec.SEAL], "u1", {"t"}) == Sender("compute", "h1")
    assert keys("list", "--keys-dir", "pub", cwd=tmp_path).output.split() == ["compute.h1"]


def test_keys_create_replaces_keys_only_with_force(tmp_path: Path) -> None:
    args = ("create", "--service", "compute", "--host", "h1", "--keys-dir", "pub")
    assert keys(*args, cwd=tmp_path).exit_code == 0
    first = (tmp_path / "compute.h1.key").read_bytes()
    again = keys(*args, cwd=tmp_path)
    assert again.exit_code != 0
    assert "compute.h1.key exists: --force replaces it" in again.output
    assert (tmp_path / "compute.h1.key").read_bytes() == first
    assert keys(*args, "--force", cwd=tmp_path).exit_code == 0
    assert (tmp_path / "compute.h1.key").read_bytes() != first


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--service", "Compute", "--host", "h1", "--keys-dir", "pub"), "not a service name"),
        (("--service", "compute", "--host", "h 1", "--keys-dir", "pub"), "not a host name"),
        (("--service", "compute", "--host", "h1"), "--keys-dir DIR"),
        (
            ("--service", "compute", "--host", "h1", "--keys-dir", "pub", "--key-file", "pub/k"),
            "must not go in the keys directory",
        ),
    ],
)
def test_keys_create_refuses_what_would_not_work(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    result = keys("create", *args, cwd=tmp_path)
    assert result.exit_code != 0
    assert said in result.output
    assert not (tmp_path / "compute.h1.key").exists()


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    key = SigningKey.generate(Sender("compute", "h1"))
    path = tmp_path / "compute.h1.key"
    path.write_bytes(key.private_pem())
    path.chmod(0o640)
    with pytest.raises(ValueError, match=r"may be read by others \(mode 640\): chmod 600"):
        SigningKey.load(path, Sender("compute", "h1"))
    path.chmod(0o600)
    assert SigningKey.load(path, Sender("compute", "h1")).sender.name == "compute.h1"
    path.write_bytes(b"not a key")
    with pytest.raises(ValueError, match="no usable private key"):
        SigningKey.load(path, Sender("compute", "h1"))


def test_the_settings_make_the_signing_of_a_service(tmp_path: Path) -> None:
    key = SigningKey.generate(Sender("compute", "h1"))
    (tmp_path / "compute.h1.key").write_bytes(key.private_pem())
    (tmp_path / "compute.h1.key").chmod(0o600)
    (tmp_path / "pub").mkdir()
    env = {
        "PODIUM_HOST": "h1",
        "PODIUM_KEY_FILE": str(tmp_path / "compute.h1.key"),
        "PODIUM_KEYS_DIR": str(tmp_path / "pub"),
        "PODIUM_REQUIRE_SIGNED": "true",
        "PODIUM_SIGNATURE_WINDOW": "30",
    }
    signing = ServiceConfig.load(environ=env).message_signing("compute")
    assert signing is not None
    assert (signing.sender, signing.require_signed, signing.window) == (
        Sender("compute", "h1"),
        True,
        30.0,
    )
    assert ServiceConfig.load(environ={}).message_signing("compute") is None
    with pytest.raises(ConfigError, match="require_signed = true needs keys_dir"):
        ServiceConfig.load(environ={"PODIUM_REQUIRE_SIGNED": "1"}).message_signing("compute")
    with pytest.raises(ConfigError, match=r"keys directory \S+ does not exist"):
        ServiceConfig.load(environ={"PODIUM_KEYS_DIR": str(tmp_path / "none")}).message_signing(
            "compute"
        )
    with pytest.raises(ConfigError, match=r"SIGNATURE_WINDOW=0 \(environment\): must be greater"):
        ServiceConfig.load(environ={"PODIUM_SIGNATURE_WINDOW": "0"})


def test_a_key_removed_from_the_directory_is_no_longer_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podium.rpc import _signing

    key = SigningKey.generate(Sender("compute", "h1"))
    public = tmp_path / "compute.h1.pub"
    public.write_bytes(key.public_pem())
    ring = KeyRing(tmp_path)
    assert ring.get("compute.h1") is not None
    public.unlink()
    monkeypatch.setattr(_signing, "_RECHECK_SECONDS", 0.0)
    assert ring.get("compute.h1") is None
    assert ring.get("../etc/passwd") is None  # names from the wire never walk the file system


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"podium.sender": 7}, "bad_signature"),
        ({"podium.sent_at": "now"}, "bad_signature"),
        ({"podium.sent_at": True}, "bad_signature"),
        ({"podium.signature": "not base64!"}, "bad_signature"),
        ({"podium.signature": ["x"]}, "bad_signature"),
        ({"podium.sender": "../../etc/passwd"}, "unknown_key"),
        ({"podium.sender": "nodot"}, "unknown_key"),
        ({"podium.to": ["t"]}, "bad_signature"),
        ({"podium.to": "t.other"}, "bad_signature"),
    ],
)
def test_ill_formed_signing_fields_are_refused_for_what_they_are(
    fields: dict[str, object], kind: str
) -> None:
    import orjson

    from podium.rpc._signing import Refusal

    key = SigningKey.generate(Sender("compute", "h1"))
    ring = KeyRing()
    ring.add("compute.h1", key.public_pem())
    outer = orjson.loads(codec.encode({"method": "m", "args": {}, codec.DESTINATION: "t"}, key))
    outer.update(fields)
    message = codec.decode(orjson.dumps(outer))
    with pytest.raises(Refusal) as refused:
        MessageSigning(None, ring, require_signed=True).check_request(
            message[codec.SEAL], "u", {"t"}
        )
    assert refused.value.kind == kind


@pytest.mark.parametrize("sent_at_ms", [-1, 2**53, 2**63 - 1])
def test_a_good_signature_over_an_impossible_send_time_is_refused_as_stale(
    sent_at_ms: int,
) -> None:
    from podium.rpc._signing import Refusal

    key = SigningKey.generate(Sender("compute", "h1"), clock=lambda: sent_at_ms * 1_000_000)
    ring = KeyRing()
    ring.add("compute.h1", key.public_pem())
    message = codec.decode(codec.encode({"method": "m", "args": {}, codec.DESTINATION: "t"}, key))
    with pytest.raises(Refusal, match="no usable send time") as refused:
        MessageSigning(None, ring, require_signed=True).check_request(
            message[codec.SEAL], "u", {"t"}
        )
    assert refused.value.kind == "stale"
