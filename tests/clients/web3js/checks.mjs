// @solana/web3.js 1.x and @solana/spl-token against a localnet: one JSON line per check.
//
//   node checks.mjs http://127.0.0.1:8899
//
// web3.js derives the PubSub URL itself (port + 1), as it does for a real node.
// Every check is bounded; a failure is reported, never thrown, so one run counts them all.
// The last line is {"summary": {"passed": N, "failed": M, ...}}.
import {
  Connection, Keypair, LAMPORTS_PER_SOL, PublicKey, SystemProgram, Transaction,
  TransactionMessage, VersionedTransaction, sendAndConfirmTransaction,
} from '@solana/web3.js';
import {
  TOKEN_PROGRAM_ID, createMint, createTransferCheckedInstruction, getOrCreateAssociatedTokenAccount,
  mintTo,
} from '@solana/spl-token';

const url = process.argv[2];
const CHECK_TIMEOUT_MS = Number(process.env.CHECK_TIMEOUT_MS || 20000);
const connection = new Connection(url, { commitment: 'confirmed', disableRetryOnRateLimit: true });
const results = [];
const timings = {};

function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function check(name, body) {
  const started = performance.now();
  try {
    const detail = await bounded(Promise.resolve().then(body), CHECK_TIMEOUT_MS, name);
    const ms = Math.round(performance.now() - started);
    results.push({ check: name, ok: true, ms });
    console.log(JSON.stringify({ check: name, ok: true, ms, detail: detail ?? null }));
  } catch (error) {
    const ms = Math.round(performance.now() - started);
    results.push({ check: name, ok: false, ms });
    console.log(JSON.stringify({ check: name, ok: false, ms, error: String(error?.message ?? error).slice(0, 300) }));
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// The same wait, first by PubSub (what web3.js does), then by polling statuses at the
// interval a polling client would use; reported, not asserted.
async function pollUntilConfirmed(signature, intervalMs) {
  for (;;) {
    const { value } = await connection.getSignatureStatuses([signature]);
    const status = value[0];
    if (status && (status.confirmationStatus === 'confirmed' || status.confirmationStatus === 'finalized')) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const payer = Keypair.generate();
const owner = Keypair.generate();
const recipient = Keypair.generate();
let mint; let source; let destination; let legacySignature; let splSignature;

await check('getVersion', async () => (await connection.getVersion())['solana-core']);
await check('getGenesisHash', async () => connection.getGenesisHash());
await check('getSlot', async () => connection.getSlot());
await check('getBlockHeight', async () => connection.getBlockHeight());
await check('getEpochInfo', async () => (await connection.getEpochInfo()).epoch);
await check('getEpochSchedule', async () => (await connection.getEpochSchedule()).slotsPerEpoch);
await check('getLatestBlockhash', async () => (await connection.getLatestBlockhash()).lastValidBlockHeight);
await check('getMinimumBalanceForRentExemption', async () => connection.getMinimumBalanceForRentExemption(165));
await check('getTransactionCount', async () => connection.getTransactionCount());
await check('getSupply', async () => (await connection.getSupply({ excludeNonCirculatingAccountsList: true })).value.total);
await check('getFirstAvailableBlock', async () => connection.getFirstAvailableBlock());
await check('getRecentPerformanceSamples', async () => (await connection.getRecentPerformanceSamples(2)).length);
await check('getRecentPrioritizationFees', async () => (await connection.getRecentPrioritizationFees()).length);

await check('requestAirdrop + confirmTransaction (blockhash strategy)', async () => {
  const latest = await connection.getLatestBlockhash();
  const signature = await connection.requestAirdrop(payer.publicKey, 10 * LAMPORTS_PER_SOL);
  const started = performance.now();
  const { value } = await connection.confirmTransaction({ signature, ...latest }, 'confirmed');
  expect(value.err === null, `airdrop failed: ${JSON.stringify(value.err)}`);
  timings.subscribeConfirmMs = Math.round(performance.now() - started);
  return timings.subscribeConfirmMs;
});
await check('getBalance', async () => {
  const lamports = await connection.getBalance(payer.publicKey);
  expect(lamports === 10 * LAMPORTS_PER_SOL, `balance ${lamports}`);
});

await check('sendAndConfirmTransaction (SOL transfer)', async () => {
  const transaction = new Transaction().add(SystemProgram.transfer({
    fromPubkey: payer.publicKey, toPubkey: owner.publicKey, lamports: LAMPORTS_PER_SOL,
  }));
  legacySignature = await sendAndConfirmTransaction(connection, transaction, [payer]);
});
await check('getTransaction (legacy)', async () => {
  const found = await connection.getTransaction(legacySignature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  expect(found && found.meta && found.meta.err === null, 'no transaction');
  expect(found.meta.loadedAddresses !== undefined, 'no loadedAddresses');
  return found.slot;
});
await check('getParsedTransaction', async () => {
  const found = await connection.getParsedTransaction(legacySignature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  expect(found && found.transaction.message.instructions.length === 1, 'no transaction');
  return found.transaction.message.instructions[0].program ?? 'raw';
});
await check('getSignatureStatuses', async () => (await connection.getSignatureStatuses([legacySignature])).value[0]?.confirmationStatus);
await check('getSignaturesForAddress', async () => (await connection.getSignaturesForAddress(payer.publicKey)).length);
await check('getBlock', async () => {
  const { slot } = await connection.getTransaction(legacySignature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  const block = await connection.getBlock(slot, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  expect(block.transactions.some((tx) => tx.transaction.signatures[0] === legacySignature), 'not in its block');
  return block.transactions.length;
});
await check('getBlockTime', async () => {
  const { slot } = await connection.getTransaction(legacySignature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  return connection.getBlockTime(slot);
});
await check('getBlocks', async () => (await connection.getBlocks(0, undefined, 'confirmed')).length);

await check('v0 sendTransaction + confirm + getTransaction', async () => {
  const latest = await connection.getLatestBlockhash();
  const message = new TransactionMessage({
    payerKey: payer.publicKey, recentBlockhash: latest.blockhash,
    instructions: [SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: recipient.publicKey, lamports: 1_000_000 })],
  }).compileToV0Message();
  const transaction = new VersionedTransaction(message);
  transaction.sign([payer]);
  const signature = await connection.sendTransaction(transaction);
  await connection.confirmTransaction({ signature, ...latest }, 'confirmed');
  const found = await connection.getTransaction(signature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  expect(found.version === 0, `version ${found.version}`);
});
await check('getFeeForMessage', async () => {
  const latest = await connection.getLatestBlockhash();
  const message = new TransactionMessage({
    payerKey: payer.publicKey, recentBlockhash: latest.blockhash,
    instructions: [SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: recipient.publicKey, lamports: 1 })],
  }).compileToV0Message();
  const { value } = await connection.getFeeForMessage(message);
  expect(value === 5000, `fee ${value}`);
  return value;
});
await check('isBlockhashValid', async () => (await connection.isBlockhashValid((await connection.getLatestBlockhash()).blockhash)).value);
await check('simulateTransaction', async () => {
  const transaction = new Transaction().add(SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: recipient.publicKey, lamports: 1 }));
  const { value } = await connection.simulateTransaction(transaction, [payer]);
  expect(value.err === null, JSON.stringify(value.err));
  return value.unitsConsumed;
});

// SPL Token: every helper below sends with sendAndConfirmTransaction.
await check('spl-token createMint', async () => {
  mint = await createMint(connection, payer, payer.publicKey, null, 6);
  return mint.toBase58();
});
await check('spl-token getOrCreateAssociatedTokenAccount x2', async () => {
  source = (await getOrCreateAssociatedTokenAccount(connection, payer, mint, owner.publicKey)).address;
  destination = (await getOrCreateAssociatedTokenAccount(connection, payer, mint, recipient.publicKey)).address;
});
await check('spl-token mintTo', async () => mintTo(connection, payer, mint, source, payer, 5_000_000));
await check('sendAndConfirmTransaction (SPL TransferChecked)', async () => {
  const transaction = new Transaction().add(
    createTransferCheckedInstruction(source, mint, destination, owner.publicKey, 1_500_000, 6),
  );
  const started = performance.now();
  splSignature = await sendAndConfirmTransaction(connection, transaction, [payer, owner]);
  timings.splTransferConfirmMs = Math.round(performance.now() - started);
  expect(timings.splTransferConfirmMs < 2000, `took ${timings.splTransferConfirmMs} ms`);
  return timings.splTransferConfirmMs;
});
await check('getTransaction (SPL transfer, token balances)', async () => {
  const found = await connection.getTransaction(splSignature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  const post = found.meta.postTokenBalances.find((balance) => balance.owner === recipient.publicKey.toBase58());
  expect(post && post.uiTokenAmount.uiAmountString === '1.5', JSON.stringify(post));
});
await check('getParsedTransactions (SPL transfer parsed, token balances)', async () => {
  const [found] = await connection.getParsedTransactions([splSignature], { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  const transfer = found.transaction.message.instructions.find((ix) => ix.program === 'spl-token');
  expect(transfer && transfer.parsed.type === 'transferChecked', JSON.stringify(found.transaction.message.instructions));
  expect(transfer.parsed.info.tokenAmount.amount === '1500000', JSON.stringify(transfer.parsed.info));
  expect(found.meta.postTokenBalances.length === 2, 'no token balances');
  return transfer.parsed.type;
});
await check('getParsedBlock', async () => {
  const { slot } = await connection.getTransaction(splSignature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  const block = await connection.getParsedBlock(slot, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
  expect(block.transactions.some((tx) => tx.transaction.signatures[0] === splSignature), 'not in its block');
  return block.transactions.length;
});
await check('getTokenAccountBalance', async () => (await connection.getTokenAccountBalance(destination)).value.uiAmountString);
await check('getTokenAccountsByOwner', async () => {
  const { value } = await connection.getTokenAccountsByOwner(recipient.publicKey, { mint });
  expect(value.length === 1 && value[0].pubkey.equals(destination), `found ${value.length}`);
});
await check('getParsedTokenAccountsByOwner', async () => {
  const { value } = await connection.getParsedTokenAccountsByOwner(recipient.publicKey, { programId: TOKEN_PROGRAM_ID });
  expect(value[0].account.data.parsed.info.tokenAmount.amount === '1500000', JSON.stringify(value[0]?.account.data));
});
await check('getParsedAccountInfo (token account)', async () => {
  const { value } = await connection.getParsedAccountInfo(destination);
  expect(value.data.parsed.type === 'account', JSON.stringify(value.data).slice(0, 200));
});
await check('getTokenSupply', async () => (await connection.getTokenSupply(mint)).value.amount);
await check('getTokenLargestAccounts', async () => (await connection.getTokenLargestAccounts(mint)).value.length);
await check('getMultipleAccountsInfo', async () => (await connection.getMultipleAccountsInfo([source, destination])).length);
await check('getProgramAccounts (memcmp owner)', async () => {
  const found = await connection.getProgramAccounts(TOKEN_PROGRAM_ID, {
    filters: [{ dataSize: 165 }, { memcmp: { offset: 32, bytes: recipient.publicKey.toBase58() } }],
  });
  expect(found.length === 1, `found ${found.length}`);
});

// PubSub: each listener must hear the event it subscribed to.
async function heard(subscribe, trigger) {
  let id;
  const event = new Promise((resolve) => { id = subscribe(resolve); });
  await trigger();
  const value = await bounded(event, 10000, 'notification');
  await connection.removeListener?.(id).catch?.(() => {});
  return value;
}
async function transferLamports(to, lamports) {
  const transaction = new Transaction().add(SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: to, lamports }));
  return sendAndConfirmTransaction(connection, transaction, [payer]);
}
await check('onSlotChange', async () => {
  let id;
  const slot = await bounded(new Promise((resolve) => { id = connection.onSlotChange((info) => resolve(info.slot)); }), 10000, 'slot');
  await connection.removeSlotChangeListener(id);
  return slot;
});
await check('onRootChange', async () => {
  let id;
  const root = await bounded(new Promise((resolve) => { id = connection.onRootChange(resolve); }), 30000, 'root');
  await connection.removeRootChangeListener(id);
  return root;
});
await check('onAccountChange', async () => {
  const target = Keypair.generate().publicKey;
  let id;
  const changed = new Promise((resolve) => { id = connection.onAccountChange(target, resolve, 'confirmed'); });
  await transferLamports(target, 3_000_000);
  const info = await bounded(changed, 10000, 'account');
  await connection.removeAccountChangeListener(id);
  expect(info.lamports === 3_000_000, `lamports ${info.lamports}`);
});
await check('onLogs (mentions)', async () => {
  const target = Keypair.generate().publicKey;
  let id;
  const logged = new Promise((resolve) => { id = connection.onLogs(target, resolve, 'confirmed'); });
  const signature = await transferLamports(target, 2_000_000);
  const logs = await bounded(logged, 10000, 'logs');
  await connection.removeOnLogsListener(id);
  expect(logs.signature === signature, `signature ${logs.signature}`);
});
await check('onSignature', async () => {
  const latest = await connection.getLatestBlockhash();
  const transaction = new Transaction({ feePayer: payer.publicKey, ...latest }).add(
    SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: recipient.publicKey, lamports: 7 }),
  );
  transaction.sign(payer);
  const signature = await connection.sendRawTransaction(transaction.serialize());
  const result = await bounded(new Promise((resolve) => connection.onSignature(signature, resolve, 'confirmed')), 10000, 'signature');
  expect(result.err === null, JSON.stringify(result));
});
await check('confirm by polling getSignatureStatuses (400 ms interval)', async () => {
  const latest = await connection.getLatestBlockhash();
  const transaction = new Transaction({ feePayer: payer.publicKey, ...latest }).add(
    SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: recipient.publicKey, lamports: 11 }),
  );
  transaction.sign(payer);
  const started = performance.now();
  const signature = await connection.sendRawTransaction(transaction.serialize());
  await pollUntilConfirmed(signature, 400);
  timings.pollConfirmMs = Math.round(performance.now() - started);
  const startedWs = performance.now();
  await transferLamports(recipient.publicKey, 13);
  timings.subscribeSendAndConfirmMs = Math.round(performance.now() - startedWs);
  return timings;
});

const passed = results.filter((result) => result.ok).length;
console.log(JSON.stringify({
  summary: { passed, failed: results.length - passed, total: results.length, failedChecks: results.filter((r) => !r.ok).map((r) => r.check), timings },
}));
process.exit(0);
