// Shared by the demo screens: settings from the URL fragment, the api
// helper, the connection indicator and small formatters.
import { OrdercastClient } from '/client/ordercast.js';

/**
 * Settings from the URL fragment (`#token=…&restaurant=…`). The fragment is
 * never sent to a server, so the token stays out of access logs.
 * Optional: `transport` (auto|ws|sse|poll), `backoff_max` (ms), `api`
 * (the api's origin, default this page's), `table` (table screen).
 */
export function settings() {
  const p = new URLSearchParams(location.hash.slice(1));
  const backoffMax = Number(p.get('backoff_max'));
  return {
    token: p.get('token'),
    restaurant: p.get('restaurant'),
    table: p.get('table'),
    transport: p.get('transport') || 'auto',
    backoffMax: Number.isFinite(backoffMax) && backoffMax > 0 ? backoffMax : undefined,
    api: p.get('api') || location.origin,
  };
}

/** The payload of a JWT (for display only; the server verifies it). */
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

/** Shows a full-page message instead of the screen (missing token and such). */
export function fatal(title, detail) {
  document.body.innerHTML = '';
  const box = el('main', { class: 'fatal' }, [
    el('h1', {}, title),
    el('p', {}, detail),
    el('p', { class: 'muted' }, [
      'Links with a token are printed by ', el('code', {}, 'make run'), '. See docs/client.md.',
    ]),
  ]);
  document.body.append(box);
}

/** Creates the client, wires the indicator, and exposes both for tests. */
function connect(cfg, indicator) {
  const client = new OrdercastClient({
    baseUrl: location.origin,
    apiUrl: cfg.api,
    token: cfg.token,
    transport: cfg.transport,
    backoffMax: cfg.backoffMax,
  });
  const screen = { client, delivered: [], snapshots: 0 };
  window.ordercastScreen = screen;
  const show = (state) => {
    indicator.dataset.state = state;
    indicator.querySelector('.label').textContent = state;
    const s = client.stats();
    indicator.title = `transport: ${s.transport ?? 'none'} · events: ${s.events} · reconnects: ${s.connects - 1}`;
  };
  client.on('state', show);
  show(client.state);
  client.on('error', (e) => console.warn('ordercast:', e.code, e.message));
  return screen;
}

/**
 * Starts a screen on `cfg.restaurant`: the connection indicator in #conn,
 * the stale banner under the top bar, the client, and a subscription whose
 * events go to `onEvent` and whose snapshots load `book` and `render()`.
 * Call `screen.client.sync(rid)` to load the open orders.
 */
export function follow(cfg, book, { onEvent, render }) {
  const conn = indicator();
  document.getElementById('conn').append(conn);
  const screen = connect(cfg, conn);
  staleBanner(screen.client, cfg.restaurant);
  screen.client.subscribe(cfg.restaurant, {
    onEvent: (event) => {
      screen.delivered.push(event.seq);
      onEvent(event);
    },
    onSnapshot: (snapshot) => {
      screen.snapshots += 1;
      book.load(snapshot);
      render();
    },
  });
  return screen;
}

/**
 * A banner under the top bar while the restaurant's home region is
 * unreachable: the screen is live but shows only what reached this region.
 */
function staleBanner(client, rid) {
  const banner = el('div', { class: 'stale-banner', role: 'status', 'data-testid': 'stale', hidden: true });
  document.querySelector('header.bar').after(banner);
  client.on('restaurant', (r) => {
    if (r.restaurantId !== rid) return;
    banner.hidden = r.state !== 'stale';
    if (r.state !== 'stale') return;
    const at = r.lastEventAt ? ` (${new Date(r.lastEventAt).toLocaleTimeString()})` : '';
    banner.textContent = `${r.region} unreachable — showing events up to #${r.lastSeq}${at}`;
  });
}

/** The connection indicator element (live / reconnecting / polling / offline). */
function indicator() {
  return el('div', { class: 'conn', 'data-testid': 'connection', 'data-state': 'connecting' }, [
    el('span', { class: 'dot' }),
    el('span', { class: 'label' }, 'connecting'),
  ]);
}

/** Calls the api; throws an Error with the problem's detail on failure. */
export async function api(cfg, method, path, body) {
  const res = await fetch(`${cfg.api}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${cfg.token}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail || data.title || `HTTP ${res.status}`);
  return data;
}

/** `el('div', {class: 'x'}, [child, 'text'])`. */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of [].concat(children)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** `4:07` or `1:02:09` since an RFC 3339 time. */
export function age(ts, now = Date.now()) {
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** An element showing the age of `ts`, kept current by `tickAges`. */
export function ageEl(tag, ts, attrs = {}) {
  const node = el(tag, { ...attrs, 'data-since': ts });
  showAge(node, Date.now());
  return node;
}

function showAge(node, now) {
  node.textContent = age(node.dataset.since, now);
  const minutes = (now - Date.parse(node.dataset.since)) / 60000;
  node.dataset.level = minutes >= 20 ? 'late' : minutes >= 10 ? 'slow' : 'ok';
}

/** Keeps every `[data-since]` element's text at its age, once a second. */
export function tickAges(root = document) {
  const tick = () => {
    const now = Date.now();
    for (const node of root.querySelectorAll('[data-since]')) showAge(node, now);
  };
  tick();
  return setInterval(tick, 1000);
}

/** Small inline icons (no emoji: kiosk browsers often lack an emoji font). */
export function icon(name) {
  const paths = {
    bell: 'M12 3a5 5 0 0 0-5 5v3.5L5 15v1h14v-1l-2-3.5V8a5 5 0 0 0-5-5zm-2 14a2 2 0 0 0 4 0z',
    mute: 'M12 3a5 5 0 0 0-5 5v3.5L5 15v1h14v-1l-2-3.5V8a5 5 0 0 0-5-5zm-2 14a2 2 0 0 0 4 0zM4 4l16 16-1.4 1.4-16-16z',
    note: 'M5 3h10l4 4v14H5zm9 1.5V8h3.5zM8 11h8v1.5H8zm0 3.5h8V16H8z',
  };
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', paths[name]);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

export function money(cents) {
  return (cents / 100).toLocaleString(undefined, { style: 'currency', currency: 'EUR' });
}

export function shortId(id) {
  // Ids are UUIDv7 (time first): the random tail tells orders apart.
  return `#${String(id).slice(-4).toUpperCase()}`;
}

export const STATUS_LABEL = {
  new: 'New',
  accepted: 'Accepted',
  in_progress: 'Cooking',
  ready: 'Ready',
  served: 'Served',
  paid: 'Paid',
  cancelled: 'Cancelled',
  rejected: 'Rejected',
};

/** Open orders by id, kept current from a snapshot and order events. */
export class OrderBook {
  constructor() {
    this.orders = new Map();
  }

  load(snapshot) {
    this.orders = new Map(snapshot.orders.map((o) => [o.id, o]));
  }

  /** Applies an order event; returns the order (or undefined for other types). */
  apply(event) {
    if (!event.type.startsWith('order.')) return undefined;
    const order = event.data;
    const known = this.orders.get(order.id);
    if (known && known.version > order.version) return known;
    if (['paid', 'cancelled', 'rejected'].includes(order.status)) this.orders.delete(order.id);
    else this.orders.set(order.id, order);
    return order;
  }

  list(filter = () => true) {
    return [...this.orders.values()].filter(filter).sort((a, b) => a.created_at.localeCompare(b.created_at));
  }
}

/** A toast in `#toasts`; urgent ones stay until dismissed. */
export function toast(title, message, { urgent = false } = {}) {
  let host = document.getElementById('toasts');
  if (!host) {
    host = el('div', { id: 'toasts', 'aria-live': 'assertive' });
    document.body.append(host);
  }
  const node = el('div', { class: `toast ${urgent ? 'urgent' : ''}`, role: 'alert', 'data-testid': 'toast' }, [
    el('strong', {}, title),
    message ? el('span', {}, message) : null,
    el('button', { class: 'close', 'aria-label': 'Dismiss', onclick: () => node.remove() }, '×'),
  ]);
  host.prepend(node);
  if (!urgent) setTimeout(() => node.remove(), 8000);
  return node;
}

/**
 * The order's number as said out loud ("#42"): rolling 1–9999 per
 * restaurant. Events written before numbers existed have none: then the
 * id's short form.
 */
export function orderNumber(order) {
  return order.number ? `#${order.number}` : shortId(order.id);
}

/** How a waiter request's state reads on a screen. */
export const REQUEST_STATUS_LABEL = {
  open: 'Sent',
  acknowledged: 'Seen by your waiter',
  in_progress: 'On its way',
  on_hold: 'On hold',
  resolved: 'Done',
  cancelled: 'Cancelled',
};
