import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OrdercastClient, tokenExpiry } from '../../client/ordercast.js';
import { FakeServer, until } from './fake-server.js';

const RID = '6f1c0d2e-5a8e-4c1b-9f3a-0d3e7c9b1a42';

function client(server, options = {}) {
  const rt = new OrdercastClient({
    baseUrl: 'http://edge.test',
    token: 'jwt',
    fetch: server.fetch,
    WebSocket: server.WebSocket,
    random: () => 0, // every backoff delay is 0 ms: tests run at full speed
    ...options,
  });
  const states = [];
  rt.on('state', (s) => states.push(s));
  return { rt, states };
}

/** A client live on WebSocket from seq 0, events 1 and 2 delivered. */
async function liveWithTwo(t) {
  const server = new FakeServer();
  server.publish(RID);
  server.publish(RID);
  const { rt, states } = client(server);
  t.after(() => rt.close());
  const seqs = [];
  rt.subscribe(RID, { since: 0, onEvent: (e) => seqs.push(e.seq) });
  await until('two events', () => seqs.length === 2);
  return { server, rt, states, seqs };
}

test('live over WebSocket with the token in the subprotocol, resuming after a drop without duplicates', async (t) => {
  const { server, rt, states, seqs } = await liveWithTwo(t);
  assert.equal(rt.state, 'live');
  assert.deepEqual(server.sockets[0].protocols, ['ordercast.v1', 'ordercast.bearer.jwt']);
  server.sockets[0].drop(1006);
  server.publish(RID);
  await until('the third event after the reconnect', () => seqs.length === 3);
  assert.deepEqual(seqs, [1, 2, 3]);
  assert.deepEqual(states, ['live', 'reconnecting', 'live']);
  const resubscribe = server.sockets[0].sent.find((f) => f.type === 'subscribe');
  assert.equal(resubscribe.since, 2, 'resumed from the cursor');
  assert.equal(rt.stats().restaurants[RID].cursor, 3);
});

test('close 1012 retry=<ms> is honoured before reconnecting', async (t) => {
  const server = new FakeServer();
  const { rt } = client(server);
  t.after(() => rt.close());
  rt.subscribe(RID, { onEvent() {} });
  await until('live', () => rt.state === 'live');
  const started = Date.now();
  server.sockets[0].drop(1012, 'retry=300');
  await until('a new socket', () => server.sockets.length === 1, 2000);
  assert.ok(Date.now() - started >= 280, `waited ${Date.now() - started} ms`);
});

test('after three failed streaming attempts it long-polls, then returns to live; every event once', async (t) => {
  const server = new FakeServer();
  server.streaming = 'refuse';
  server.publish(RID);
  const { rt, states } = client(server);
  t.after(() => rt.close());
  const seqs = [];
  rt.subscribe(RID, { since: 0, onEvent: (e) => seqs.push(e.seq) });
  await until('polling', () => rt.state === 'polling');
  assert.equal(rt.stats().streamFailures >= 3, true);
  assert.deepEqual(states.slice(0, 2), ['reconnecting', 'polling']);
  await until('the first event by long-poll', () => seqs.length === 1);
  server.publish(RID);
  await until('the second event by long-poll', () => seqs.length === 2);
  assert.equal(rt.stats().transport, 'poll');
  server.streaming = 'ok';
  await until('live again (background probe)', () => rt.state === 'live');
  server.publish(RID);
  await until('the third event by stream', () => seqs.length === 3);
  assert.deepEqual(seqs, [1, 2, 3]);
  assert.equal(rt.stats().transport, 'ws');
  assert.ok(server.requests.some((r) => r.includes('/stream')), 'auto also tried SSE');
});

test('sync: snapshot first, then exactly the events after its seq', async (t) => {
  const server = new FakeServer();
  for (let i = 0; i < 5; i += 1) server.publish(RID);
  let release;
  server.snapshotDelay = new Promise((r) => {
    release = r;
  });
  const { rt } = client(server);
  t.after(() => rt.close());
  const log = [];
  rt.subscribe(RID, { onEvent: (e) => log.push(e.seq), onSnapshot: (s) => log.push(`snapshot@${s.seq}`) });
  const synced = rt.sync(RID).then((s) => log.push(`resolved@${s.seq}`));
  await until('live', () => rt.state === 'live');
  server.publish(RID); // 6 is committed after the snapshot was read at 5...
  await until('6 held back', () => rt._subs.get(RID).buffer.some((i) => i.event?.seq === 6));
  release(); // ...and arrived over the stream before the snapshot's answer
  await synced;
  server.publish(RID);
  await until('events 6 and 7', () => log.includes(7));
  assert.deepEqual(log, ['snapshot@5', 'resolved@5', 6, 7]);
});

test('sync reads every page of the snapshot and streams from the first page\'s seq', async (t) => {
  const server = new FakeServer();
  for (let i = 0; i < 4; i += 1) server.publish(RID);
  server.orders.set(RID, Array.from({ length: 250 }, (_, i) => ({ id: `o${i}` })));
  const { rt } = client(server);
  t.after(() => rt.close());
  const seqs = [];
  rt.subscribe(RID, { onEvent: (e) => seqs.push(e.seq) });

  const snapshot = await rt.sync(RID);

  assert.equal(snapshot.seq, 4);
  assert.equal(snapshot.truncated, false);
  assert.deepEqual(
    snapshot.orders.map((o) => o.id),
    Array.from({ length: 250 }, (_, i) => `o${i}`),
  );
  const pages = server.requests.filter((r) => r.includes('/orders'));
  assert.deepEqual(pages.map((r) => new URL(r, 'http://x').searchParams.get('after')), [null, '150', '50']);
  await until('live', () => rt.state === 'live');
  server.publish(RID);
  await until('event 5', () => seqs.length === 1);
  assert.deepEqual(seqs, [5]);
});

test('sync right after subscribing: the replaced subscribe never answers, the new one does', async (t) => {
  const server = new FakeServer();
  for (let i = 0; i < 3; i += 1) server.publish(RID);
  const { rt } = client(server);
  t.after(() => rt.close());
  const seqs = [];
  let synced = null;
  server.onSubscribe = () => {
    server.onSubscribe = null;
    synced = rt.sync(RID); // resubscribes from the snapshot before the first answer is sent
  };
  rt.subscribe(RID, { onEvent: (e) => seqs.push(e.seq) });
  await until('the first subscribe', () => synced);
  assert.equal((await synced).seq, 3);
  await until('live', () => rt.state === 'live', 2000);
  server.publish(RID);
  await until('event 4', () => seqs.length === 1);
  assert.deepEqual(seqs, [4]);
  assert.deepEqual(server.sockets[0].sent.map((f) => f.since), [undefined, 3]);
});

test('transport poll never opens a stream; unsubscribe stops it', async () => {
  const server = new FakeServer();
  const { rt, states } = client(server, { transport: 'poll' });
  const seqs = [];
  const off = rt.subscribe(RID, { onEvent: (e) => seqs.push(e.seq) });
  server.publish(RID);
  await until('an event', () => seqs.length === 1);
  assert.equal(server.sockets.length, 0);
  assert.ok(server.requests.every((r) => r.includes('/events')));
  assert.deepEqual(states, ['polling']);
  off();
  const before = server.requests.length;
  server.publish(RID);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(server.requests.length, before, 'no poll after unsubscribe');
  assert.deepEqual(seqs, [1]);
  rt.close();
  assert.equal(rt.state, 'offline');
});

test('heartbeat watchdog: a silent stream counts as dead', async (t) => {
  const server = new FakeServer();
  const { rt, states } = client(server, { heartbeatTimeout: 60 });
  t.after(() => rt.close());
  rt.subscribe(RID, { onEvent() {} });
  await until('dead and back', () => states.filter((s) => s === 'live').length >= 2, 2000);
  assert.deepEqual(states.slice(0, 3), ['live', 'reconnecting', 'live']);
});

test('a refused restaurant reports an error and is not retried', async (t) => {
  const server = new FakeServer();
  const fetch = async (url, init) =>
    url.includes('/events')
      ? { ok: false, status: 403, headers: new Map(), json: async () => ({ type: 'https://ordercast.dev/problems/forbidden', detail: 'no' }) }
      : server.fetch(url, init);
  const { rt } = client(server, { transport: 'poll', fetch });
  t.after(() => rt.close());
  const errors = [];
  rt.on('error', (e) => errors.push(e));
  rt.subscribe(RID, { onEvent() {} });
  await until('the error', () => errors.length === 1);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'forbidden');
  assert.equal(errors[0].restaurantId, RID);
});

function jwt(expSeconds) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256' })}.${part({ exp: expSeconds, role: 'kitchen' })}.sig`;
}

test('tokenExpiry reads exp from a JWT, and null from anything else', () => {
  assert.equal(tokenExpiry(jwt(1_900_000_000)), 1_900_000_000_000);
  assert.equal(tokenExpiry('not-a-jwt'), null);
  assert.equal(tokenExpiry(`${jwt(1).split('.')[0]}.e30.sig`), null); // {} has no exp
});

test('over WebSocket a later token is sent in band before expiry; the socket stays', async (t) => {
  const server = new FakeServer();
  const now = Math.floor(Date.now() / 1000);
  const first = jwt(now + 1); // due for refresh at once
  const later = jwt(now + 3600);
  let current = first;
  const { rt, states } = client(server, { token: () => current });
  t.after(() => rt.close());
  const seqs = [];
  rt.subscribe(RID, { onEvent: (e) => seqs.push(e.seq) });
  await until('live', () => rt.state === 'live');
  const socket = server.sockets[0];
  current = later; // what a token provider would hand out once renewed
  await until('the refresh', () => socket.sent.some((f) => f.type === 'refresh'), 8000);
  assert.deepEqual(socket.sent.filter((f) => f.type === 'refresh'), [{ type: 'refresh', token: later }]);
  server.publish(RID);
  await until('an event on the same socket', () => seqs.length === 1);
  assert.equal(server.sockets.length, 1);
  assert.equal(server.sockets[0], socket);
  assert.deepEqual(states, ['live']);
});

// What the edge says while a restaurant's home region is unreachable.
const STALE = {
  region: 'eu',
  last_seq: 2,
  last_event_at: '2026-12-05T10:00:00.123456Z',
  since: '2026-12-05T10:00:04.5Z',
};

function restaurantStates(rt) {
  const changes = [];
  rt.on('restaurant', (r) => changes.push(r));
  return changes;
}

const LIVE = { restaurantId: RID, state: 'live', region: null, lastSeq: null, lastEventAt: null, since: null };

test('WebSocket: a stale home region and its return are restaurant states; events carry on', async (t) => {
  const server = new FakeServer();
  server.publish(RID);
  server.publish(RID);
  const { rt } = client(server);
  t.after(() => rt.close());
  const changes = restaurantStates(rt);
  const seqs = [];
  rt.subscribe(RID, { since: 0, onEvent: (e) => seqs.push(e.seq) });
  await until('two events', () => seqs.length === 2);
  assert.deepEqual(rt.restaurantState(RID), LIVE);

  server.setHome(RID, STALE);
  await until('stale', () => changes.length === 1);
  const stale = { ...LIVE, state: 'stale', region: 'eu', lastSeq: 2, lastEventAt: STALE.last_event_at, since: STALE.since };
  assert.deepEqual(changes[0], stale);
  assert.deepEqual(rt.restaurantState(RID), stale);
  assert.equal(rt.stats().restaurants[RID].state, 'stale');
  assert.equal(rt.stats().restaurants[RID].cursor, 2, 'a signal is not an event');
  assert.equal(rt.state, 'live', 'the connection itself is fine');

  // A reconnect is told the same state again: no change, nothing emitted.
  server.sockets[0].drop(1006);
  server.publish(RID); // events keep coming whenever they arrive
  await until('the third event after the reconnect', () => seqs.length === 3);
  assert.equal(server.sockets[0].sent.find((f) => f.type === 'subscribe').since, 2);

  server.setHome(RID, null);
  await until('live', () => changes.length === 2);
  assert.deepEqual(changes[1], { ...LIVE, region: 'eu' });
  assert.deepEqual(seqs, [1, 2, 3]);
  assert.deepEqual(rt.restaurantState(RID), { ...LIVE, region: 'eu' });
});

test('SSE: `event: stale` and `event: live` are restaurant states, not events', async (t) => {
  const server = new FakeServer();
  server.sse = 'ok';
  server.publish(RID);
  const { rt } = client(server, { transport: 'sse' });
  t.after(() => rt.close());
  const changes = restaurantStates(rt);
  const seqs = [];
  rt.subscribe(RID, { since: 0, onEvent: (e) => seqs.push(e.seq) });
  await until('the first event', () => seqs.length === 1);
  assert.equal(rt.stats().transport, 'sse');

  server.setHome(RID, { ...STALE, last_seq: 1 });
  await until('stale', () => changes.length === 1);
  const stale = { ...LIVE, state: 'stale', region: 'eu', lastSeq: 1, lastEventAt: STALE.last_event_at, since: STALE.since };
  assert.deepEqual(changes[0], stale);
  server.publish(RID);
  await until('the second event while stale', () => seqs.length === 2);
  assert.equal(rt.stats().restaurants[RID].state, 'stale');

  server.setHome(RID, null);
  await until('live', () => changes.length === 2);
  assert.deepEqual(changes[1], { ...LIVE, region: 'eu' });
  assert.deepEqual(seqs, [1, 2]);
  assert.equal(rt.stats().restaurants[RID].cursor, 2);
  assert.equal(rt.stats().duplicates, 0);
});

test('long-poll: an answer with `stale` is stale, the next one without it live', async (t) => {
  const server = new FakeServer();
  const { rt } = client(server, { transport: 'poll' });
  t.after(() => rt.close());
  const changes = restaurantStates(rt);
  rt.subscribe(RID, { onEvent() {} });
  await until('polling', () => rt.state === 'polling');

  server.setHome(RID, STALE);
  await until('stale', () => changes.length === 1);
  assert.equal(changes[0].state, 'stale');
  assert.equal(changes[0].lastSeq, 2);
  server.setHome(RID, null);
  await until('live', () => changes.length === 2);
  assert.deepEqual(changes[1], { ...LIVE, region: 'eu' });
});

const ORDER = 'o-1';
const ORDER_PATH = `/v1/restaurants/${RID}/orders/${ORDER}/status`;

/** A client live on `transport` with one subscription; closed after the test. */
async function live(t, server, transport) {
  const { rt } = client(server, { transport });
  t.after(() => rt.close());
  rt.subscribe(RID, { onEvent() {} });
  await until('live', () => rt.state === 'live');
  return rt;
}

test('on a live WebSocket a status change goes on the socket and resolves with the written order', async (t) => {
  const server = new FakeServer();
  const rt = await live(t, server, 'ws');

  const written = await rt.updateOrderStatus(RID, ORDER, 'accepted', { version: 1 });

  assert.equal(written.order.status, 'accepted');
  assert.equal(written.order.version, 2);
  const sent = server.sockets[0].sent.find((f) => f.type === 'command');
  assert.equal(sent.command, 'order.status');
  assert.equal(sent.version, 1);
  assert.match(sent.id, /^oc-/);
  assert.deepEqual(
    server.commands.map((c) => c.via),
    ['ws'],
    'no HTTP call',
  );
});

test('a refused command rejects with the problem: its type, status and the current state', async (t) => {
  const server = new FakeServer();
  const rt = await live(t, server, 'ws');
  await rt.updateOrderStatus(RID, ORDER, 'accepted');

  const refused = await rt.updateOrderStatus(RID, ORDER, 'accepted').catch((e) => e);
  const stale = await rt.updateOrderStatus(RID, ORDER, 'ready', { version: 1 }).catch((e) => e);

  assert.equal(refused.name, 'OrdercastError');
  assert.equal(refused.code, 'illegal_transition');
  assert.equal(refused.status, 409);
  assert.equal(refused.type, 'https://ordercast.dev/problems/illegal-transition');
  assert.equal(refused.current.status, 'accepted');
  assert.equal(stale.code, 'version_mismatch');
  assert.equal(stale.current.version, 2);
});

test('over SSE or long-poll a command is the HTTP call with its id as Idempotency-Key and version as If-Match', async (t) => {
  const server = new FakeServer();
  server.sse = 'ok';
  const rt = await live(t, server, 'sse');

  const written = await rt.updateOrderStatus(RID, ORDER, 'accepted', { version: 1 });

  assert.equal(written.order.status, 'accepted');
  assert.equal(server.commands.length, 1);
  const [call] = server.commands;
  assert.equal(call.via, 'http');
  assert.equal(call.path, ORDER_PATH);
  assert.equal(call.ifMatch, 1);
  assert.match(call.id, /^oc-/);
  assert.deepEqual(call.body, { status: 'accepted' });
});

test('a command whose socket drops before its reply is sent again over HTTP with the same id, and applied once', async (t) => {
  const server = new FakeServer();
  const rt = await live(t, server, 'ws');
  server.holdReplies = true;

  const pending = rt.updateOrderStatus(RID, ORDER, 'accepted');
  await until('the command on the socket', () => server.commands.length === 1);
  server.sockets[0].drop(1006);
  const written = await pending;

  assert.equal(written.order.status, 'accepted');
  assert.equal(written.order.version, 2, 'applied once');
  assert.deepEqual(
    server.commands.map((c) => c.via),
    ['ws', 'http'],
  );
  assert.equal(server.commands[1].id, server.commands[0].id, 'the same id');
});

test('since as a Date goes out as an RFC 3339 time on every transport; a bad one is refused', async (t) => {
  const at = new Date(Date.UTC(2026, 11, 5, 10, 42, 7, 250));
  const iso = '2026-12-05T10:42:07.250Z';
  const ws = new FakeServer();
  const { rt } = client(ws);
  t.after(() => rt.close());
  rt.subscribe(RID, { since: at });
  await until('the subscribe', () => ws.sockets[0]?.sent.some((f) => f.type === 'subscribe'));
  assert.equal(ws.sockets[0].sent.find((f) => f.type === 'subscribe').since, iso);
  for (const transport of ['sse', 'poll']) {
    const server = new FakeServer();
    const { rt: other } = client(server, { transport });
    t.after(() => other.close());
    other.subscribe(RID, { since: at });
    await until(`a ${transport} request`, () => server.requests.length > 0);
    assert.ok(server.requests[0].includes(`since=${encodeURIComponent(iso)}`), server.requests[0]);
  }
  assert.throws(() => rt.subscribe('other', { since: new Date('soon') }), TypeError);
});

test('reconnect() drops the socket and resumes at once from the cursor; stats() tells when and how often', async (t) => {
  const idle = client(new FakeServer()).rt;
  assert.equal(idle.isConnected(), false, 'nothing subscribed: nothing connected');
  idle.close();
  const { server, rt, states, seqs } = await liveWithTwo(t);
  assert.equal(rt.isConnected(), true);
  const first = rt.stats();
  assert.equal(first.reconnects, 0);
  assert.ok(first.lastConnectedAt > 0 && first.lastEventAt >= first.lastConnectedAt, JSON.stringify(first));
  const old = server.sockets[0];

  rt.reconnect();
  await until('a new socket', () => server.sockets.length === 1 && server.sockets[0] !== old);
  server.publish(RID);
  await until('event 3', () => seqs.length === 3);
  assert.deepEqual(seqs, [1, 2, 3], 'nothing missed, nothing twice');
  assert.equal(server.sockets[0].sent.find((f) => f.type === 'subscribe').since, 2);
  assert.deepEqual(states, ['live', 'reconnecting', 'live']);
  const after = rt.stats();
  assert.equal(after.reconnects, 1);
  assert.equal(after.connects, 2);
  assert.equal(after.transport, 'ws');
  assert.equal(after.connected, true);
  assert.ok(after.lastConnectedAt >= first.lastConnectedAt);
  assert.ok(after.lastHeartbeatAt >= after.lastConnectedAt);
  rt.close();
  assert.equal(rt.isConnected(), false);
});

test('the debug option logs state changes to the console, never the token', async (t) => {
  const server = new FakeServer();
  const lines = [];
  const debug = console.debug;
  console.debug = (...args) => lines.push(args.join(' '));
  t.after(() => {
    console.debug = debug;
  });
  const token = 'header.payload.secret-signature';
  const { rt } = client(server, { debug: true, token });
  t.after(() => rt.close());
  rt.subscribe(RID, { onEvent() {} });
  await until('live', () => rt.state === 'live');
  server.sockets[0].drop(1006);
  await until('live again', () => rt.stats().connects === 2 && rt.state === 'live');
  assert.ok(lines.some((l) => l.includes('state connecting → live')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('ws lost')), lines.join('\n'));
  assert.ok(lines.every((l) => l.startsWith('[ordercast]') && !l.includes('secret-signature')), lines.join('\n'));

  const quiet = [];
  console.debug = (...args) => quiet.push(args.join(' '));
  const { rt: silent } = client(new FakeServer());
  t.after(() => silent.close());
  silent.subscribe(RID, { onEvent() {} });
  await until('live', () => silent.state === 'live');
  assert.deepEqual(quiet, [], 'off by default');
});
