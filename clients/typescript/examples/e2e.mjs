// End to end from TypeScript: a seller and a buyer sign crossing orders with this
// client, submit them to a node, and follow the buyer's stream (GET /stream?maker=)
// until the fill's settlement is confirmed on chain. One JSON line per step.
// Usage: node examples/e2e.mjs CONFIG_JSON  (written by tests/clients/test_typescript_client.py)
import { readFileSync } from "node:fs";
import { CrankClient, orderId, publicKeyOf, signOrder } from "../dist/index.js";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const client = new CrankClient(config.url);
const say = (step, detail) => console.log(JSON.stringify({ step, ...detail }));
const expiryS = BigInt(Math.floor(Date.now() / 1000) + 600);

async function order(trader, side, nonce) {
  const seed = Buffer.from(trader.seed_hex, "hex");
  const terms = {
    marketId: config.market_id, side, priceAtoms: BigInt(config.price_atoms),
    sizeAtoms: BigInt(config.size_atoms), maker: await publicKeyOf(seed),
    payAccount: trader.pay_account, receiveAccount: trader.receive_account,
    clientOrderId: BigInt(nonce), expiryS, nonce: (1n << 53n) + BigInt(nonce),
  };
  const signed = await signOrder(terms, seed);
  const stored = await client.submitOrder(signed);
  if (stored.order_id !== orderId(terms)) throw new Error("the node's order id differs");
  say("submitted", { side, order_id: stored.order_id, status: stored.status, nonce: stored.nonce });
  return stored;
}

async function followUntilSettled(maker, deadlineMs) {
  const signal = AbortSignal.timeout(deadlineMs);
  for await (const { event, id, data } of client.stream({ maker }, { signal })) {
    say("event", { event, id, data });
    if (data?.settlement?.state === "confirmed") return data;
  }
  throw new Error("the stream ended before the fill settled");
}

const sell = await order(config.seller, "sell", 1);
const buyer = await publicKeyOf(Buffer.from(config.buyer.seed_hex, "hex"));
const settled = followUntilSettled(buyer, config.deadline_ms);
const buy = await order(config.buyer, "buy", 2);
const done = await settled;
say("settled", { fill_id: done.fill_id, signature: done.settlement.signature,
  buy: buy.order_id, sell: sell.order_id });
