// The signing vectors of docs/API.md (docs/api-vectors.json), rebuilt from their JSON
// by this client: same bytes, same order id, same signature (ed25519 is deterministic).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  encodeCancel, encodeCancelAll, encodeOrder, orderFromJson, orderId, publicKeyOf,
  signCancel, signCancelAll, signOrder,
} from "../dist/index.js";

const vectors = JSON.parse(
  readFileSync(new URL("../../../docs/api-vectors.json", import.meta.url), "utf8"),
);
const seed = Buffer.from(vectors.keypair.seed_hex, "hex");
const hex = (bytes) => Buffer.from(bytes).toString("hex");

test("the keypair's public key comes from its seed", async () => {
  assert.equal(await publicKeyOf(seed), vectors.keypair.public_key);
});

for (const vector of vectors.orders) {
  test(`the ${vector.name} order encodes, hashes and signs as the vector says`, async () => {
    const order = orderFromJson(vector.json);
    assert.equal(hex(encodeOrder(order)), vector.bytes_hex);
    assert.equal(orderId(order), vector.order_id);
    assert.deepEqual(await signOrder(order, seed), vector.json);
  });
}

test("the cancel encodes and signs as the vector says", async () => {
  const json = vectors.cancel.json;
  const request = { orderId: json.order_id, maker: json.maker, timestampS: BigInt(json.timestamp_s) };
  assert.equal(hex(encodeCancel(request)), vectors.cancel.bytes_hex);
  assert.deepEqual(await signCancel(request, seed), json);
});

test("the cancel-all encodes and signs as the vector says", async () => {
  const json = vectors.cancel_all.json;
  const request = { marketId: json.market_id, maker: json.maker, timestampS: BigInt(json.timestamp_s) };
  assert.equal(hex(encodeCancelAll(request)), vectors.cancel_all.bytes_hex);
  assert.deepEqual(await signCancelAll(request, seed), json);
});

test("a u64 past 2^64-1 is refused naming the field", () => {
  const order = orderFromJson(vectors.orders[0].json);
  assert.throws(() => encodeOrder({ ...order, nonce: 1n << 64n }), /nonce/);
});
