// A screen served from another origin (its own domain, a tablet app's
// webview) uses ordercast.js on every transport and calls the api with
// fetch when the deployment lists its origin, and is blocked when it does
// not. Two static servers stand in for those apps: 127.0.0.2 (listed) and
// 127.0.0.3 (not); the edge and api are behind the ingress on 127.0.0.1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack, until } from './harness.js';

const CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../client/ordercast.js');
const PAGE = '<!doctype html><meta charset="utf-8"><title>Other origin</title><script type="module">import { OrdercastClient } from "/ordercast.js"; window.OrdercastClient = OrdercastClient; window.ready = true;</script>';

/** A static "app" on `host`: a page and the client library, nothing else. */
async function app(host) {
  const server = http.createServer((req, res) => {
    if (req.url === '/ordercast.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(CLIENT));
    else res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  return { server, origin: `http://${host}:${server.address().port}` };
}

let stack;
let allowed;
let other;
before(async () => {
  allowed = await app('127.0.0.2');
  other = await app('127.0.0.3');
  stack = await new Stack().start({ env: { ORDERCAST_CORS_ORIGINS: allowed.origin } });
});
after(async () => {
  await stack?.close();
  allowed?.server.close();
  other?.server.close();
});

async function openApp(origin) {
  const page = await stack.browser.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  stack.pages.push(page);
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

/** In the page: each transport's client from seq 0, and a fetch that creates an order. */
function tryEverything(page, { base, rid, token, wait }) {
  return page.evaluate(
    async ({ base, rid, token, wait }) => {
      const results = {};
      const clients = [];
      for (const transport of ['ws', 'sse', 'poll']) {
        const rt = new window.OrdercastClient({ baseUrl: base, token, transport, backoffMax: 500, pollWait: 1 });
        clients.push(rt);
        const seqs = [];
        results[transport] = seqs;
        rt.subscribe(rid, { since: 0, onEvent: (e) => seqs.push(e.seq) });
      }
      let created = null;
      try {
        const res = await fetch(`${base}/v1/restaurants/${rid}/orders`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Idempotency-Key': 'cors-1' },
          body: JSON.stringify({ channel: 'pos', items: [{ sku: 'tea', name: 'Tea', quantity: 1, unit_price_cents: 300 }] }),
        });
        created = { status: res.status, etag: res.headers.get('etag') };
      } catch (e) {
        created = { error: String(e) };
      }
      const deadline = Date.now() + wait;
      while (Date.now() < deadline && !Object.values(results).every((s) => s.length >= 2)) {
        await new Promise((r) => setTimeout(r, 50));
      }
      results.connected = clients.map((c) => c.isConnected());
      for (const c of clients) c.close();
      return { results, created };
    },
    { base, rid, token, wait },
  );
}

test('a listed origin connects on WebSocket, SSE and long-poll and sends commands with fetch', async () => {
  const { id: rid, owner } = await stack.restaurant('Cross-origin Kitchen');
  await stack.order(rid, owner, { table: '1' });
  const page = await openApp(allowed.origin);
  const { results, created } = await tryEverything(page, { base: stack.origin, rid, token: owner, wait: 20_000 });
  assert.deepEqual(created, { status: 201, etag: '"1"' }, 'the answer and its ETag are readable');
  for (const transport of ['ws', 'sse', 'poll']) assert.deepEqual(results[transport], [1, 2], transport);
  assert.deepEqual(results.connected, [true, true, true]);
  assert.deepEqual(page.errors, []);
});

test('an unlisted origin is blocked on every transport and cannot read a command answer', async () => {
  const { id: rid, owner } = await stack.restaurant('Foreign Kitchen');
  await stack.order(rid, owner, { table: '1' });
  const page = await openApp(other.origin);
  const { results, created } = await tryEverything(page, { base: stack.origin, rid, token: owner, wait: 3_000 });
  assert.match(created.error ?? '', /TypeError/, JSON.stringify(created));
  for (const transport of ['ws', 'sse', 'poll']) assert.deepEqual(results[transport], [], transport);
  assert.deepEqual(results.connected, [false, false, false]);
});

test('reconnect() in the browser drops the WebSocket and resumes from the cursor, every order once', async () => {
  const { id: rid, owner } = await stack.restaurant('Reconnecting Kitchen');
  await stack.order(rid, owner, { table: '1' });
  const page = await openApp(allowed.origin);
  await page.evaluate(
    ({ base, rid, token }) => {
      window.seqs = [];
      window.rt = new window.OrdercastClient({ baseUrl: base, token, transport: 'ws' });
      window.rt.subscribe(rid, { since: 0, onEvent: (e) => window.seqs.push(e.seq) });
    },
    { base: stack.origin, rid, token: owner },
  );
  await until('the first order', () => page.evaluate(() => window.seqs.length === 1));
  const before = await page.evaluate(() => window.rt.stats());
  await page.evaluate(() => window.rt.reconnect());
  await stack.order(rid, owner, { table: '2' });
  await until('the second order', () => page.evaluate(() => window.seqs.length === 2));
  const stats = await page.evaluate(() => window.rt.stats());
  assert.deepEqual(await page.evaluate(() => window.seqs), [1, 2]);
  assert.equal(stats.reconnects, 1);
  assert.equal(stats.connected, true);
  assert.ok(stats.lastConnectedAt >= before.lastConnectedAt);
  assert.ok(stats.lastEventAt >= stats.lastConnectedAt);
  await page.evaluate(() => window.rt.close());
  assert.deepEqual(page.errors, []);
});
