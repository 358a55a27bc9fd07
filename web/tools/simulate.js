#!/usr/bin/env node
// A small simulated restaurant for `make run`: every few seconds it creates
// an order (some from table 12's guest), moves open orders one step along
// (accepted, cooking, items ready, served, paid), and now and then calls a
// waiter or raises a kitchen alert, so the demo screens are alive.
//
//   node web/tools/simulate.js --api http://127.0.0.1:8080 --restaurant <id> \
//     --token <owner JWT> [--guest-token <customer JWT> --guest-table 12] [--every 4]
//
// Stops on SIGINT/SIGTERM. Only talks to the api it is given.

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const api = args.api;
const rid = args.restaurant;
const owner = args.token;
const guest = args['guest-token'];
const guestTable = args['guest-table'] ?? '12';
const every = Number(args.every ?? 4) * 1000;
if (!api || !rid || !owner) {
  console.error('usage: simulate.js --api <url> --restaurant <id> --token <owner JWT> [--guest-token <JWT>] [--every <s>]');
  process.exit(2);
}

const MENU = [
  { sku: 'burger', name: 'Smash burger', unit_price_cents: 1250, station: 'grill' },
  { sku: 'steak', name: 'Ribeye 300 g', unit_price_cents: 2890, station: 'grill' },
  { sku: 'fries', name: 'Fries', unit_price_cents: 450, station: 'fryer' },
  { sku: 'calamari', name: 'Fried calamari', unit_price_cents: 990, station: 'fryer' },
  { sku: 'caesar', name: 'Caesar salad', unit_price_cents: 1100, station: 'cold' },
  { sku: 'burrata', name: 'Burrata & tomatoes', unit_price_cents: 1350, station: 'cold' },
  { sku: 'risotto', name: 'Mushroom risotto', unit_price_cents: 1690, station: 'stove' },
  { sku: 'tiramisu', name: 'Tiramisu', unit_price_cents: 700, station: 'pastry' },
];
const ITEM_NOTES = ['no onions', 'medium rare', 'gluten free', 'extra sauce', 'nut allergy'];
const ORDER_NOTES = ['Birthday — bring a candle', 'In a hurry', 'Window seat', 'Kids first'];
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const chance = (p) => Math.random() < p;

async function call(token, method, path, body) {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${data.detail ?? ''}`);
  return data;
}

async function createOrder() {
  const forGuest = guest && chance(0.3);
  const items = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => {
    const item = { ...pick(MENU), quantity: 1 + Math.floor(Math.random() * 2) };
    if (chance(0.25)) item.notes = pick(ITEM_NOTES);
    return item;
  });
  const body = {
    channel: forGuest ? 'qr' : pick(['pos', 'pos', 'waiter', 'online']),
    table: forGuest ? guestTable : String(1 + Math.floor(Math.random() * 20)),
    items,
  };
  if (chance(0.2)) body.notes = pick(ORDER_NOTES);
  await call(forGuest ? guest : owner, 'POST', `/v1/restaurants/${rid}/orders`, body);
}

/** Moves one order one step along its life. */
async function advance(order) {
  const path = `/v1/restaurants/${rid}/orders/${order.id}`;
  const next = { new: 'accepted', accepted: 'in_progress', ready: 'served', served: 'paid' }[order.status];
  if (next) return call(owner, 'POST', `${path}/status`, { status: next });
  const item = order.items.find((i) => i.status === 'cooking') ?? order.items.find((i) => i.status === 'queued');
  if (order.status === 'in_progress' && item) {
    const status = item.status === 'queued' ? 'cooking' : 'ready';
    return call(owner, 'POST', `${path}/items/${item.id}/status`, { status });
  }
  return null;
}

const requests = [];
async function tick(n) {
  const { orders } = await call(owner, 'GET', `/v1/restaurants/${rid}/orders?state=open`);
  if (orders.length < 9 && (n % 2 === 0 || orders.length < 3)) await createOrder();
  // Oldest first, a couple of steps per tick: the boards keep moving.
  const moving = orders.sort((a, b) => a.created_at.localeCompare(b.created_at)).slice(0, 6);
  for (const order of moving.filter(() => chance(0.45)).slice(0, 3)) await advance(order);
  if (chance(0.15)) {
    const { request } = await call(owner, 'POST', `/v1/restaurants/${rid}/requests`, {
      kind: pick(['call_waiter', 'water', 'bill']),
      table: String(1 + Math.floor(Math.random() * 20)),
    });
    requests.push({ id: request.id, at: n });
  }
  while (requests.length && n - requests[0].at >= 4) {
    const { id } = requests.shift();
    await call(owner, 'POST', `/v1/restaurants/${rid}/requests/${id}/status`, { status: 'resolved' }).catch(() => {});
  }
  if (chance(0.05)) {
    await call(owner, 'POST', `/v1/restaurants/${rid}/notifications`, {
      audience: { roles: ['kitchen', 'owner'] },
      urgency: 'urgent',
      title: `86 ${pick(MENU).name}`,
      message: 'Out of stock: stop selling it.',
      group_key: 'stock',
    });
  }
}

let stopped = false;
let timer = null;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopped = true;
    clearTimeout(timer);
  });
}

let n = 0;
async function loop() {
  if (stopped) return;
  try {
    await tick(n);
  } catch (e) {
    console.error(`simulate: ${e.message}`);
  }
  n += 1;
  if (!stopped) timer = setTimeout(loop, every);
}
loop();
