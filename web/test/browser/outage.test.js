// The edge process dies while orders keep coming: the kitchen display
// reconnects by itself and shows every missed order exactly once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, connection, delivered, until, waitForState } from './harness.js';

let stack;
before(async () => {
  stack = await new Stack().start();
});
after(async () => {
  await stack?.close();
});

test('outage: edge stopped, orders created, edge restarted → every missed order once', async () => {
  const { id: rid, owner } = await stack.restaurant('Outage Kitchen');
  const before = await stack.order(rid, owner, { table: '1' });
  const page = await stack.open('kitchen', { token: stack.token('kitchen', rid), restaurant: rid, backoff_max: '2000' });
  await waitForState(page, 'live');
  await page.waitForSelector(`[data-order-id="${before.id}"]`, { timeout: 10_000 });

  await stack.edge.stop();
  await until('the screen to notice', async () => (await connection(page)) !== 'live', 15_000);
  const missed = [];
  for (const table of ['31', '32', '33']) missed.push(await stack.order(rid, owner, { table }));
  await stack.status(rid, owner, missed[0].id, 'accepted');
  const seen = await connection(page);
  assert.ok(['reconnecting', 'polling', 'offline'].includes(seen), seen);

  await stack.edge.start();
  await waitForState(page, 'live', 45_000);
  for (const order of missed) await page.waitForSelector(`[data-order-id="${order.id}"]`, { timeout: 15_000 });
  await page.waitForSelector(`[data-order-id="${missed[0].id}"][data-status=accepted]`, { timeout: 15_000 });
  const ids = await page.$$eval('[data-testid=ticket]', (ts) => ts.map((t) => t.dataset.orderId));
  assert.equal(ids.length, 4);
  assert.equal(new Set(ids).size, 4, 'no ticket twice');
  assert.deepEqual(await delivered(page), [2, 3, 4, 5], 'every missed event once, in order');
  const stats = await page.evaluate(() => window.ordercastScreen.client.stats());
  assert.equal(stats.restaurants[rid].cursor, 5);
  await stack.screenshot(page, 'kitchen-after-outage');
  assert.deepEqual(page.errors, []);
});
