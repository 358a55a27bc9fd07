// WebSocket commands and the clean close, in headless Chromium against a
// real api and a split edge (ORDERCAST_API_URL).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, waitForState } from './harness.js';

let stack;
before(async () => {
  stack = await new Stack().start();
});
after(async () => {
  await stack?.close();
});

const ticket = (id) => `[data-testid=ticket][data-order-id="${id}"]`;

test('on a WebSocket the kitchen display moves tickets with socket commands, and the owner sees the change', async () => {
  const { id: rid, owner } = await stack.restaurant('Socket Kitchen');
  const kitchen = await stack.open('kitchen', { token: stack.token('kitchen', rid), restaurant: rid, transport: 'ws' });
  const dashboard = await stack.open('owner', { token: owner, restaurant: rid });
  await waitForState(kitchen, 'live');
  await waitForState(dashboard, 'live');
  const writes = [];
  kitchen.on('request', (r) => {
    if (r.method() !== 'GET') writes.push(`${r.method()} ${new URL(r.url()).pathname}`);
  });
  const order = await stack.order(rid, owner, { table: '3' });
  await kitchen.waitForSelector(`[data-testid=lane-new] ${ticket(order.id)}`, { timeout: 10_000 });

  await kitchen.click(`${ticket(order.id)} [data-action=start]`);

  await kitchen.waitForSelector(`[data-testid=lane-cooking] ${ticket(order.id)}`, { timeout: 10_000 });
  const row = `[data-testid=order-row][data-order-id="${order.id}"][data-status=in_progress]`;
  await dashboard.waitForSelector(row, { timeout: 10_000 });
  assert.deepEqual(writes, [], 'no HTTP write: the ticket moved over the WebSocket');
  assert.deepEqual(kitchen.errors, []);
});

test('a page that closes its WebSocket with a code sees a clean close with that code', async () => {
  const { id: rid } = await stack.restaurant('Clean Close Cafe');
  const page = await stack.open('kitchen', { token: stack.token('kitchen', rid), restaurant: rid });
  await waitForState(page, 'live');
  const token = stack.token('kitchen', rid);

  const closed = await page.evaluate(
    (jwt) =>
      new Promise((resolve, reject) => {
        const url = `${location.origin.replace(/^http/, 'ws')}/v1/ws`;
        const ws = new WebSocket(url, ['ordercast.v1', `ordercast.bearer.${jwt}`]);
        let hello = null;
        ws.onmessage = (m) => {
          hello ??= JSON.parse(m.data);
          ws.close(4000, 'screen off');
        };
        ws.onclose = (e) => resolve({ wasClean: e.wasClean, code: e.code, reason: e.reason, hello: hello?.type });
        setTimeout(() => reject(new Error('no close within 10 s')), 10_000);
      }),
    token,
  );

  assert.deepEqual(closed, { wasClean: true, code: 4000, reason: 'screen off', hello: 'hello' });
});
