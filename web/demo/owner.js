// Owner dashboard: every open order, waiter requests, recent activity.
import {
  OrderBook, STATUS_LABEL, ageEl, api, el, fatal, follow, money, orderNumber, settings, tickAges, toast,
} from '/demo/common.js';

const cfg = settings();
const book = new OrderBook();
const requests = new Map();
const feed = [];
const REQUEST_LABEL = { call_waiter: 'Call waiter', bill: 'Bill', water: 'Water', other: 'Request' };

if (!cfg.token || !cfg.restaurant) {
  fatal('No token', 'Open this screen with #token=<owner JWT>&restaurant=<id> in the URL.');
} else {
  start();
}

async function start() {
  const screen = follow(cfg, book, { onEvent, render: renderOrders });
  const rid = cfg.restaurant;
  try {
    const restaurant = await api(cfg, 'GET', `/v1/restaurants/${rid}`);
    document.getElementById('name').textContent = restaurant.name;
    document.title = `${restaurant.name} · Owner`;
    await backfillRequests(rid, restaurant.last_seq);
  } catch (e) {
    toast('Could not load the restaurant', e.message, { urgent: true });
  }
  screen.client.sync(rid).catch((e) => toast('Could not load open orders', e.message, { urgent: true }));
  tickAges();
  renderRequests();
}

// Requests have no snapshot endpoint: rebuild the open ones from the
// restaurant's recent events (the last 1 000), once, at start.
async function backfillRequests(rid, head) {
  const since = Math.max(0, head - 1000);
  const page = await fetch(`/v1/restaurants/${rid}/events?since=${since}&limit=1000&wait=0`, {
    headers: { Authorization: `Bearer ${cfg.token}` },
  }).then((r) => r.json());
  for (const event of page.events ?? []) {
    if (event.type.startsWith('request.')) applyRequest(event.data);
  }
}

function applyRequest(request) {
  if (request.status === 'resolved' || request.status === 'cancelled') requests.delete(request.id);
  else requests.set(request.id, request);
}

function onEvent(event) {
  if (event.type.startsWith('order.')) {
    book.apply(event);
    renderOrders();
  } else if (event.type.startsWith('request.')) {
    applyRequest(event.data);
    if (event.type === 'request.created') toast(`Table ${event.data.table}`, REQUEST_LABEL[event.data.kind]);
    renderRequests();
  } else if (event.type === 'notification') {
    toast(event.data.title, event.data.message, { urgent: event.data.urgency === 'urgent' });
  }
  feed.unshift(event);
  feed.length = Math.min(feed.length, 30);
  renderFeed();
}

function renderOrders() {
  const orders = book.list().reverse();
  document.getElementById('orders').replaceChildren(...orders.map((o) => el('tr', {
    'data-testid': 'order-row', 'data-order-id': o.id, 'data-status': o.status,
  }, [
    el('td', { class: 'mono order-number', 'data-testid': 'order-number', title: o.id }, orderNumber(o)),
    el('td', {}, o.table ?? '—'),
    el('td', {}, o.channel),
    el('td', { class: 'items-cell' }, o.items.map((i) => `${i.quantity}× ${i.name}`).join(', ')),
    el('td', {}, el('span', { class: `badge badge-${o.status}` }, STATUS_LABEL[o.status] ?? o.status)),
    el('td', {}, o.waiter_id ?? '—'),
    el('td', { class: 'num' }, money(o.total_cents)),
    ageEl('td', o.created_at, { class: 'num age' }),
  ])));
  document.getElementById('orders-empty').hidden = orders.length > 0;
  const count = (f) => orders.filter(f).length;
  document.getElementById('kpi-open').textContent = orders.length;
  document.getElementById('kpi-kitchen').textContent = count((o) => ['accepted', 'in_progress'].includes(o.status));
  document.getElementById('kpi-ready').textContent = count((o) => o.status === 'ready');
  document.getElementById('kpi-value').textContent = money(orders.reduce((s, o) => s + o.total_cents, 0));
}

function renderRequests() {
  const list = [...requests.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  document.getElementById('requests').replaceChildren(...list.map((r) => el('li', {
    class: `request request-${r.status}`, 'data-testid': 'request',
  }, [
    el('div', {}, [
      el('strong', {}, `Table ${r.table}`),
      el('span', { class: 'muted' }, ` · ${REQUEST_LABEL[r.kind] ?? r.kind}${r.message ? ` — ${r.message}` : ''}`),
    ]),
    el('div', { class: 'request-meta' }, [
      el('span', { class: `badge badge-${r.status}`, 'data-testid': 'request-status' }, r.status.replace('_', ' ')),
      ageEl('span', r.created_at, { class: 'age' }),
      ...requestActions(r),
    ]),
  ])));
  document.getElementById('requests-empty').hidden = list.length > 0;
  document.getElementById('kpi-requests').textContent = list.length;
}

// The moves docs/protocol.md allows from each state ("Request states").
const REQUEST_MOVES = {
  open: [['acknowledged', 'Ack'], ['resolved', 'Done']],
  acknowledged: [['in_progress', 'Start'], ['resolved', 'Done']],
  in_progress: [['on_hold', 'Hold'], ['resolved', 'Done']],
  on_hold: [['in_progress', 'Resume'], ['cancelled', 'Cancel']],
};

function requestActions(request) {
  return (REQUEST_MOVES[request.status] ?? []).map(([status, text], i) => el('button', {
    class: `btn small ${i > 0 ? 'ghost' : ''}`,
    'data-action': `request-${status}`,
    onclick: () => setRequest(request, status),
  }, text));
}

async function setRequest(request, status) {
  try {
    await api(cfg, 'POST', `/v1/restaurants/${cfg.restaurant}/requests/${request.id}/status`, { status });
  } catch (e) {
    toast('Could not update the request', e.message, { urgent: true });
  }
}

function renderFeed() {
  document.getElementById('feed').replaceChildren(...feed.map((e) => el('li', {}, [
    el('span', { class: 'mono muted' }, `#${e.seq}`),
    el('span', {}, describe(e)),
    el('time', { class: 'muted' }, new Date(e.ts).toLocaleTimeString()),
  ])));
}

function describe(e) {
  const d = e.data ?? {};
  const where = d.table ? `${orderNumber(d)}, table ${d.table}` : orderNumber(d);
  switch (e.type) {
    case 'order.created': return `New order, ${where} (${money(d.total_cents ?? 0)})`;
    case 'order.status_changed': return `Order ${where}: ${STATUS_LABEL[d.status] ?? d.status}`;
    case 'order.item_status_changed': {
      const item = (d.items ?? []).find((i) => i.id === e.item_id);
      return `${item ? item.name : 'Item'} ${item ? item.status : ''}, ${where}`;
    }
    case 'request.created': return `${REQUEST_LABEL[d.kind] ?? 'Request'}, table ${d.table}`;
    case 'request.status_changed': return `Request, table ${d.table}: ${d.status}${d.message ? ` — ${d.message}` : ''}`;
    case 'session.transferred': return d.from_waiter_id ? `Tables of ${d.from_waiter_id} now served by ${d.to_waiter_id}` : `Session ${d.session_id}: waiter ${d.to_waiter_id}`;
    case 'notification': return `Alert: ${d.title}`;
    default: return e.type;
  }
}
