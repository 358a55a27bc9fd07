// An in-memory stand-in for the edge and the api, speaking the wire
// protocol through a fake `fetch` and a fake `WebSocket`, so the client's
// orchestration can be tested in Node without a browser or a server.

export class FakeServer {
  constructor() {
    this.events = new Map(); // rid -> [envelope]
    this.streaming = 'ok'; // 'ok' | 'refuse'
    this.sockets = [];
    this.waiters = new Set();
    this.requests = [];
    this.snapshotDelay = null; // a promise the snapshot's answer waits for
    this.snapshotSeq = null; // the seq a snapshot reflects (default: the head when asked)
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
    for (const wake of this.waiters) wake();
    return event;
  }

  after(rid, since) {
    return (this.events.get(rid) ?? []).filter((e) => e.seq > since);
  }

  get fetch() {
    return async (url, { signal } = {}) => {
      const u = new URL(url, 'http://edge.test');
      this.requests.push(u.pathname + u.search);
      const [, , , rid, what] = u.pathname.split('/');
      if (what === 'stream') {
        throw new TypeError('fetch failed'); // the fake streams over WebSocket only
      }
      if (what === 'orders') {
        const seq = this.snapshotSeq ?? this.head(rid);
        await this.snapshotDelay;
        return json({ seq, orders: [], truncated: false });
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
        return json({ events, next: events.length ? events.at(-1).seq : since });
      }
      return json({}, 404);
    };
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
          server.onSubscribe?.(f);
        }
      }

      push(event) {
        if (this.readyState === 1 && this.subs.has(event.restaurant_id)) this.reply({ type: 'event', event });
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
