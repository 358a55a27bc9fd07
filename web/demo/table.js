// Table screen: a customer's own orders (its session only), step by step,
// with their numbers, and the table's own waiter requests.
import {
  OrderBook, REQUEST_STATUS_LABEL, api, claims, el, fatal, follow, money, orderNumber, settings, toast,
} from '/demo/common.js';

const cfg = settings();
const book = new OrderBook();
const STEPS = [
  ['new', 'Received'],
  ['accepted', 'Accepted'],
  ['in_progress', 'Preparing'],
  ['ready', 'Ready'],
  ['served', 'Served'],
];
const ITEM_LABEL = { queued: 'waiting', cooking: 'cooking', ready: 'ready', served: 'served', cancelled: 'cancelled' };
const REQUEST_LABEL = { call_waiter: 'Waiter', bill: 'Bill', water: 'Water', other: 'Request' };
// This session's requests still being handled (the edge sends a guest
// only its own session's).
const requests = new Map();

if (!cfg.token || !cfg.restaurant) {
  fatal('No token', 'Open this screen with #token=<customer JWT>&restaurant=<id> in the URL.');
} else {
  start();
}

function start() {
  const session = claims(cfg.token).session_id;
  document.body.dataset.session = session ?? '';
  const screen = follow(cfg, book, {
    onEvent: (event) => {
      if (event.type.startsWith('request.')) onRequest(event.data);
      if (event.type === 'session.transferred') toast('Your waiter changed', `${event.data.to_waiter_id} is looking after your table now.`);
      const before = book.orders.get(event.data?.id)?.status;
      const order = book.apply(event);
      if (order && order.status === 'ready' && before !== 'ready') toast(`Order ${orderNumber(order)} is ready`, '');
      render();
    },
    render,
  });
  screen.client.sync(cfg.restaurant).catch((e) => toast('Could not load your orders', e.message, { urgent: true }));
  api(cfg, 'GET', `/v1/restaurants/${cfg.restaurant}`)
    .then((r) => {
      document.getElementById('name').textContent = r.name;
    })
    .catch(() => {});
  setupHelp();
}

function tableOf() {
  return cfg.table ?? book.list().find((o) => o.table)?.table ?? null;
}

function render() {
  const orders = book.list();
  const table = tableOf();
  document.getElementById('where').textContent = table ? `Table ${table}` : 'Your table';
  document.getElementById('help').hidden = !table;
  document.getElementById('empty').hidden = orders.length > 0;
  document.getElementById('orders').replaceChildren(...orders.map(card));
  renderRequests();
}

function onRequest(request) {
  if (request.status === 'resolved' || request.status === 'cancelled') requests.delete(request.id);
  else requests.set(request.id, request);
}

function renderRequests() {
  const list = [...requests.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  document.getElementById('requests').replaceChildren(...list.map((r) => el('li', {
    class: `guest-request request-${r.status}`, 'data-testid': 'guest-request', 'data-status': r.status,
  }, [
    el('strong', {}, REQUEST_LABEL[r.kind] ?? r.kind),
    el('span', {}, REQUEST_STATUS_LABEL[r.status] ?? r.status),
    r.message ? el('span', { class: 'muted' }, r.message) : null,
  ])));
}

function card(order) {
  // Served is the last step: shown done, not in progress.
  const served = order.status === 'served';
  const stepIndex = STEPS.findIndex(([s]) => s === order.status) + (served ? 1 : 0);
  return el('article', { class: 'guest-order', 'data-testid': 'guest-order', 'data-order-id': order.id, 'data-status': order.status }, [
    el('header', {}, [
      el('span', { class: 'order-number', 'data-testid': 'order-number' }, orderNumber(order)),
      el('h2', {}, served ? 'Served — enjoy!' : order.status === 'ready' ? 'Ready — on its way' : 'Your order'),
      el('span', { class: 'muted' }, new Date(order.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
    ]),
    el('ol', { class: 'steps' }, STEPS.map(([status, text], i) => el('li', {
      class: i < stepIndex ? 'done' : i === stepIndex ? 'current' : '',
    }, text))),
    el('ul', { class: 'guest-items' }, order.items.map((item) => el('li', { class: `item-${item.status}` }, [
      el('span', { class: 'dot' }),
      el('span', { class: 'name' }, `${item.quantity}× ${item.name}`),
      el('span', { class: 'muted' }, ITEM_LABEL[item.status] ?? item.status),
    ]))),
    el('footer', {}, [el('span', {}, 'Total'), el('strong', {}, money(order.total_cents))]),
  ]);
}

function setupHelp() {
  for (const button of document.querySelectorAll('#help button')) {
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await api(cfg, 'POST', `/v1/restaurants/${cfg.restaurant}/requests`, { kind: button.dataset.kind, table: tableOf() });
        toast('On its way', 'A waiter has been told.');
      } catch (e) {
        toast('Could not reach a waiter', e.message, { urgent: true });
      } finally {
        button.disabled = false;
      }
    });
  }
}
