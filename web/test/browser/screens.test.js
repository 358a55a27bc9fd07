// The demo screens in headless Chromium against a real api and edge (a
// split edge that runs WebSocket commands on the api: ORDERCAST_API_URL).
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

const ticket = (id) => `[data-testid=ticket][data-order-id="${id}"]`;

function assertOnceInOrder(seqs) {
  assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), `each seq once, in order: ${seqs}`);
}

test('live: an order created through the api appears on the kitchen display, and its changes show', async () => {
  const { id: rid, owner } = await stack.restaurant('Trattoria Live');
  const kitchen = stack.token('kitchen', rid);
  const page = await stack.open('kitchen', { token: kitchen, restaurant: rid });
  await waitForState(page, 'live');

  const first = await stack.order(rid, owner, { table: '4' });
  await page.waitForSelector(`[data-testid=lane-new] ${ticket(first.id)}`, { timeout: 10_000 });
  const text = await page.textContent(ticket(first.id));
  for (const expected of ['Table 4', 'Smash burger', 'grill', 'no onions', 'Birthday']) {
    assert.ok(text.includes(expected), `ticket shows ${expected}: ${text}`);
  }
  // The number a cook calls out, at the top of the ticket.
  assert.equal(first.number, 1);
  assert.equal(await page.textContent(`${ticket(first.id)} [data-testid=order-number]`), '#1');

  // Status changes made elsewhere (the api) move the ticket.
  await stack.status(rid, owner, first.id, 'accepted');
  await stack.status(rid, owner, first.id, 'in_progress');
  await page.waitForSelector(`[data-testid=lane-cooking] ${ticket(first.id)}`, { timeout: 10_000 });

  // The screen's own buttons: start, item ready, bump.
  const second = await stack.order(rid, owner, { table: '9' });
  await page.click(`${ticket(second.id)} [data-action=start]`);
  await page.waitForSelector(`[data-testid=lane-cooking] ${ticket(second.id)}`, { timeout: 10_000 });
  for (let i = 0; i < second.items.length; i += 1) {
    await page.click(`${ticket(second.id)} [data-action=item-ready] >> nth=0`);
    await page.waitForFunction(
      ([sel, left]) => document.querySelectorAll(`${sel} [data-action=item-ready]`).length === left,
      [ticket(second.id), second.items.length - i - 1],
      { timeout: 10_000 },
    );
  }
  await page.waitForSelector(`[data-testid=lane-ready] ${ticket(second.id)}`, { timeout: 10_000 });
  const third = await stack.order(rid, owner, { table: '2', items: [{ sku: 'tiramisu', name: 'Tiramisu', quantity: 3, unit_price_cents: 700, station: 'pastry' }] });
  await page.waitForSelector(ticket(third.id), { timeout: 10_000 });
  await stack.call(owner, 'POST', `/v1/restaurants/${rid}/notifications`, {
    audience: { roles: ['kitchen'] },
    urgency: 'urgent',
    title: 'Allergy alert',
    message: 'Table 9: severe nut allergy',
  });
  await page.waitForSelector('.toast.urgent >> text=Allergy alert', { timeout: 10_000 });
  await stack.screenshot(page, 'kitchen-display');

  await page.click(`${ticket(second.id)} [data-action=bump]`);
  await page.waitForSelector(ticket(second.id), { state: 'detached', timeout: 10_000 });
  assertOnceInOrder(await delivered(page));
  assert.deepEqual(page.errors, []);
});

test('cold start: orders created before the page opened are on it after load', async () => {
  const { id: rid, owner } = await stack.restaurant('Cold Start Diner');
  const orders = [];
  for (const table of ['1', '2', '3']) orders.push(await stack.order(rid, owner, { table }));
  await stack.status(rid, owner, orders[2].id, 'rejected'); // closed: not on the screen
  const page = await stack.open('kitchen', { token: stack.token('kitchen', rid), restaurant: rid });
  await waitForState(page, 'live');
  await page.waitForSelector(ticket(orders[0].id), { timeout: 10_000 });
  await page.waitForSelector(ticket(orders[1].id), { timeout: 10_000 });
  assert.equal(await page.locator('[data-testid=ticket]').count(), 2);
  assert.deepEqual(await delivered(page), [], 'the snapshot, not a replay');
  const late = await stack.order(rid, owner, { table: '5' });
  await page.waitForSelector(ticket(late.id), { timeout: 10_000 });
  assert.deepEqual(await delivered(page), [5]);
});

test('owner dashboard: every open order and the waiter requests', async () => {
  const { id: rid, owner } = await stack.restaurant('Owner’s Grill');
  const a = await stack.order(rid, owner, { table: '11' });
  const { request: billRequest } = await stack.call(owner, 'POST', `/v1/restaurants/${rid}/requests`, { kind: 'bill', table: '11' });
  const page = await stack.open('owner', { token: owner, restaurant: rid });
  await waitForState(page, 'live');
  await page.waitForSelector(`[data-testid=order-row][data-order-id="${a.id}"]`, { timeout: 10_000 });
  await page.waitForSelector('[data-testid=request] >> text=Table 11', { timeout: 10_000 });
  const b = await stack.order(rid, owner, { table: '6' });
  await stack.status(rid, owner, b.id, 'accepted');
  await stack.call(owner, 'POST', `/v1/restaurants/${rid}/requests`, { kind: 'call_waiter', table: '6', message: 'More bread' });
  await page.waitForSelector(`[data-testid=order-row][data-order-id="${b.id}"][data-status=accepted]`, { timeout: 10_000 });
  await page.waitForSelector('[data-testid=request] >> text=More bread', { timeout: 10_000 });
  assert.equal(await page.textContent('[data-testid=kpi-open]'), '2');
  const row = (o) => `[data-testid=order-row][data-order-id="${o.id}"] [data-testid=order-number]`;
  assert.deepEqual([await page.textContent(row(a)), await page.textContent(row(b))], [`#${a.number}`, `#${b.number}`]);
  // The request workflow from the dashboard's buttons, and a waiter's message.
  const bread = page.locator('[data-testid=request]', { hasText: 'More bread' });
  await bread.locator('[data-action=request-acknowledged]').click();
  await bread.locator('[data-testid=request-status] >> text=acknowledged').waitFor({ timeout: 10_000 });
  await bread.locator('[data-action=request-in_progress]').click();
  await bread.locator('[data-testid=request-status] >> text=in progress').waitFor({ timeout: 10_000 });
  await bread.locator('[data-action=request-on_hold]').click();
  await bread.locator('[data-testid=request-status] >> text=on hold').waitFor({ timeout: 10_000 });
  const bill = page.locator('[data-testid=request]', { hasText: 'Table 11' });
  await stack.call(owner, 'POST', `/v1/restaurants/${rid}/requests/${billRequest.id}/status`, { status: 'acknowledged', message: 'Card machine coming' });
  await bill.locator('text=Card machine coming').waitFor({ timeout: 10_000 });
  await stack.screenshot(page, 'owner-dashboard');
  assert.deepEqual(page.errors, []);
});

test('isolation: the table screen of session S1 never shows session S2’s order', async () => {
  const { id: rid, owner } = await stack.restaurant('Table Talk');
  const s1 = stack.token('customer', rid, { session: 'S1' });
  const s2 = stack.token('customer', rid, { session: 'S2' });
  const mine = await stack.order(rid, s1, { table: '3', session: 'S1' });
  const theirs = await stack.order(rid, s2, { table: '8', session: 'S2' });
  const page = await stack.open('table', { token: s1, restaurant: rid }, { width: 480, height: 900 });
  await waitForState(page, 'live');
  await page.waitForSelector(`[data-testid=guest-order][data-order-id="${mine.id}"]`, { timeout: 10_000 });
  // The number the guest will hear called, and what this screen lists.
  assert.equal(await page.textContent(`[data-testid=guest-order][data-order-id="${mine.id}"] [data-testid=order-number]`), `#${mine.number}`);
  assert.match(await page.textContent('[data-testid=scope]'), /Orders placed from this table’s QR session/);
  // Live: S2's change happens first, S1's after; when S1's shows, S2's would have too.
  const theirsLater = await stack.order(rid, s2, { table: '8', session: 'S2' });
  await stack.status(rid, owner, theirs.id, 'accepted');
  await stack.status(rid, owner, mine.id, 'accepted');
  await stack.status(rid, owner, mine.id, 'in_progress');
  await page.waitForSelector(`[data-testid=guest-order][data-order-id="${mine.id}"][data-status=in_progress]`, { timeout: 10_000 });
  const shown = await page.$$eval('[data-testid=guest-order]', (cards) => cards.map((c) => c.dataset.orderId));
  assert.deepEqual(shown, [mine.id]);
  const html = await page.content();
  for (const id of [theirs.id, theirsLater.id]) assert.ok(!html.includes(id), 'no trace of S2’s orders');
  const sessions = await page.evaluate(() => window.ordercastScreen.delivered.length);
  assert.equal(sessions, 2, 'only S1’s two status changes were delivered');
  // The table's own request, as the waiter moves it and answers.
  const { request } = await stack.call(s1, 'POST', `/v1/restaurants/${rid}/requests`, { kind: 'water', table: '3' });
  await stack.call(owner, 'POST', `/v1/restaurants/${rid}/requests/${request.id}/status`, { status: 'acknowledged', message: 'Coming in 5 minutes' });
  const asked = page.locator('[data-testid=guest-request][data-status=acknowledged]');
  await asked.waitFor({ timeout: 10_000 });
  assert.match(await asked.textContent(), /Water.*Seen by your waiter.*Coming in 5 minutes/);
  await stack.screenshot(page, 'table-screen');
});

test('fallback: with streaming blocked the screen polls and still shows orders; unblocked it is live again', async () => {
  const { id: rid, owner } = await stack.restaurant('Fallback Bar');
  const page = await stack.open('kitchen', { token: stack.token('kitchen', rid), restaurant: rid, backoff_max: '1000' });
  await waitForState(page, 'live');
  stack.ingress.setBlocked(true);
  try {
    await waitForState(page, 'polling', 30_000);
    const polled = await stack.order(rid, owner, { table: '21' });
    await page.waitForSelector(ticket(polled.id), { timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.ordercastScreen.client.stats().transport), 'poll');
    await stack.screenshot(page, 'kitchen-polling');
  } finally {
    stack.ingress.setBlocked(false);
  }
  await waitForState(page, 'live', 30_000);
  const streamed = await stack.order(rid, owner, { table: '22' });
  await page.waitForSelector(ticket(streamed.id), { timeout: 10_000 });
  assert.ok(['ws', 'sse'].includes(await page.evaluate(() => window.ordercastScreen.client.stats().transport)));
  assertOnceInOrder(await delivered(page));
  assert.equal(await page.locator('[data-testid=ticket]').count(), 2);
  assert.equal(await connection(page), 'live');
});

test('the index page links every screen and passes the fragment on', async () => {
  const page = await stack.browser.newPage();
  await page.goto(`${stack.origin}/demo/#token=t&restaurant=r`);
  const links = await page.$$eval('a.card', (as) => as.map((a) => new URL(a.href).pathname + new URL(a.href).hash));
  assert.deepEqual(links, [
    '/demo/kitchen.html#token=t&restaurant=r',
    '/demo/owner.html#token=t&restaurant=r',
    '/demo/table.html#token=t&restaurant=r',
  ]);
  await until('the fonts to settle', () => page.evaluate(() => document.fonts.status === 'loaded'));
  await stack.screenshot(page, 'index');
  await page.close();
});

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
