// An in-memory stand-in for the edge and the api, speaking the wire
// protocol through a fake `fetch` and a fake `WebSocket`, so the client's
// orchestration can be tested in Node without a browser or a server.

export class FakeServer {
  constructor() {
    this.events = new Map(); // rid -> [envelope]
    this.streaming = 'ok'; // 'ok' | 'refuse'
    this.sse = 'refuse'; // 'ok' | 'refuse': server-sent events
    this.sockets = [];
    this.feeds = new Set(); // open SSE responses: {rid, write(text)}
    this.homes = new Map(); // rid -> the `stale` / `live` frame of its home region
    this.waiters = new Set();
    this.requests = [];
    this.snapshotDelay = null; // a promise the snapshot's answer waits for
    this.snapshotSeq = null; // the seq a snapshot reflects (default: the head when asked)
    this.orders = new Map(); // rid -> [order], oldest first
    this.pageLimit = 100; // orders per page of `GET …/orders` without `limit`
    this.statuses = new Map(); // command path -> {status, version}
    this.answers = new Map(); // idempotency key -> the first answer
    this.commands = []; // {via: 'ws' | 'http', id, path, body, ifMatch}
    this.holdReplies = false; // WebSocket commands are carried out but not answered
  }

  /**
   * A status change as the api does it: `path` is its HTTP path. A key seen
   * before replays its first answer; the same status again is an illegal
   * transition; a stale version a mismatch; both with `current`.
   */
  execute(via, { id, path, body, ifMatch = null }) {
    this.commands.push({ via, id, path, body, ifMatch });
    const first = this.answers.get(id);
    if (first) return { ...first, replayed: true };
    const now = this.statuses.get(path) ?? { id: path, status: 'new', version: 1 };
    const refuse = (slug) => ({
      status: 409,
      body: { type: `https://ordercast.dev/problems/${slug}`, title: slug, status: 409, detail: slug, current: now },
    });
    if (ifMatch !== null && ifMatch !== now.version) return refuse('version-mismatch');
    if (now.status === body.status) return refuse('illegal-transition');
    const next = { ...now, status: body.status, version: now.version + 1 };
    this.statuses.set(path, next);
    const answer = { status: 200, body: { order: next, seq: next.version } };
    this.answers.set(id, answer);
    return answer;
  }

  head(rid) {
    return (this.events.get(rid) ?? []).length;
  }

  publish(rid, type = 'order.created') {
    const list = this.events.get(rid) ?? [];
    this.events.set(rid, list);
    const event = { restaurant_id: rid, seq: list.length + 1, type, data: { id: `o${list.length + 1}` } };
    list.push(event);
    for (const ws of this.sockets) ws.push(event);
    for (const feed of this.feeds) if (feed.rid === rid) feed.write(sseEvent(event.seq, event.type, event));
    for (const wake of this.waiters) wake();
    return event;
  }

  /**
   * The restaurant's home region goes stale (`{region, last_seq,
   * last_event_at, since}`) or, with null, comes back. Like the edge, every
   * subscription to it starts with the home's state, and a waiting
   * long-poll answers.
   */
  setHome(rid, stale, region = 'eu') {
    const frame = stale
      ? { type: 'stale', restaurant_id: rid, ...stale }
      : { type: 'live', restaurant_id: rid, region: this.homes.get(rid)?.region ?? region };
    this.homes.set(rid, frame);
    for (const ws of this.sockets) ws.push(frame);
    for (const feed of this.feeds) if (feed.rid === rid) feed.write(sseSignal(frame));
    for (const wake of this.waiters) wake();
  }

  /**
   * A page of `GET …/orders` as the api answers it: from the newest orders
   * to the oldest, each page oldest first, `next` while more follow.
   */
  ordersPage(rid, seq, params) {
    const all = this.orders.get(rid) ?? [];
    const limit = Number(params.get('limit') ?? this.pageLimit);
    const end = params.has('after') ? Number(params.get('after')) : all.length;
    const start = Math.max(0, end - limit);
    const page = { seq, orders: all.slice(start, end), truncated: start > 0 };
    return start > 0 ? { ...page, next: String(start) } : page;
  }

  after(rid, since) {
    return (this.events.get(rid) ?? []).filter((e) => e.seq > since);
  }

  get fetch() {
    return async (url, { signal, method = 'GET', headers = {}, body } = {}) => {
      const u = new URL(url, 'http://edge.test');
      this.requests.push(u.pathname + u.search);
      if (method === 'POST' && u.pathname.endsWith('/status')) {
        const ifMatch = headers['If-Match'] ? Number(headers['If-Match'].replace(/"/g, '')) : null;
        const command = { id: headers['Idempotency-Key'], path: u.pathname, body: JSON.parse(body), ifMatch };
        const answer = this.execute('http', command);
        return json(answer.body, answer.status);
      }
      const [, , , rid, what] = u.pathname.split('/');
      if (what === 'stream') {
        if (this.sse !== 'ok') throw new TypeError('fetch failed');
        const since = u.searchParams.has('since') ? Number(u.searchParams.get('since')) : this.head(rid);
        return this.stream(rid, since, signal);
      }
      if (what === 'orders') {
        const seq = this.snapshotSeq ?? this.head(rid);
        await this.snapshotDelay;
        return json(this.ordersPage(rid, seq, u.searchParams));
      }
      if (what === 'events') {
        const since = u.searchParams.has('since') ? Number(u.searchParams.get('since')) : this.head(rid);
        await new Promise((resolve, reject) => {
          if (this.after(rid, since).length > 0 || u.searchParams.get('wait') === '0') return resolve();
          const wake = () => {
            this.waiters.delete(wake);
            resolve();
          };
          this.waiters.add(wake);
          signal?.addEventListener('abort', () => {
            this.waiters.delete(wake);
            reject(new DOMException('aborted', 'AbortError'));
          });
        });
        const events = this.after(rid, since);
        const home = this.homes.get(rid);
        const page = { events, next: events.length ? events.at(-1).seq : since };
        if (home?.type === 'stale') {
          const { type, restaurant_id, ...stale } = home;
          page.stale = stale;
        }
        return json(page);
      }
      return json({}, 404);
    };
  }

  /** An SSE response from `since`, as the edge writes it. */
  stream(rid, since, signal) {
    const encoder = new TextEncoder();
    let feed;
    const body = new ReadableStream({
      start: (controller) => {
        feed = { rid, write: (text) => controller.enqueue(encoder.encode(text)) };
        feed.write(`retry: 2000\n: subscribed at ${since}\n\n`);
        for (const e of this.after(rid, since)) feed.write(sseEvent(e.seq, e.type, e));
        if (this.homes.has(rid)) feed.write(sseSignal(this.homes.get(rid)));
        this.feeds.add(feed);
        signal?.addEventListener('abort', () => {
          this.feeds.delete(feed);
          controller.error(new DOMException('aborted', 'AbortError'));
        });
      },
    });
    return { ok: true, status: 200, headers: new Map(), body };
  }

  get WebSocket() {
    const server = this;
    return class FakeWebSocket {
      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.sent = [];
        this.subs = new Map();
        setTimeout(() => {
          if (server.streaming === 'refuse') {
            this.readyState = 3;
            this.onclose?.({ code: 1006, reason: '' });
            return;
          }
          server.sockets.push(this);
          this.readyState = 1;
          this.onopen?.();
          this.reply({ type: 'hello', server: 'fake', limits: { commands_in_flight: 8 } });
        }, 0);
      }

      send(text) {
        const f = JSON.parse(text);
        this.sent.push(f);
        if (f.type === 'subscribe') {
          // Like the edge: a new subscribe replaces the old one, whose
          // answers not yet sent are dropped.
          const rid = f.restaurant_id;
          const since = f.since ?? server.head(rid);
          const current = {};
          this.subs.set(rid, current);
          const live = () => this.subs.get(rid) === current;
          this.reply({ type: 'subscribed', restaurant_id: rid, seq: since, head: server.head(rid) }, live);
          for (const e of server.after(rid, since)) this.reply({ type: 'event', event: e }, live);
          if (server.homes.has(rid)) this.reply(server.homes.get(rid), live);
          server.onSubscribe?.(f);
        }
        if (f.type === 'command') {
          const { type, id, command, restaurant_id: rid, order_id: oid, version, ...body } = f;
          const path = `/v1/restaurants/${rid}/orders/${oid}/status`;
          const answer = server.execute('ws', { id, path, body, ifMatch: version ?? null });
          if (server.holdReplies) return;
          const ok = answer.status < 400;
          const reply = { type: 'reply', id, ok, status: answer.status };
          if (ok) Object.assign(reply, { result: answer.body, version: answer.body.order.version });
          else reply.problem = answer.body;
          if (answer.replayed) reply.replayed = true;
          this.reply(reply);
        }
      }

      /** An event, or a `stale` / `live` frame. */
      push(frame) {
        const rid = frame.restaurant_id;
        if (this.readyState !== 1 || !this.subs.has(rid)) return;
        this.reply(frame.type === 'stale' || frame.type === 'live' ? frame : { type: 'event', event: frame });
      }

      reply(frame, still = () => true) {
        setTimeout(() => this.readyState === 1 && still() && this.onmessage?.({ data: JSON.stringify(frame) }), 0);
      }

      /** The server ends the socket (code, reason). */
      drop(code = 1006, reason = '') {
        this.readyState = 3;
        server.sockets = server.sockets.filter((s) => s !== this);
        this.onclose?.({ code, reason });
      }

      close() {
        this.readyState = 3;
        server.sockets = server.sockets.filter((s) => s !== this);
      }
    };
  }
}

function sseEvent(id, name, data) {
  return `id: ${id}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** `stale` and `live` have no id: they must not move `Last-Event-ID`. */
function sseSignal(frame) {
  return `event: ${frame.type}\ndata: ${JSON.stringify(frame)}\n\n`;
}

function json(body, status = 200) {
  return {
    ok: status < 400,
    status,
    headers: new Map(),
    json: async () => body,
  };
}

/** Resolves when `check()` is truthy; fails after `ms`. */
export async function until(what, check, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
