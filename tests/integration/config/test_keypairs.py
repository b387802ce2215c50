"""Keypair files in the Solana CLI's JSON format: permissions, format, and no leaked secret."""

from __future__ import annotations

import json
import os
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair

from crank_node.node.keypairs import (
    KeypairError,
    KeypairMalformed,
    KeypairNotFound,
    KeypairPermissionsTooOpen,
    KeypairUnreadable,
    load_keypair,
)


def write_key(path: Path, content: Any, mode: int = 0o600) -> Path:
    """Write ``content`` (JSON-encoded unless already text) and set ``mode``."""
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    path.chmod(mode)
    return path


def secret_forms(keypair: Keypair) -> list[str]:
    """Every way the secret could be written out: base58, the JSON list, its bytes' hex."""
    raw = bytes(keypair)
    return [str(keypair), json.dumps(list(raw)), ",".join(map(str, raw[:8])), raw[:16].hex()]


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_solana_cli_keypair_file_loads(tmp_path: Path, mode: int) -> None:
    """A JSON array of the 64 bytes, owner-only (600 or 400), loads into the same Keypair."""
    keypair = Keypair()
    path = write_key(tmp_path / "id.json", list(bytes(keypair)), mode)
    loaded = load_keypair(path)
    assert loaded.pubkey() == keypair.pubkey()
    assert bytes(loaded) == bytes(keypair)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o610])
def test_a_keypair_open_to_group_or_others_is_refused_saying_how_to_fix_it(
    tmp_path: Path, mode: int
) -> None:
    """Any group or other permission bit refuses the file, naming it, its mode and `chmod 600 PATH`."""
    path = write_key(tmp_path / "id.json", list(bytes(Keypair())), mode)
    with pytest.raises(KeypairPermissionsTooOpen) as caught:
        load_keypair(path)
    assert f"chmod 600 {path}" in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


def test_a_missing_keypair_file_names_the_path(tmp_path: Path) -> None:
    """A path with no file raises KeypairNotFound naming it."""
    with pytest.raises(KeypairNotFound, match=r"absent\.json: does not exist"):
        load_keypair(tmp_path / "absent.json")


def test_a_directory_is_not_a_keypair_file(tmp_path: Path) -> None:
    """A directory at the path is refused as not a regular file."""
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeypairUnreadable, match="not a regular file"):
        load_keypair(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: no permission error to see")
def test_an_unreadable_keypair_file_names_the_path(tmp_path: Path) -> None:
    """A file this user may not read raises KeypairUnreadable naming it."""
    path = write_key(tmp_path / "id.json", list(bytes(Keypair())), 0o000)
    with pytest.raises(KeypairUnreadable, match="permission denied"):
        load_keypair(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2, 3", "not JSON text"),
        ("", "not JSON text"),
        ({"secret": [1] * 64}, "holds a JSON dict, not an array of 64 integers"),
        ([7] * 63, "the array has 63 elements, not 64"),
        ([7] * 63 + [256], "element 63 is not an integer 0..255"),
        ([7] * 10 + [-1] + [7] * 53, "element 10 is not an integer 0..255"),
        ([7] * 10 + [True] + [7] * 53, "element 10 is not an integer 0..255"),
        ([7] * 10 + [1.5] + [7] * 53, "element 10 is not an integer 0..255"),
        ([7] * 64, "last 32 bytes are not the public key of its first 32"),
    ],
)
def test_a_malformed_keypair_file_says_what_is_wrong(
    tmp_path: Path, content: Any, reason: str
) -> None:
    """Each way a file can fail to be a Solana CLI keypair raises KeypairMalformed naming the path and the problem."""
    path = write_key(tmp_path / "id.json", content)
    with pytest.raises(KeypairMalformed) as caught:
        load_keypair(path)
    assert str(caught.value).startswith(f"keypair file {path}: ")
    assert reason in str(caught.value)


def test_binary_garbage_is_malformed_not_a_crash(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported as not JSON, not as a decoding traceback."""
    path = tmp_path / "id.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    path.chmod(0o600)
    with pytest.raises(KeypairMalformed, match="not JSON text"):
        load_keypair(path)


def test_every_error_has_a_useful_default_message() -> None:
    """Raised bare, each keypair error still says what is wrong (its docstring)."""
    assert str(KeypairPermissionsTooOpen()).endswith("fix it with chmod 600.")
    assert "64 integers" in str(KeypairMalformed())
    assert issubclass(KeypairMalformed, KeypairError)


def test_loading_logs_the_public_key_and_never_the_secret(
    tmp_path: Path, captured_logs: list[dict[str, Any]]
) -> None:
    """The one log record names the public key and path; no form of the secret is in any record."""
    keypair = Keypair()
    load_keypair(write_key(tmp_path / "id.json", list(bytes(keypair))))
    loaded = [
        record for record in captured_logs if record["extra"].get("action") == "keypair.loaded"
    ]
    assert len(loaded) == 1
    assert loaded[0]["extra"]["pubkey"] == str(keypair.pubkey())
    text = "\n".join(f"{record['message']} {record['extra']}" for record in captured_logs)
    for secret in secret_forms(keypair):
        assert secret not in text


def _damaged_files(keypair: Keypair) -> list[str]:
    raw = list(bytes(keypair))
    return [
        json.dumps(raw[:63]),  # one byte short
        json.dumps([*raw[:32], *([0] * 32)]),  # public half replaced
        json.dumps([*raw[:63], 999]),  # one byte out of range
        json.dumps(raw)[:-1],  # truncated JSON
        json.dumps({"key": raw}),  # wrapped in an object
    ]


def test_no_error_quotes_the_secret_in_its_message_repr_or_traceback(
    tmp_path: Path, captured_logs: list[dict[str, Any]]
) -> None:
    """For damaged files and open permissions, no exception text, repr, chained context or log record holds the secret."""
    keypair = Keypair()
    cases = [(text, 0o600) for text in _damaged_files(keypair)]
    cases.append((json.dumps(list(bytes(keypair))), 0o644))
    for index, (text, mode) in enumerate(cases):
        path = write_key(tmp_path / f"id{index}.json", text, mode)
        with pytest.raises(KeypairError) as caught:
            load_keypair(path)
        error = caught.value
        assert error.__context__ is None or not isinstance(error.__context__, ValueError)
        rendered = "".join(traceback.format_exception(error)) + repr(error)
        logged = "\n".join(f"{record['message']} {record['extra']}" for record in captured_logs)
        for secret in secret_forms(keypair):
            assert secret not in rendered
            assert secret not in logged


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_wallet_path_that_is_a_fifo_or_a_device_is_refused_without_hanging(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO used to block the start forever in open() (no writer ever came); a device
    would be read as a key. Both are refused at once as not a regular file (issue 15)."""
    if kind == "fifo":
        path = tmp_path / "wallet.json"
        os.mkfifo(path, 0o600)
    else:
        path = Path("/dev/zero")
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_keypair(path)
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if kind == "fifo" and thread.is_alive():  # unblock the open so the thread can end
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("load_keypair blocked on a FIFO")
    assert outcome and isinstance(outcome[0], KeypairUnreadable)
    assert "not a regular file" in str(outcome[0]) and str(path) in str(outcome[0])
