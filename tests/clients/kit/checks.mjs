// @solana/kit against a localnet: one JSON line per check.
//
//   node checks.mjs http://127.0.0.1:8899 ws://127.0.0.1:8900
//
// Kit's typed RPC turns every integer into a bigint and reads each answer as its
// declared type; these checks then look at the fields a kit client reads. Every
// check is bounded; a failure is reported, never thrown, so one run counts them all.
// The last line is {"summary": {"passed": N, "failed": M, ...}}.
import {
  address, airdropFactory, appendTransactionMessageInstruction, createSolanaRpc,
  createSolanaRpcSubscriptions, createTransactionMessage, generateKeyPairSigner,
  getBase64EncodedWireTransaction, getSignatureFromTransaction, lamports, pipe,
  sendAndConfirmTransactionFactory, setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash, signTransactionMessageWithSigners,
  compileTransactionMessage, getCompiledTransactionMessageEncoder,
} from '@solana/kit';

const [url, wsUrl] = process.argv.slice(2);
const CHECK_TIMEOUT_MS = Number(process.env.CHECK_TIMEOUT_MS || 20000);
const rpc = createSolanaRpc(url);
const rpcSubscriptions = createSolanaRpcSubscriptions(wsUrl);
const results = [];
const MEMO = address('MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr');
const NATIVE_MINT = address('So11111111111111111111111111111111111111112');
const TOKEN_PROGRAM = address('TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA');
const confirmed = { commitment: 'confirmed' };

function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function shown(value) {
  return JSON.stringify(value, (_, item) => (typeof item === 'bigint' ? `${item}n` : item));
}

async function check(name, body) {
  const started = performance.now();
  try {
    const detail = await bounded(Promise.resolve().then(body), CHECK_TIMEOUT_MS, name);
    const ms = Math.round(performance.now() - started);
    results.push({ check: name, ok: true, ms });
    console.log(shown({ check: name, ok: true, ms, detail: detail ?? null }));
  } catch (error) {
    const ms = Math.round(performance.now() - started);
    results.push({ check: name, ok: false, ms });
    console.log(JSON.stringify({ check: name, ok: false, ms, error: String(error?.message ?? error).slice(0, 300) }));
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const isU64 = (value) => typeof value === 'bigint' && value >= 0n;

// A v0 message paid by `payer` on the latest blockhash, with one memo instruction.
async function memoMessage(text) {
  const { value: latest } = await rpc.getLatestBlockhash().send();
  return pipe(
    createTransactionMessage({ version: 0 }),
    (m) => setTransactionMessageFeePayerSigner(payer, m),
    (m) => setTransactionMessageLifetimeUsingBlockhash(latest, m),
    (m) => appendTransactionMessageInstruction({ programAddress: MEMO, accounts: [], data: new TextEncoder().encode(text) }, m),
  );
}
let payer; let memoSignature; let memoSlot;

await check('getVersion', async () => (await rpc.getVersion().send())['solana-core']);
await check('getHealth', async () => rpc.getHealth().send());
await check('getSlot', async () => { const slot = await rpc.getSlot().send(); expect(isU64(slot), shown(slot)); return slot; });
await check('getBlockHeight', async () => rpc.getBlockHeight().send());
await check('getEpochInfo', async () => { const info = await rpc.getEpochInfo().send(); expect(isU64(info.slotsInEpoch), shown(info)); return info.epoch; });
await check('getEpochSchedule', async () => (await rpc.getEpochSchedule().send()).slotsPerEpoch);
await check('getGenesisHash', async () => rpc.getGenesisHash().send());
await check('getIdentity', async () => (await rpc.getIdentity().send()).identity);
await check('getSlotLeader', async () => rpc.getSlotLeader().send());
await check('getClusterNodes', async () => (await rpc.getClusterNodes().send()).length);
await check('getLatestBlockhash', async () => {
  const { value } = await rpc.getLatestBlockhash().send();
  expect(isU64(value.lastValidBlockHeight), shown(value));
  return value.blockhash;
});
await check('getMinimumBalanceForRentExemption', async () => rpc.getMinimumBalanceForRentExemption(165n).send());
await check('getSupply', async () => (await rpc.getSupply().send()).value.total);
await check('getTransactionCount', async () => rpc.getTransactionCount().send());
await check('getFirstAvailableBlock', async () => rpc.getFirstAvailableBlock().send());
await check('getRecentPerformanceSamples', async () => (await rpc.getRecentPerformanceSamples(2).send()).length);
await check('getRecentPrioritizationFees', async () => (await rpc.getRecentPrioritizationFees().send()).length);
await check('getLargestAccounts', async () => (await rpc.getLargestAccounts().send()).value.length);

await check('airdrop (requestAirdrop + signatureNotifications)', async () => {
  payer = await generateKeyPairSigner();
  const airdrop = airdropFactory({ rpc, rpcSubscriptions });
  return airdrop({ recipientAddress: payer.address, lamports: lamports(5_000_000_000n), commitment: 'confirmed' });
});
await check('getBalance', async () => {
  const { value } = await rpc.getBalance(payer.address, confirmed).send();
  expect(value === 5_000_000_000n, shown(value));
});
await check('getAccountInfo (base64, space)', async () => {
  const { value } = await rpc.getAccountInfo(NATIVE_MINT, { encoding: 'base64' }).send();
  expect(value.space === 82n && value.data[1] === 'base64', shown(value));
  return value.owner;
});
await check('getAccountInfo (jsonParsed native mint)', async () => {
  const { value } = await rpc.getAccountInfo(NATIVE_MINT, { encoding: 'jsonParsed' }).send();
  expect(value.data.parsed.type === 'mint' && value.data.parsed.info.decimals === 9, shown(value.data));
});
await check('getMultipleAccounts', async () => {
  const { value } = await rpc.getMultipleAccounts([NATIVE_MINT, payer.address], { encoding: 'base64' }).send();
  expect(value.length === 2 && value[1].space === 0n, shown(value));
});
await check('getTokenSupply', async () => (await rpc.getTokenSupply(NATIVE_MINT).send()).value.uiAmountString);
await check('getProgramAccounts (dataSize)', async () => {
  const found = await rpc.getProgramAccounts(TOKEN_PROGRAM, { encoding: 'base64', filters: [{ dataSize: 82n }] }).send();
  expect(found.some((item) => item.pubkey === NATIVE_MINT), shown(found));
  return found.length;
});

await check('sendAndConfirmTransaction (memo)', async () => {
  const message = await memoMessage('kit');
  const signed = await signTransactionMessageWithSigners(message);
  await sendAndConfirmTransactionFactory({ rpc, rpcSubscriptions })(signed, { commitment: 'confirmed' });
  memoSignature = getSignatureFromTransaction(signed);
  return memoSignature;
});
await check('getSignatureStatuses', async () => {
  const { value } = await rpc.getSignatureStatuses([memoSignature]).send();
  expect(value[0] && isU64(value[0].slot), shown(value));
  return value[0].confirmationStatus;
});
await check('getSignaturesForAddress', async () => {
  const found = await rpc.getSignaturesForAddress(payer.address, confirmed).send();
  expect(found.some((item) => item.signature === memoSignature && item.memo === '[3] kit'), shown(found));
});
await check('getTransaction (json, v0)', async () => {
  const found = await rpc.getTransaction(memoSignature, { ...confirmed, maxSupportedTransactionVersion: 0 }).send();
  expect(found.version === 0 && found.meta.err === null && isU64(found.meta.fee), shown(found.meta));
  expect(found.meta.loadedAddresses !== undefined, 'no loadedAddresses');
  memoSlot = found.slot;
  return found.slot;
});
await check('getTransaction (jsonParsed, memo parsed)', async () => {
  const found = await rpc.getTransaction(memoSignature, { ...confirmed, encoding: 'jsonParsed', maxSupportedTransactionVersion: 0 }).send();
  const [instruction] = found.transaction.message.instructions;
  expect(instruction.program === 'spl-memo' && instruction.parsed === 'kit', shown(instruction));
  expect(found.transaction.message.accountKeys[0].signer === true, shown(found.transaction.message.accountKeys));
});
await check('getTransaction (base64)', async () => {
  const found = await rpc.getTransaction(memoSignature, { ...confirmed, encoding: 'base64', maxSupportedTransactionVersion: 0 }).send();
  expect(found.transaction[1] === 'base64', shown(found.transaction));
});
await check('getBlock (json)', async () => {
  const block = await rpc.getBlock(memoSlot, { ...confirmed, maxSupportedTransactionVersion: 0 }).send();
  expect(block.transactions.some((tx) => tx.transaction.signatures[0] === memoSignature), 'not in its block');
  return block.blockHeight;
});
await check('getBlock (jsonParsed)', async () => {
  const block = await rpc.getBlock(memoSlot, { ...confirmed, encoding: 'jsonParsed', maxSupportedTransactionVersion: 0 }).send();
  expect(block.transactions.some((tx) => tx.transaction.message.instructions[0]?.parsed === 'kit'), 'not parsed');
});
await check('getBlocks', async () => (await rpc.getBlocks(0n, undefined, confirmed).send()).length);
await check('getBlockTime', async () => rpc.getBlockTime(memoSlot).send());
await check('getBlockCommitment', async () => (await rpc.getBlockCommitment(memoSlot).send()).totalStake);
await check('getFeeForMessage', async () => {
  const message = await memoMessage('fee');
  const bytes = getCompiledTransactionMessageEncoder().encode(compileTransactionMessage(message));
  const { value } = await rpc.getFeeForMessage(Buffer.from(bytes).toString('base64')).send();
  expect(value === 5000n, shown(value));
});
await check('simulateTransaction', async () => {
  const message = await memoMessage('sim');
  const signed = await signTransactionMessageWithSigners(message);
  const { value } = await rpc.simulateTransaction(getBase64EncodedWireTransaction(signed), { encoding: 'base64' }).send();
  expect(value.err === null && isU64(value.unitsConsumed), shown(value));
});

async function firstNotification(subscribe) {
  const abort = new AbortController();
  try {
    const notifications = await subscribe.subscribe({ abortSignal: abort.signal });
    for await (const notification of notifications) return notification;
  } finally {
    abort.abort();
  }
  throw new Error('subscription ended without a notification');
}
await check('slotNotifications', async () => (await firstNotification(rpcSubscriptions.slotNotifications())).slot);
await check('rootNotifications', async () => firstNotification(rpcSubscriptions.rootNotifications()));
await check('accountNotifications', async () => {
  const pending = firstNotification(rpcSubscriptions.accountNotifications(payer.address, { ...confirmed, encoding: 'base64' }));
  await airdropFactory({ rpc, rpcSubscriptions })({ recipientAddress: payer.address, lamports: lamports(1n), commitment: 'confirmed' });
  const { value } = await pending;
  expect(isU64(value.lamports), shown(value));
});
await check('logsNotifications (mentions)', async () => {
  const pending = firstNotification(rpcSubscriptions.logsNotifications({ mentions: [payer.address] }, confirmed));
  await airdropFactory({ rpc, rpcSubscriptions })({ recipientAddress: payer.address, lamports: lamports(2n), commitment: 'confirmed' });
  const { value } = await pending;
  expect(value.logs.length > 0, shown(value));
});

const passed = results.filter((result) => result.ok).length;
console.log(JSON.stringify({
  summary: { passed, failed: results.length - passed, total: results.length, failedChecks: results.filter((r) => !r.ok).map((r) => r.check) },
}));
process.exit(0);
