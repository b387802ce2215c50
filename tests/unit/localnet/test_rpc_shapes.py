"""node_meta: solders' status meta reshaped as Agave serializes it."""

from __future__ import annotations

from localnet.rpc_shapes import JsonAnswer, node_meta, node_result


def test_absent_optional_meta_fields_are_left_out_not_null() -> None:
    """returnData, costUnits and computeUnitsConsumed are omitted when null; err stays."""
    meta = {
        "err": None,
        "fee": 5000,
        "returnData": None,
        "costUnits": None,
        "computeUnitsConsumed": None,
        "loadedAddresses": {"writable": ["a"], "readonly": []},
    }
    shaped = node_meta(meta)
    assert shaped == {
        "err": None,
        "fee": 5000,
        "loadedAddresses": {"writable": ["a"], "readonly": []},
    }


def test_loaded_addresses_is_always_an_object() -> None:
    """A legacy transaction's null loadedAddresses becomes empty lists, as Agave sends."""
    shaped = node_meta({"err": None, "loadedAddresses": None})
    assert shaped == {"err": None, "loadedAddresses": {"writable": [], "readonly": []}}


def test_a_null_result_stays_null_and_answers_serialize_as_json_rpc() -> None:
    """node_result of a missing transaction is a null result in a JSON-RPC envelope."""
    answer = node_result('{"jsonrpc":"2.0","result":null,"id":0}')
    assert answer.result is None
    assert JsonAnswer(None).to_json() == '{"jsonrpc":"2.0","result":null,"id":0}'
