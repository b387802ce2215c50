/**
 * crank-node reference client: the order, cancel and cancel-all of docs/API.md, their
 * canonical bytes, ids and ed25519 signatures, and the HTTP calls that submit them.
 *
 * u64 fields are `bigint` here and decimal strings on the wire: a JavaScript number
 * loses precision above 2^53 (the node refuses one as a JSON number).
 */
import { createHash } from "node:crypto";
import * as ed from "@noble/ed25519";
import bs58 from "bs58";

export type Side = "buy" | "sell";

export interface Order {
  marketId: string;
  side: Side;
  priceAtoms: bigint;
  sizeAtoms: bigint;
  maker: string;
  payAccount: string;
  receiveAccount: string;
  clientOrderId: bigint;
  expiryS: bigint;
  nonce: bigint;
}

export interface CancelRequest {
  orderId: string;
  maker: string;
  timestampS: bigint;
}

export interface CancelAllRequest {
  marketId: string;
  maker: string;
  timestampS: bigint;
}

/** A JSON document as the node takes it: u64s as decimal strings. */
export type Json = Record<string, string>;

const ORDER_DOMAIN = "crank-node:order:v1";
const CANCEL_DOMAIN = "crank-node:cancel:v1";
const CANCEL_ALL_DOMAIN = "crank-node:cancel-all:v1";
const U64_MAX = (1n << 64n) - 1n;
const MARKET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

class Writer {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private offset = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  ascii(text: string, width?: number): void {
    const encoded = new TextEncoder().encode(text);
    this.bytes.set(encoded, this.offset);
    this.offset += width ?? encoded.length; // the rest stays NUL
  }

  key(base58: string, field: string): void {
    const decoded = bs58.decode(base58);
    if (decoded.length !== 32) throw new Error(`${field}: must be base58 of 32 bytes`);
    this.bytes.set(decoded, this.offset);
    this.offset += 32;
  }

  u8(value: number): void {
    this.view.setUint8(this.offset, value);
    this.offset += 1;
  }

  u64(value: bigint, field: string): void {
    if (value < 0n || value > U64_MAX) throw new Error(`${field}: must be between 0 and 2^64-1`);
    this.view.setBigUint64(this.offset, value, true);
    this.offset += 8;
  }

  done(): Uint8Array {
    if (this.offset !== this.bytes.length) throw new Error("layout size mismatch");
    return this.bytes;
  }
}

function marketId(writer: Writer, id: string): void {
  if (!MARKET_ID.test(id)) throw new Error(`market_id: not a market id: ${id}`);
  writer.ascii(id, 32);
}

/** The 188 canonical bytes of `crank-node:order:v1`. */
export function encodeOrder(order: Order): Uint8Array {
  const w = new Writer(188);
  w.ascii(ORDER_DOMAIN);
  marketId(w, order.marketId);
  w.u8(order.side === "buy" ? 0 : 1);
  w.u64(order.priceAtoms, "price_atoms");
  w.u64(order.sizeAtoms, "size_atoms");
  w.key(order.maker, "maker");
  w.key(order.payAccount, "pay_account");
  w.key(order.receiveAccount, "receive_account");
  w.u64(order.clientOrderId, "client_order_id");
  w.u64(order.expiryS, "expiry_s");
  w.u64(order.nonce, "nonce");
  return w.done();
}

/** The 92 canonical bytes of `crank-node:cancel:v1`. */
export function encodeCancel(request: CancelRequest): Uint8Array {
  const w = new Writer(92);
  w.ascii(CANCEL_DOMAIN);
  w.key(request.orderId, "order_id");
  w.key(request.maker, "maker");
  w.u64(request.timestampS, "timestamp_s");
  return w.done();
}

/** The 96 canonical bytes of `crank-node:cancel-all:v1`. */
export function encodeCancelAll(request: CancelAllRequest): Uint8Array {
  const w = new Writer(96);
  w.ascii(CANCEL_ALL_DOMAIN);
  marketId(w, request.marketId);
  w.key(request.maker, "maker");
  w.u64(request.timestampS, "timestamp_s");
  return w.done();
}

/** base58(SHA-256(canonical bytes)): known before signing. */
export function orderId(order: Order): string {
  return bs58.encode(createHash("sha256").update(encodeOrder(order)).digest());
}

/** The 32-byte ed25519 seed of a secret key given as a seed or a Solana 64-byte key. */
function seedOf(secretKey: Uint8Array): Uint8Array {
  if (secretKey.length === 32) return secretKey;
  if (secretKey.length === 64) return secretKey.slice(0, 32);
  throw new Error("secret key: must be a 32-byte seed or a 64-byte Solana secret key");
}

export async function publicKeyOf(secretKey: Uint8Array): Promise<string> {
  return bs58.encode(await ed.getPublicKeyAsync(seedOf(secretKey)));
}

async function sign(bytes: Uint8Array, secretKey: Uint8Array): Promise<string> {
  return bs58.encode(await ed.signAsync(bytes, seedOf(secretKey)));
}

export function orderJson(order: Order): Json {
  return {
    market_id: order.marketId,
    side: order.side,
    price_atoms: order.priceAtoms.toString(),
    size_atoms: order.sizeAtoms.toString(),
    maker: order.maker,
    pay_account: order.payAccount,
    receive_account: order.receiveAccount,
    client_order_id: order.clientOrderId.toString(),
    expiry_s: order.expiryS.toString(),
    nonce: order.nonce.toString(),
  };
}

/** The order read back from its JSON form (u64s as strings or numbers). */
export function orderFromJson(json: Record<string, unknown>): Order {
  const text = (key: string): string => String(json[key]);
  return {
    marketId: text("market_id"),
    side: text("side") === "buy" ? "buy" : "sell",
    priceAtoms: BigInt(text("price_atoms")),
    sizeAtoms: BigInt(text("size_atoms")),
    maker: text("maker"),
    payAccount: text("pay_account"),
    receiveAccount: text("receive_account"),
    clientOrderId: BigInt(text("client_order_id")),
    expiryS: BigInt(text("expiry_s")),
    nonce: BigInt(text("nonce")),
  };
}

export async function signOrder(order: Order, secretKey: Uint8Array): Promise<Json> {
  return { ...orderJson(order), signature: await sign(encodeOrder(order), secretKey) };
}

export async function signCancel(request: CancelRequest, secretKey: Uint8Array): Promise<Json> {
  return {
    order_id: request.orderId,
    maker: request.maker,
    timestamp_s: request.timestampS.toString(),
    signature: await sign(encodeCancel(request), secretKey),
  };
}

export async function signCancelAll(
  request: CancelAllRequest,
  secretKey: Uint8Array,
): Promise<Json> {
  return {
    market_id: request.marketId,
    maker: request.maker,
    timestamp_s: request.timestampS.toString(),
    signature: await sign(encodeCancelAll(request), secretKey),
  };
}

/** A refusal from the node: `{"error": {field, reason, type, code}}`. */
export class CrankApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly field: string | null,
    readonly reason: string,
  ) {
    super(`${status} ${code}${field ? ` (${field})` : ""}: ${reason}`);
  }
}

export class CrankClient {
  constructor(private readonly baseUrl: string) {}

  private async call(method: string, path: string, body?: unknown): Promise<any> {
    const answer = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const document: any = await answer.json();
    if (!answer.ok) {
      const error = document.error ?? {};
      throw new CrankApiError(answer.status, error.code, error.field ?? null, error.reason);
    }
    return document;
  }

  submitOrder(signed: Json): Promise<any> {
    return this.call("POST", "/orders", signed);
  }

  cancel(signedCancel: Json): Promise<any> {
    return this.call("POST", `/orders/${signedCancel.order_id}/cancel`, signedCancel);
  }

  cancelAll(signedCancelAll: Json): Promise<any> {
    return this.call("POST", "/orders/cancel-all", signedCancelAll);
  }

  order(id: string): Promise<any> {
    return this.call("GET", `/orders/${id}`);
  }

  orderFills(id: string): Promise<any> {
    return this.call("GET", `/orders/${id}/fills`);
  }

  fills(maker: string, since?: string): Promise<any> {
    const query = new URLSearchParams({ maker, ...(since ? { since } : {}) });
    return this.call("GET", `/fills?${query}`);
  }

  /**
   * The live stream (`GET /stream`) of a market (`{ market_id }`) or a maker
   * (`{ maker }`), from `since` (the last event id seen), as parsed events. Heartbeats
   * are skipped; it ends when the node drops the connection (a `dropped` event says
   * why) or `signal` aborts. Reconnect with the last `id` to miss nothing.
   */
  async *stream(
    topic: { market_id: string } | { maker: string },
    options: { since?: string; signal?: AbortSignal } = {},
  ): AsyncGenerator<StreamEvent> {
    const query = new URLSearchParams({ ...topic, ...(options.since ? { since: options.since } : {}) });
    const answer = await fetch(`${this.baseUrl}/stream?${query}`, { signal: options.signal });
    if (!answer.ok || answer.body === null) {
      const error = ((await answer.json()) as any).error ?? {};
      throw new CrankApiError(answer.status, error.code, error.field ?? null, error.reason);
    }
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = pending.indexOf("\n\n")) >= 0) {
        const event = parseEvent(pending.slice(0, end));
        pending = pending.slice(end + 2);
        if (event.event !== "heartbeat") yield event;
      }
    }
  }
}

/** One Server-Sent Event of `GET /stream`: `fill`, `settlement`, `book`, `order`, `dropped`. */
export interface StreamEvent {
  event: string;
  id: string | null;
  data: any;
}

function parseEvent(frame: string): StreamEvent {
  const fields: Record<string, string> = {};
  for (const line of frame.split("\n")) {
    const colon = line.indexOf(": ");
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
  }
  return { event: fields.event ?? "message", id: fields.id ?? null, data: JSON.parse(fields.data ?? "null") };
}
