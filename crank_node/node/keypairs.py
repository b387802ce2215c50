"""Keypair files in the Solana CLI's JSON format, loaded without leaking the secret.

The format is what ``solana-keygen new`` writes: a JSON array of the 64
keypair bytes (the 32-byte secret seed, then the 32-byte public key), each an
integer 0..255.

The file must be for its owner only (``chmod 600`` or ``400``): a key that
group or others may read, write or run is refused, saying how to fix it.
Errors name the path and what is wrong, never a byte of the file; the only
thing logged is the public key. Careful with the result: ``str(keypair)`` is
the base58 secret (its ``repr`` is safe); log ``keypair.pubkey()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from supervision.errors import CrankError

if TYPE_CHECKING:
    from solders.keypair import Keypair

__all__ = [
    "KeypairError",
    "KeypairMalformed",
    "KeypairNotFound",
    "KeypairPermissionsTooOpen",
    "KeypairUnreadable",
    "load_keypair",
]

KEYPAIR_BYTES = 64
MAX_FILE_BYTES = 4096  # a keypair file is ~250 bytes: anything this big is not one
_OPEN_TO_OTHERS = stat.S_IRWXG | stat.S_IRWXO


class KeypairError(CrankError):
    """The keypair file cannot be used."""


class KeypairNotFound(KeypairError):
    """The keypair file does not exist."""


class KeypairUnreadable(KeypairError):
    """The keypair file cannot be read."""


class KeypairPermissionsTooOpen(KeypairError):
    """The keypair file is open to group or others: fix it with chmod 600."""


class KeypairMalformed(KeypairError):
    """The keypair file is not a Solana CLI keypair: a JSON array of 64 integers 0..255."""


def load_keypair(path: str | Path) -> Keypair:
    """The keypair in the Solana CLI JSON file at ``path``.

    Raises a :class:`KeypairError` subclass naming ``path`` and the problem.
    """
    path = Path(path).expanduser()
    keypair = _to_keypair(path, _parse(path, _read_private_file(path)))
    logger.bind(action="keypair.loaded", path=str(path), pubkey=str(keypair.pubkey())).info(
        f"loaded keypair {keypair.pubkey()} from {path}"
    )
    return keypair


def _read_private_file(path: Path) -> bytes:
    """The file's bytes, once it is known to be a private regular file of sane size."""
    descriptor = _open(path)
    try:
        # fstat on the open file, not stat on the path: nothing can swap it in between.
        _check_private_file(path, os.fstat(descriptor))
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            return file.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(descriptor)


def _check_private_file(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise KeypairUnreadable(f"keypair file {path}: not a regular file")
    if status.st_mode & _OPEN_TO_OTHERS:
        raise KeypairPermissionsTooOpen(
            f"keypair file {path}: mode {stat.S_IMODE(status.st_mode):04o} lets group or "
            f"others at the secret key; make it the owner's only: chmod 600 {path}"
        )
    if status.st_size > MAX_FILE_BYTES:
        raise KeypairMalformed(f"keypair file {path}: {status.st_size} bytes is too big")


def _open(path: Path) -> int:
    try:
        # O_NONBLOCK: a FIFO would otherwise block here until a writer came (forever, at
        # start); the fstat check then refuses it. Reads of a regular file ignore the flag.
        return os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeypairNotFound(f"keypair file {path}: does not exist") from None
    except PermissionError:
        raise KeypairUnreadable(
            f"keypair file {path}: permission denied to this user (uid {os.getuid()})"
        ) from None
    except OSError as error:
        raise KeypairUnreadable(f"keypair file {path}: {error.strerror}") from None


def _parse(path: Path, raw: bytes) -> list[int]:
    """The 64 numbers, or a :class:`KeypairMalformed` that quotes none of them."""
    document = _decode_json(raw)
    # Raised outside any `except`: a JSONDecodeError holds the whole file (its
    # .doc), and must not ride along as the new exception's __context__.
    if document is None:
        raise KeypairMalformed(f"keypair file {path}: not JSON text")
    if not isinstance(document, list):
        raise KeypairMalformed(
            f"keypair file {path}: holds a JSON {type(document).__name__}, not an array "
            f"of {KEYPAIR_BYTES} integers 0..255"
        )
    if len(document) != KEYPAIR_BYTES:
        raise KeypairMalformed(
            f"keypair file {path}: the array has {len(document)} elements, not {KEYPAIR_BYTES}"
        )
    for index, element in enumerate(document):
        if not _is_byte(element):
            raise KeypairMalformed(f"keypair file {path}: element {index} is not an integer 0..255")
    return document


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _is_byte(element: Any) -> bool:
    return isinstance(element, int) and not isinstance(element, bool) and 0 <= element <= 255


def _to_keypair(path: Path, numbers: list[int]) -> Keypair:
    from solders.keypair import Keypair  # noqa: PLC0415  (solders is slow to import)

    keypair: Keypair | None = None
    # Raised below, outside the except, with a message of our own.
    with contextlib.suppress(ValueError):
        keypair = Keypair.from_bytes(bytes(numbers))
    if keypair is None:
        raise KeypairMalformed(
            f"keypair file {path}: its last 32 bytes are not the public key of its first 32 "
            "(a damaged or hand-edited file?)"
        )
    return keypair
