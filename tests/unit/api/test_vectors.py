"""docs/api-vectors.json and docs/API.md against market/: the signing contract
a maker in any language implements holds exactly what the node checks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from market import (
    Market,
    SignedCancel,
    SignedOrder,
    market_definition_bytes,
    market_definition_refusal,
)
from market.cancel_all import SignedCancelAll
from tests.unit.api.vectors import VECTORS_PATH, render

API_MD = VECTORS_PATH.parent / "API.md"


def _vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
    return loaded


def test_the_checked_in_vectors_are_what_market_builds_today() -> None:
    """Regenerating the vectors from market/ gives the checked-in file byte for byte
    (run ``python -m tests.unit.api.vectors`` after a deliberate change)."""
    assert VECTORS_PATH.read_text() == render()


def test_the_keypair_of_the_vectors_comes_from_its_seed() -> None:
    """The published seed, public key and 64-byte secret key agree."""
    keys = _vectors()["keypair"]
    keypair = Keypair.from_seed(bytes.fromhex(keys["seed_hex"]))

    assert str(keypair.pubkey()) == keys["public_key"]
    assert str(keypair) == keys["secret_key_base58"]


@pytest.mark.parametrize("index", [0, 1], ids=["buy", "sell"])
def test_each_order_vector_decodes_encodes_hashes_and_verifies(index: int) -> None:
    """The vector's JSON (u64s as decimal strings) parses to the order whose canonical
    bytes are the hex; the order id is base58(SHA-256(bytes)), computed here without
    market/; the signature verifies over exactly those bytes."""
    vector = _vectors()["orders"][index]
    signed = SignedOrder.from_json(vector["json"])
    raw = bytes.fromhex(vector["bytes_hex"])

    assert signed.order.encode() == raw and len(raw) == 188
    assert str(Pubkey.from_bytes(hashlib.sha256(raw).digest())) == vector["order_id"]
    assert signed.order_id == vector["order_id"]
    assert Signature.from_string(vector["signature"]).verify(signed.order.maker, raw)
    signed.verify()


def test_the_cancel_vectors_encode_and_verify() -> None:
    """The cancel (92 bytes) and the cancel-all (96 bytes) parse from their JSON, encode
    to their hex, and their signatures verify."""
    vectors = _vectors()
    cancel = SignedCancel.from_json(vectors["cancel"]["json"])
    cancel_all = SignedCancelAll.from_json(vectors["cancel_all"]["json"])

    assert cancel.request.encode().hex() == vectors["cancel"]["bytes_hex"]
    assert cancel.request.order_id == vectors["orders"][0]["order_id"]
    assert len(cancel.request.encode()) == 92
    cancel.verify()
    assert cancel_all.request.encode().hex() == vectors["cancel_all"]["bytes_hex"]
    assert len(cancel_all.request.encode()) == 96
    cancel_all.verify()


def test_api_md_shows_every_vector_value() -> None:
    """docs/API.md prints each vector's bytes, order id and signature as the file has them."""
    text = API_MD.read_text()
    vectors = _vectors()
    values = [vectors["keypair"]["seed_hex"], vectors["keypair"]["public_key"]]
    for vector in (*vectors["orders"], vectors["cancel"], vectors["cancel_all"], vectors["market"]):
        values += [vector["bytes_hex"], vector["signature"]]
        values += [vector["order_id"]] if "order_id" in vector else []

    missing = [value for value in values if value not in text.replace("\n", "")]
    assert missing == []


def test_the_market_definition_vector_encodes_and_verifies() -> None:
    """The market's JSON rebuilds the 230 bytes, signed by its settlement authority."""
    vector = _vectors()["market"]
    market = Market.from_json(vector["json"])
    signature = Signature.from_string(vector["signature"])

    assert market_definition_bytes(market).hex() == vector["bytes_hex"]
    assert len(bytes.fromhex(vector["bytes_hex"])) == 230
    assert market_definition_refusal(market, signature) is None
