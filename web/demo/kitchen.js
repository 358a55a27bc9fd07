// Kitchen display: tickets by status with items, stations, notes and age
// timers; start / item ready / bump; urgent notifications; new-ticket sound.
import {
  OrderBook, ageEl, api, el, fatal, follow, icon, orderNumber, settings, shortId, tickAges, toast,
} from '/demo/common.js';

const cfg = settings();
const LANE = { new: 'new', accepted: 'new', in_progress: 'cooking', ready: 'ready' };
const book = new OrderBook();
// The client: tickets move with its commands, so on a WebSocket they go on
// the socket, otherwise over HTTP.
let client = null;
let sound = localStorage.getItem('ordercast.kds.sound') === 'on';
let audio = null;

if (!cfg.token || !cfg.restaurant) {
  fatal('No token', 'Open this screen with #token=<kitchen JWT>&restaurant=<id> in the URL.');
} else {
  start();
}

function start() {
  const screen = follow(cfg, book, { onEvent, render });
  client = screen.client;
  const rid = cfg.restaurant;
  screen.client.sync(rid).catch((e) => toast('Could not load open orders', e.message, { urgent: true }));
  api(cfg, 'GET', `/v1/restaurants/${rid}`)
    .then((r) => {
      document.getElementById('name').textContent = r.name;
      document.title = `${r.name} · Kitchen`;
    })
    .catch(() => {});
  setupSound();
  tickAges();
  const clock = document.getElementById('clock');
  const showClock = () => {
    clock.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  };
  showClock();
  setInterval(showClock, 10_000);
}

function onEvent(event) {
  if (event.type === 'notification') {
    const d = event.data;
    toast(d.title, d.message, { urgent: d.urgency === 'urgent' });
    if (d.urgency === 'urgent') beep(3);
    return;
  }
  const order = book.apply(event);
  if (!order) return;
  if (event.type === 'order.created') beep(1);
  if (event.type === 'order.status_changed' && order.status === 'cancelled') {
    toast(`Order ${label(order)} cancelled`, order.reason ?? '', { urgent: true });
  }
  render(order.id);
}

function label(order) {
  return order.table ? `${orderNumber(order)}, table ${order.table}` : orderNumber(order);
}

function render(flash) {
  const lanes = { new: [], cooking: [], ready: [] };
  for (const order of book.list()) {
    const lane = LANE[order.status];
    if (lane) lanes[lane].push(order);
  }
  for (const [lane, orders] of Object.entries(lanes)) {
    const host = document.getElementById(`lane-${lane}`);
    host.replaceChildren(...orders.map((o) => ticket(o, o.id === flash)));
    if (orders.length === 0) host.append(el('p', { class: 'empty' }, lane === 'new' ? 'No new tickets' : 'Nothing here'));
    document.getElementById(`count-${lane}`).textContent = orders.length;
  }
}

function ticket(order, flash) {
  const live = order.items.filter((i) => i.status !== 'cancelled');
  const done = live.filter((i) => i.status === 'ready' || i.status === 'served').length;
  const actions = [];
  if (order.status === 'new' || order.status === 'accepted') {
    actions.push(button('Start', 'start', () => startOrder(order)));
  }
  if (order.status === 'in_progress' || order.status === 'accepted') {
    if (order.status === 'in_progress') actions.push(button('Bump', 'bump', () => finishItems(order)));
  }
  if (order.status === 'ready') actions.push(button('Bump', 'bump', () => setStatus(order, 'served')));
  return el('article', {
    class: `ticket status-${order.status} ${flash ? 'flash' : ''}`,
    'data-testid': 'ticket',
    'data-order-id': order.id,
    'data-status': order.status,
  }, [
    el('header', {}, [
      el('div', { class: 'head' }, [
        el('span', { class: 'order-number', 'data-testid': 'order-number' }, orderNumber(order)),
        el('div', { class: 'where' }, [
          el('strong', {}, order.table ? `Table ${order.table}` : order.channel.toUpperCase()),
          // The number is what the kitchen calls; the id's fragment stays
          // for looking an order up, without a "#" to mix the two up.
          el('span', { class: 'muted' }, `${shortId(order.id).replace('#', 'id ')} · ${order.channel}`),
        ]),
      ]),
      ageEl('span', order.created_at, { class: 'age' }),
    ]),
    el('ul', { class: 'items' }, order.items.map((item) => itemRow(order, item))),
    order.notes ? el('p', { class: 'note' }, [icon('note'), order.notes]) : null,
    el('footer', {}, [
      el('span', { class: 'progress' }, `${done}/${live.length} ready`),
      el('div', { class: 'actions' }, actions),
    ]),
  ]);
}

function itemRow(order, item) {
  const canReady = order.status === 'in_progress' && (item.status === 'queued' || item.status === 'cooking');
  return el('li', { class: `item item-${item.status}`, 'data-item-id': item.id }, [
    el('span', { class: 'qty' }, `${item.quantity}×`),
    el('div', { class: 'what' }, [
      el('span', { class: 'name' }, item.name),
      item.notes ? el('span', { class: 'item-note' }, item.notes) : null,
    ]),
    item.station ? el('span', { class: 'station' }, item.station) : null,
    canReady
      ? button('Ready', 'item-ready', () => itemReady(order, item), 'small')
      : el('span', { class: `pill pill-${item.status}` }, item.status),
  ]);
}

function button(text, action, fn, size = '') {
  return el('button', {
    class: `btn btn-${action} ${size}`,
    'data-action': action,
    onclick: async (e) => {
      const b = e.currentTarget;
      b.disabled = true;
      try {
        await fn();
      } catch (err) {
        toast('Could not update the order', err.message, { urgent: true });
        b.disabled = false;
      }
    },
  }, text);
}

async function setStatus(order, status) {
  return client.updateOrderStatus(cfg.restaurant, order.id, status);
}

async function startOrder(order) {
  if (order.status === 'new') await setStatus(order, 'accepted');
  await setStatus(order, 'in_progress');
}

async function itemReady(order, item) {
  if (item.status === 'queued') await client.updateItemStatus(cfg.restaurant, order.id, item.id, 'cooking');
  await client.updateItemStatus(cfg.restaurant, order.id, item.id, 'ready');
}

async function finishItems(order) {
  for (const item of order.items) {
    if (item.status === 'queued' || item.status === 'cooking') await itemReady(order, item);
  }
}

function setupSound() {
  const btn = document.getElementById('sound');
  const show = () => {
    btn.replaceChildren(icon(sound ? 'bell' : 'mute'), sound ? 'Sound on' : 'Sound off');
    btn.setAttribute('aria-pressed', String(sound));
  };
  btn.addEventListener('click', () => {
    sound = !sound;
    localStorage.setItem('ordercast.kds.sound', sound ? 'on' : 'off');
    if (sound) beep(1);
    show();
  });
  show();
}

/** A short chime per new ticket (Web Audio: no sound file to ship). */
function beep(times) {
  if (!sound) return;
  try {
    audio ??= new AudioContext();
    for (let i = 0; i < times; i += 1) {
      const t = audio.currentTime + i * 0.25;
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.setValueAtTime(880, t);
      osc.frequency.setValueAtTime(1320, t + 0.08);
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.3, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.2);
      osc.connect(gain).connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.22);
    }
  } catch {
    // no audio device: the screen still works
  }
}
