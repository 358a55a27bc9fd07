// Ordercast browser client: one interface over WebSocket, server-sent events
// and long-poll, resuming every restaurant from its cursor (the last seq it
// processed) so a screen sees every event once, in order.
//
// Dependency-free ES module. The pure parts (Backoff, Cursor, SseParser,
// ConnectionMachine) are exported for tests and for other transports.
// Protocol: docs/protocol.md; library guide: docs/client.md.

/** Connection states, in the order a healthy client usually meets them. */
export const STATES = Object.freeze(['connecting', 'live', 'reconnecting', 'polling', 'offline']);

const DEFAULTS = Object.freeze({
  transport: 'auto',
  heartbeatTimeout: 45_000,
  connectTimeout: 10_000,
  backoffBase: 1_000,
  backoffMax: 30_000,
  fallbackAfter: 3,
  pollWait: 25,
  pollLimit: 500,
});

// A restaurant's state until its edge says its home region is stale.
const HOME_LIVE = Object.freeze({ state: 'live', region: null, lastSeq: null, lastEventAt: null, since: null });

// A server hint larger than this is treated as this (a typo on the server
// must not park screens for hours).
const MAX_HINT_MS = 5 * 60_000;

// ---------------------------------------------------------------------------
// Backoff: exponential with full jitter.

/**
 * Reconnect delays: attempt n waits a uniformly random time in
 * [0, min(max, base·2ⁿ)) ("full jitter"), so a thousand screens that lost the
 * same edge do not come back in step. A server hint (SSE `retry:`, WebSocket
 * close 1012 `retry=<ms>`, `Retry-After`) is a lower bound.
 */
export class Backoff {
  constructor({ base = DEFAULTS.backoffBase, max = DEFAULTS.backoffMax, random = Math.random } = {}) {
    this.base = base;
    this.max = max;
    this.random = random;
    this.attempt = 0;
  }

  /** The upper bound of the next delay, in ms. */
  ceiling() {
    return Math.min(this.max, this.base * 2 ** Math.min(this.attempt, 30));
  }

  /** The next delay in ms (and counts the attempt). */
  next(hint = null) {
    const jittered = Math.floor(this.random() * this.ceiling());
    this.attempt += 1;
    const floor = Number.isFinite(hint) && hint > 0 ? Math.min(hint, MAX_HINT_MS) : 0;
    return Math.max(floor, jittered);
  }

  /** After a success: the next failure starts again from `base`. */
  reset() {
    this.attempt = 0;
  }
}

// ---------------------------------------------------------------------------
// Cursor: per-restaurant position, dedupe by seq.

/**
 * The seq of the last event of one restaurant that was processed. Events at
 * or below it are duplicates (a resume overlapping what was already seen,
 * or two transports during a handover) and are dropped. Seqs may have holes
 * (events the token may not see), so a jump is never treated as a loss.
 */
export class Cursor {
  /**
   * @param {number|Date|null} since null: "from now", learnt from the
   * server; a Date: from the first event at or after it, until the server
   * or an event gives a seq.
   */
  constructor(since = null) {
    this.time = since instanceof Date ? since.toISOString() : null;
    this.seq = since instanceof Date ? null : (since ?? null);
    this.delivered = 0;
    this.duplicates = 0;
  }

  /** What to send as `since`: the seq, else the start time (RFC 3339), else null. */
  param() {
    return this.seq ?? this.time;
  }

  /** True when `seq` is new (and moves the cursor to it); false for a duplicate. */
  accept(seq) {
    if (this.seq !== null && seq <= this.seq) {
      this.duplicates += 1;
      return false;
    }
    this.seq = seq;
    this.time = null;
    this.delivered += 1;
    return true;
  }

  /**
   * The server says everything up to `seq` is covered (the start of a
   * subscription, a long-poll `next`, a snapshot): never moves backwards.
   */
  advance(seq) {
    if (!Number.isInteger(seq) || seq < 0) return;
    if (this.seq === null || seq > this.seq) this.seq = seq;
    this.time = null;
  }
}

// ---------------------------------------------------------------------------
// SseParser: the text/event-stream format, fed in arbitrary chunks.

/**
 * Parses `text/event-stream` (WHATWG HTML §9.2) from chunks split anywhere,
 * including inside a CRLF. Calls `onMessage` with
 * `{kind: 'event', id, event, data}`, `{kind: 'comment', text}` (heartbeats,
 * `subscribed at N`) or `{kind: 'retry', ms}`. Unlike `EventSource`, it
 * surfaces comments, which is what lets the watchdog see heartbeats.
 */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = '';
    this.skipLF = false;
    this.data = [];
    this.event = '';
    this.id = null;
  }

  push(chunk) {
    let text = chunk;
    if (this.skipLF && text.startsWith('\n')) text = text.slice(1);
    this.skipLF = false;
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i += 1) {
      const c = this.buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(this.buffer.slice(start, i));
      if (c === '\r') {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === '\n') i += 1;
        } else {
          this.skipLF = true;
        }
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line[0] === ':') {
      this.onMessage({ kind: 'comment', text: line.slice(1).replace(/^ /, '') });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.onMessage({ kind: 'retry', ms: Number(value) });
  }

  dispatch() {
    if (this.data.length > 0) {
      this.onMessage({ kind: 'event', id: this.id, event: this.event || 'message', data: this.data.join('\n') });
    }
    this.data = [];
    this.event = '';
  }
}

// ---------------------------------------------------------------------------
// ConnectionMachine: what the connection indicator shows.

/**
 * The client's state machine, free of I/O. Inputs:
 * `stream_up` (a streaming connection is subscribed), `stream_lost` (a live
 * stream ended), `stream_failed` (an attempt ended before it was live),
 * `poll_ok`, `poll_failed`, `network_down`, `network_up`, `closed`.
 *
 * After `fallbackAfter` consecutive failed streaming attempts the mode
 * becomes `poll` (when polling is allowed): the client long-polls and keeps
 * probing streaming; a probe that gets live switches back. Without polling,
 * that many failures show `offline` (the client keeps retrying).
 */
export class ConnectionMachine {
  constructor({ fallbackAfter = DEFAULTS.fallbackAfter, stream = true, poll = true } = {}) {
    this.fallbackAfter = fallbackAfter;
    this.canStream = stream;
    this.canPoll = poll;
    this.mode = stream ? 'stream' : 'poll';
    this.state = 'connecting';
    this.failures = 0;
    this.online = true;
  }

  /** Applies one input; returns the state after it. */
  apply(input) {
    switch (input) {
      case 'stream_up':
        this.mode = 'stream';
        this.failures = 0;
        this.online = true;
        this.state = 'live';
        break;
      case 'stream_lost':
        if (this.mode === 'stream') {
          this.failures = 0;
          this.state = 'reconnecting';
        }
        break;
      case 'stream_failed':
        this.failures += 1;
        if (this.mode === 'stream') {
          if (this.failures < this.fallbackAfter) this.state = 'reconnecting';
          else if (this.canPoll) this.mode = 'poll';
          else this.state = 'offline';
        }
        break;
      case 'poll_ok':
        this.online = true;
        if (this.mode === 'poll') this.state = 'polling';
        break;
      case 'poll_failed':
        if (this.mode === 'poll') this.state = 'offline';
        break;
      case 'network_down':
        this.online = false;
        this.state = 'offline';
        break;
      case 'network_up':
        this.online = true;
        if (this.state === 'offline') this.state = 'reconnecting';
        break;
      case 'closed':
        this.state = 'offline';
        break;
      default:
        throw new Error(`unknown input ${input}`);
    }
    // While the browser says it is offline, failures do not pretend otherwise.
    if (!this.online && this.state !== 'live' && this.state !== 'polling') this.state = 'offline';
    return this.state;
  }

  /** True when the client should be long-polling. */
  get polling() {
    return this.mode === 'poll';
  }
}

// ---------------------------------------------------------------------------
// Errors and small helpers.

/** An error reported by the server or the client, with a stable `code`. */
export class OrdercastError extends Error {
  constructor(code, message, { status = null, restaurantId = null, problem = null, retryAfter = null } = {}) {
    super(message);
    this.name = 'OrdercastError';
    this.code = code;
    this.status = status;
    this.restaurantId = restaurantId;
    /** A refused command's problem+json (`type`, `title`, `status`, `detail`, `current`…). */
    this.problem = problem;
    /** The problem's `type` URI. */
    this.type = problem?.type ?? null;
    /** For `409`s: the resource as it is now. */
    this.current = problem?.current ?? null;
    /** For `429`s: seconds to wait. */
    this.retryAfter = retryAfter;
  }
}

/** A refused command's error: the code is the problem's slug with underscores. */
function commandError(status, problem, retryAfter = null) {
  const slug = String(problem?.type ?? '').split('/').pop() || `http_${status}`;
  const detail = problem?.detail ?? problem?.title ?? `HTTP ${status}`;
  return new OrdercastError(slug.replace(/-/g, '_'), detail, { status, problem, retryAfter });
}

/** A command id: unique, and the same on every resend of one command. */
function commandId(random) {
  const uuid = globalThis.crypto?.randomUUID?.();
  if (uuid) return `oc-${uuid}`;
  return `oc-${Date.now().toString(36)}-${Math.floor(random() * 2 ** 48).toString(36)}`;
}

const FATAL_HTTP = new Map([
  [401, 'unauthorized'],
  [403, 'forbidden'],
  [404, 'not_found'],
]);
// cursor_expired: a start time before retention; the app decides (a
// snapshot, or since 0) rather than silently skipping what it asked for.
const FATAL_FRAME = new Set(['forbidden', 'not_found', 'too_many_subscriptions', 'invalid_message', 'cursor_expired']);

function joinUrl(base, path) {
  return `${String(base).replace(/\/+$/, '')}${path}`;
}

function wsUrl(base, path) {
  const http = new URL(joinUrl(base, path), globalThis.location?.href);
  http.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
  return http.toString();
}

function retryAfterMs(res) {
  const value = res.headers?.get?.('retry-after');
  return value && /^\d+$/.test(value) ? Number(value) * 1000 : null;
}

async function problemOf(res) {
  try {
    const body = await res.json();
    const slug = String(body.type ?? '').split('/').pop();
    return { slug, detail: body.detail ?? body.title ?? `HTTP ${res.status}` };
  } catch {
    return { slug: '', detail: `HTTP ${res.status}` };
  }
}

// ---------------------------------------------------------------------------
// Transports. Each reports to the client through _deliver, _advance, _home,
// _subError, _streamUp/_streamDown and _pollOk/_pollFailed. Every request
// remembers the subscription's generation: answers to a request made before
// a sync() re-based the cursor are ignored, so they can never skip events.

/** A JWT's `exp` claim in ms since the epoch, or null if it has none. */
export function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

// Before the socket's token expires, WsStream asks the `token` option for a
// newer one and hands it to the edge in band (`refresh`): the socket and its
// subscriptions carry on. If no newer token comes, it asks again every few
// seconds; at expiry the edge closes with 4001 and the client reconnects with
// whatever `token` gives then, resuming by cursor.
const REFRESH_AHEAD_MS = 60_000;
const REFRESH_RETRY_MS = 5_000;

class WsStream {
  constructor(client) {
    this.client = client;
    this.kind = 'ws';
    this.up = false;
    this.done = false;
    this.subs = new Map(); // rid -> {gen, since, ready} of the latest subscribe
    this.timer = null;
    this.pinger = null;
    this.refresher = null;
    this.token = null;
    this.hello = null;
    this.pending = new Map(); // command id -> {command, resolve, reject}
  }

  /** Whether a command can go on this socket now. */
  canCommand() {
    const limit = this.hello?.limits?.commands_in_flight ?? 8;
    return !this.done && this.ws?.readyState === 1 && this.pending.size < limit;
  }

  /** Sends a command; its reply settles it (see `frame`). */
  command(command) {
    this.pending.set(command.id, command);
    this.send({ type: 'command', id: command.id, command: command.name, ...command.fields });
  }

  start() {
    const c = this.client;
    this.token = c._token();
    try {
      this.ws = new c._WebSocket(wsUrl(c._base, '/v1/ws'), ['ordercast.v1', `ordercast.bearer.${this.token}`]);
    } catch {
      setTimeout(() => this.end(null), 0);
      return;
    }
    this.watch(c._o.connectTimeout);
    this.ws.onopen = () => {
      for (const sub of c._activeSubs()) this.add(sub);
      this.pinger = setInterval(() => this.send({ type: 'ping' }), Math.max(1000, c._o.heartbeatTimeout / 3));
      this.planRefresh(tokenExpiry(this.token));
      this.checkUp();
    };
    this.ws.onmessage = (m) => {
      this.watch(this.up ? c._o.heartbeatTimeout : c._o.connectTimeout);
      this.frame(m.data);
    };
    this.ws.onclose = (e) => {
      const match = e.code === 1012 ? /retry=(\d+)/.exec(e.reason ?? '') : null;
      this.end(match ? Number(match[1]) : null);
    };
    this.ws.onerror = () => {};
  }

  watch(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fail(), ms);
  }

  send(frame) {
    if (this.ws?.readyState === 1) this.ws.send(JSON.stringify(frame));
  }

  planRefresh(expiresAt) {
    clearTimeout(this.refresher);
    if (expiresAt === null || this.done) return;
    const left = expiresAt - Date.now();
    this.refresher = setTimeout(() => this.refresh(), Math.max(0, left - Math.min(REFRESH_AHEAD_MS, left / 2)));
  }

  refresh() {
    const token = this.client._token();
    if (token !== this.token && (tokenExpiry(token) ?? 0) > (tokenExpiry(this.token) ?? 0)) {
      this.token = token;
      this.send({ type: 'refresh', token });
    } else {
      this.refresher = setTimeout(() => this.refresh(), REFRESH_RETRY_MS);
    }
  }

  add(sub) {
    if (this.ws?.readyState !== 1 || sub.failed) return;
    // Subscribing again replaces the subscription on the server, which may
    // drop the old one before it answered: wait for the answer to this one.
    const since = sub.cursor.param();
    this.subs.set(sub.rid, { gen: sub.gen, since, ready: false });
    const frame = { type: 'subscribe', restaurant_id: sub.rid };
    if (since !== null) frame.since = since;
    this.send(frame);
  }

  resubscribe(sub) {
    this.add(sub);
  }

  remove(sub) {
    if (this.subs.delete(sub.rid)) this.send({ type: 'unsubscribe', restaurant_id: sub.rid });
    this.checkUp();
  }

  frame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    const c = this.client;
    const rid = f.type === 'event' ? f.event?.restaurant_id : f.restaurant_id;
    const sub = rid ? c._subs.get(rid) : undefined;
    const st = rid ? this.subs.get(rid) : undefined;
    switch (f.type) {
      case 'subscribed':
        // The answer to an earlier, replaced subscribe starts elsewhere.
        if (!sub || !st || st.ready || (typeof st.since === 'number' && f.seq !== st.since)) return;
        st.ready = true;
        c._advance(sub, f.seq, st.gen);
        this.checkUp();
        break;
      case 'event':
        if (sub && st?.ready) c._deliver(sub, f.event, st.gen);
        break;
      case 'stale':
      case 'live':
        if (sub && st?.ready) c._home(sub, f);
        break;
      case 'refreshed':
        this.planRefresh(f.expires_at * 1000);
        break;
      case 'hello':
        this.hello = f;
        break;
      case 'reply': {
        const command = this.pending.get(f.id);
        if (!command) return;
        this.pending.delete(f.id);
        if (f.ok) command.resolve(f.result);
        else command.reject(commandError(f.status, f.problem, f.retry_after ?? null));
        break;
      }
      case 'error': {
        if (!sub) {
          c._emit('error', new OrdercastError(f.code ?? 'error', f.message ?? 'WebSocket error'));
          return;
        }
        const verdict = c._subError(sub, f.code, f.message);
        if (verdict === 'retry') this.add(sub);
        else if (verdict === 'fatal') {
          this.subs.delete(rid);
          this.checkUp();
        } else this.fail();
        break;
      }
      case 'pong':
        c._beat();
        break;
      default:
        break; // unsubscribed, snapshot, sync_complete
    }
  }

  checkUp() {
    if (this.up || this.done || this.ws?.readyState !== 1) return;
    for (const sub of this.client._activeSubs()) {
      if (!this.subs.get(sub.rid)?.ready) return;
    }
    this.up = true;
    this.watch(this.client._o.heartbeatTimeout);
    this.client._streamUp(this);
  }

  fail() {
    try {
      this.ws?.close(4000, 'client gave up');
    } catch {
      // already closing
    }
    this.end(null);
  }

  end(hint) {
    if (this.done) return;
    this.close();
    this.client._streamDown(this, hint);
  }

  close() {
    this.done = true;
    clearTimeout(this.timer);
    clearTimeout(this.refresher);
    clearInterval(this.pinger);
    // Commands without a reply go again over HTTP with the same id: the api
    // answers the first result if the socket's command was carried out.
    const orphans = [...this.pending.values()];
    this.pending.clear();
    for (const command of orphans) this.client._commandOverHttp(command);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      if (this.ws.readyState <= 1) {
        try {
          this.ws.close(1000, 'bye');
        } catch {
          // ignore
        }
      }
    }
  }
}

class SseStream {
  constructor(client) {
    this.client = client;
    this.kind = 'sse';
    this.up = false;
    this.done = false;
    this.feeds = new Map(); // rid -> SseFeed
  }

  start() {
    for (const sub of this.client._activeSubs()) this.add(sub);
    this.checkUp();
  }

  add(sub) {
    if (this.done || sub.failed) return;
    this.feeds.get(sub.rid)?.abort();
    const feed = new SseFeed(this, sub);
    this.feeds.set(sub.rid, feed);
    feed.run();
  }

  resubscribe(sub) {
    this.add(sub);
  }

  remove(sub) {
    this.feeds.get(sub.rid)?.abort();
    this.feeds.delete(sub.rid);
    this.checkUp();
  }

  checkUp() {
    if (this.up || this.done || this.feeds.size === 0) return;
    for (const feed of this.feeds.values()) if (!feed.open) return;
    this.up = true;
    this.client._streamUp(this);
  }

  feedEnded(feed, hint) {
    if (this.feeds.get(feed.sub.rid) !== feed || this.done) return;
    this.close();
    this.client._streamDown(this, hint);
  }

  feedRefused(feed) {
    if (this.feeds.get(feed.sub.rid) !== feed) return;
    this.feeds.delete(feed.sub.rid);
    this.checkUp();
  }

  close() {
    this.done = true;
    for (const feed of this.feeds.values()) feed.abort();
  }
}

class SseFeed {
  constructor(stream, sub) {
    this.stream = stream;
    this.sub = sub;
    this.gen = sub.gen;
    this.since = sub.cursor.param();
    this.open = false;
    this.aborted = false;
    this.hint = null;
    this.ctrl = new AbortController();
    this.timer = null;
  }

  watch(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.ctrl.abort();
      this.ended();
    }, ms);
  }

  abort() {
    this.aborted = true;
    clearTimeout(this.timer);
    this.ctrl.abort();
  }

  async run() {
    const c = this.stream.client;
    const query = this.since === null ? '' : `?since=${encodeURIComponent(this.since)}`;
    const url = joinUrl(c._base, `/v1/restaurants/${encodeURIComponent(this.sub.rid)}/stream${query}`);
    this.watch(c._o.connectTimeout);
    let res;
    try {
      res = await c._fetch(url, {
        headers: { Authorization: `Bearer ${c._token()}`, Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: this.ctrl.signal,
      });
    } catch {
      this.ended();
      return;
    }
    if (this.aborted) return;
    if (!res.ok) {
      const hint = retryAfterMs(res);
      const verdict = c._httpError(this.sub, res.status, await problemOf(res));
      clearTimeout(this.timer);
      if (this.aborted) return;
      if (verdict === 'fatal') this.stream.feedRefused(this);
      else if (verdict === 'retry') this.stream.add(this.sub);
      else this.ended(hint);
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((m) => this.message(m));
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        break;
      }
      if (this.aborted) return;
      if (chunk.done) break;
      this.watch(this.open ? c._o.heartbeatTimeout : c._o.connectTimeout);
      parser.push(decoder.decode(chunk.value, { stream: true }));
    }
    this.ended(this.hint);
  }

  message(m) {
    const c = this.stream.client;
    if (m.kind === 'retry') this.hint = m.ms;
    else if (m.kind === 'comment') {
      c._beat();
      const at = /^subscribed at (\d+)$/.exec(m.text);
      if (at) {
        c._advance(this.sub, Number(at[1]), this.gen);
        this.open = true;
        this.stream.checkUp();
      }
    } else if (m.kind === 'event') {
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      // `stale` and `live` carry no id: they are not events.
      if (m.event === 'stale' || m.event === 'live') c._home(this.sub, { ...data, type: m.event });
      else c._deliver(this.sub, data, this.gen);
    }
  }

  ended(hint = null) {
    clearTimeout(this.timer);
    if (this.aborted) return;
    this.aborted = true;
    this.stream.feedEnded(this, hint);
  }
}

class Poller {
  constructor(client, sub) {
    this.client = client;
    this.sub = sub;
    this.backoff = new Backoff({ base: client._o.backoffBase, max: client._o.backoffMax, random: client._random });
    this.stopped = false;
    this.restarting = false;
    this.ctrl = null;
    this.wake = null;
  }

  start() {
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.ctrl?.abort();
    this.wake?.();
  }

  /** Abandons the request in flight and polls again from the cursor. */
  restart() {
    this.restarting = true;
    this.ctrl?.abort();
    this.wake?.();
  }

  /** Skips the rest of a backoff delay (the network came back). */
  nudge() {
    this.backoff.reset();
    this.wake?.();
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async loop() {
    const c = this.client;
    const sub = this.sub;
    const o = c._o;
    // The first request after a start or a failure does not wait: it tells
    // at once whether polling works (and the indicator can say so).
    let confirmed = false;
    while (!this.stopped) {
      this.restarting = false;
      const gen = sub.gen;
      const since = sub.cursor.param();
      const wait = confirmed ? o.pollWait : 0;
      const query = `?limit=${o.pollLimit}&wait=${wait}${since === null ? '' : `&since=${encodeURIComponent(since)}`}`;
      const url = joinUrl(c._base, `/v1/restaurants/${encodeURIComponent(sub.rid)}/events${query}`);
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      const timeout = setTimeout(() => ctrl.abort(), (o.pollWait + 10) * 1000);
      let hint = null;
      try {
        const res = await c._fetch(url, {
          headers: { Authorization: `Bearer ${c._token()}`, Accept: 'application/json' },
          cache: 'no-store',
          signal: ctrl.signal,
        });
        if (!res.ok) {
          hint = retryAfterMs(res);
          const verdict = c._httpError(sub, res.status, await problemOf(res));
          if (verdict === 'fatal') {
            c._pollers.delete(sub.rid);
            return;
          }
          if (verdict === 'retry') continue;
          throw new Error(`HTTP ${res.status}`);
        }
        const page = await res.json();
        if (this.stopped) return;
        if (this.restarting || gen !== sub.gen) continue;
        for (const event of page.events ?? []) c._deliver(sub, event, gen);
        c._advance(sub, page.next, gen);
        // Every answer says whether the home region is stale.
        if (page.stale) c._home(sub, { ...page.stale, type: 'stale' });
        else if (sub.home.state === 'stale') c._home(sub, { type: 'live' });
        this.backoff.reset();
        confirmed = true;
        c._beat();
        c._pollOk();
      } catch {
        if (this.stopped) return;
        if (this.restarting) continue;
        confirmed = false;
        c._pollFailed();
        await this.sleep(this.backoff.next(hint));
      } finally {
        clearTimeout(timeout);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The client.

/**
 * One connection manager for any number of restaurants.
 *
 * ```js
 * const rt = new OrdercastClient({ token });
 * const off = rt.subscribe(rid, { onEvent: (e) => render(e) });
 * const { orders } = await rt.sync(rid); // snapshot, then the stream from its seq
 * rt.on('state', (s) => indicator.textContent = s);
 * rt.on('restaurant', (r) => banner.hidden = r.state !== 'stale');
 * ```
 */
export class OrdercastClient {
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    if (!['auto', 'sse', 'ws', 'poll'].includes(o.transport)) {
      throw new TypeError(`transport must be auto, sse, ws or poll, not ${o.transport}`);
    }
    if (!o.token) throw new TypeError('token is required');
    this._o = o;
    this._base = o.baseUrl ?? globalThis.location?.origin ?? '';
    this._apiBase = o.apiUrl ?? this._base;
    this._token = typeof o.token === 'function' ? o.token : () => o.token;
    this._fetch = o.fetch ?? globalThis.fetch?.bind(globalThis);
    this._WebSocket = o.WebSocket ?? globalThis.WebSocket;
    this._random = o.random ?? Math.random;
    const kinds = { auto: ['ws', 'sse'], ws: ['ws'], sse: ['sse'], poll: [] }[o.transport];
    this._kinds = this._WebSocket ? kinds : kinds.filter((k) => k !== 'ws');
    this._machine = new ConnectionMachine({
      fallbackAfter: o.fallbackAfter,
      stream: this._kinds.length > 0,
      poll: o.transport === 'auto' || o.transport === 'poll',
    });
    this._backoff = new Backoff({ base: o.backoffBase, max: o.backoffMax, random: this._random });
    this._kindIndex = 0;
    this._subs = new Map();
    this._listeners = new Map();
    this._stream = null;
    this._pollers = new Map();
    this._timer = null;
    this._closed = false;
    this._counts = { connects: 0, reconnects: 0, streamFailures: 0, pollFailures: 0 };
    // Timestamps (ms since the epoch) for stats().
    this._times = { lastConnectedAt: null, lastHeartbeatAt: null, lastEventAt: null };
    this._onOnline = () => this._networkUp();
    this._onOffline = () => this._apply('network_down');
    globalThis.addEventListener?.('online', this._onOnline);
    globalThis.addEventListener?.('offline', this._onOffline);
  }

  /** The current connection state. */
  get state() {
    return this._machine.state;
  }

  /**
   * Starts receiving a restaurant's events. `since`: a seq to resume after
   * (0: from the start of retention), or a Date to start from the first
   * event at or after it; absent: from now. Returns a function that
   * unsubscribes this handler.
   */
  subscribe(restaurantId, { since, onEvent, onSnapshot, onError } = {}) {
    if (this._closed) throw new Error('client is closed');
    const validDate = since instanceof Date && !Number.isNaN(since.getTime());
    if (since != null && !validDate && !(Number.isInteger(since) && since >= 0)) {
      throw new TypeError('since must be a non-negative integer or a valid Date');
    }
    const rid = String(restaurantId);
    let sub = this._subs.get(rid);
    if (!sub) {
      sub = { rid, cursor: new Cursor(since), handlers: new Set(), gen: 0, buffer: null, pauses: 0, failed: false };
      sub.home = HOME_LIVE;
      this._subs.set(rid, sub);
      this._attach(sub);
    }
    const handler = { onEvent, onSnapshot, onError };
    sub.handlers.add(handler);
    return () => {
      sub.handlers.delete(handler);
      if (sub.handlers.size === 0 && this._subs.get(rid) === sub) {
        this._subs.delete(rid);
        this._detach(sub);
      }
    };
  }

  /**
   * Loads the restaurant's open orders (`GET …/orders?state=open` on the
   * api, every page) and continues the stream from exactly the seq the
   * first page reflects. Events that arrive meanwhile are held and those
   * after the snapshot delivered once the caller has had the snapshot.
   * Resolves to `{seq, orders, truncated}` (`truncated` is always false:
   * every page was read).
   */
  async sync(restaurantId) {
    const rid = String(restaurantId);
    const sub = this._subs.get(rid);
    if (!sub) throw new Error(`subscribe to ${rid} before sync`);
    const fromNow = sub.cursor.seq === null;
    sub.pauses += 1;
    sub.buffer ??= [];
    let snapshot;
    try {
      snapshot = await this._snapshot(rid);
    } catch (e) {
      this._unpause(sub);
      throw e;
    }
    if (this._subs.get(rid) !== sub) return snapshot;
    if (fromNow || sub.cursor.seq === null) {
      // The stream was opened "from now", which may be after the snapshot:
      // drop what it sent and resume from the snapshot's seq instead.
      sub.gen += 1;
      sub.buffer = [];
      sub.cursor.seq = snapshot.seq;
      this._resubscribe(sub);
    } else {
      // Held events the snapshot already reflects are dropped at the flush.
      sub.cursor.advance(snapshot.seq);
    }
    for (const h of sub.handlers) this._call(h.onSnapshot, snapshot);
    // After the caller's `await` continuation has run.
    setTimeout(() => this._unpause(sub), 0);
    return snapshot;
  }

  /**
   * Every page of the restaurant's open orders, following `next`: the
   * first page's seq (later pages are read later; the stream from that seq
   * replays what changed meanwhile) and the orders, oldest first.
   */
  async _snapshot(rid) {
    const path = `/v1/restaurants/${encodeURIComponent(rid)}/orders?state=open`;
    const first = await this._getJson(path);
    const pages = [first.orders];
    let page = first;
    while (page.truncated && page.next) {
      page = await this._getJson(`${path}&after=${encodeURIComponent(page.next)}`);
      pages.unshift(page.orders); // pages go from the newest orders to the oldest
    }
    return { seq: first.seq, orders: pages.flat(), truncated: false };
  }

  /**
   * Moves an order to `status` (`{version}`: the version last seen, refused
   * with a `version_mismatch` error when stale; `{reason}` for cancelled or
   * rejected). Resolves with `{order, seq}`; rejects with an OrdercastError
   * carrying the problem (`type`, `status`, `current`). See `command`.
   */
  updateOrderStatus(restaurantId, orderId, status, { version, reason } = {}) {
    const fields = { restaurant_id: String(restaurantId), order_id: String(orderId), status };
    if (version != null) fields.version = version;
    if (reason != null) fields.reason = reason;
    return this.command('order.status', fields);
  }

  /** Moves one item of an order to `status`; resolves with `{order, seq}`. */
  updateItemStatus(restaurantId, orderId, itemId, status) {
    const fields = { restaurant_id: String(restaurantId), order_id: String(orderId), item_id: String(itemId), status };
    return this.command('order.item_status', fields);
  }

  /** Moves a waiter request to `status` (`{message}` and other body fields pass through); resolves with `{request, seq}`. */
  updateRequestStatus(restaurantId, requestId, status, body = {}) {
    const fields = { ...body, restaurant_id: String(restaurantId), request_id: String(requestId), status };
    return this.command('request.status', fields);
  }

  /**
   * Runs a command (`order.status`, `order.item_status`, `request.status`)
   * with a generated id. Over a live WebSocket it goes on the socket;
   * otherwise (SSE, long-poll, a socket not open or with its commands in
   * flight at the limit) it is the HTTP call on the api (`apiUrl`), with
   * the id as `Idempotency-Key`. A command whose socket closes before its
   * reply is sent again over HTTP with the same id, so it is never applied
   * twice; the promise settles with that answer.
   */
  command(name, fields) {
    if (this._closed) return Promise.reject(new OrdercastError('closed', 'client is closed'));
    return new Promise((resolve, reject) => {
      const command = { id: commandId(this._random), name, fields, resolve, reject };
      if (this._stream?.kind === 'ws' && this._stream.canCommand()) this._stream.command(command);
      else this._commandOverHttp(command);
    });
  }

  /**
   * Listens to `state` (connection state name), `restaurant` (a restaurant's
   * home region went stale or came back; see `restaurantState`) or `error`
   * (OrdercastError). Returns an off function.
   */
  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return () => this._listeners.get(name)?.delete(fn);
  }

  /**
   * Whether a restaurant's events are current: `{restaurantId, state: 'live',
   * region}` (the rest null), or, while its home region (another region of
   * the deployment) is unreachable, `{restaurantId, state: 'stale', region,
   * lastSeq, lastEventAt, since}`: the edge has its events up to `lastSeq`,
   * committed at `lastEventAt` (null if the edge does not know), and noticed
   * at `since`. Events keep coming whenever they arrive. Null for a
   * restaurant not subscribed to.
   */
  restaurantState(restaurantId) {
    const sub = this._subs.get(String(restaurantId));
    return sub ? { restaurantId: sub.rid, ...sub.home } : null;
  }

  /** Counters and cursors, for indicators and debugging. */
  stats() {
    const restaurants = {};
    let events = 0;
    let duplicates = 0;
    for (const sub of this._subs.values()) {
      restaurants[sub.rid] = {
        cursor: sub.cursor.seq,
        delivered: sub.cursor.delivered,
        duplicates: sub.cursor.duplicates,
        state: sub.home.state,
      };
      events += sub.cursor.delivered;
      duplicates += sub.cursor.duplicates;
    }
    let transport = null;
    if (this._stream?.up) transport = this._stream.kind;
    else if (this._machine.polling && this._pollers.size > 0) transport = 'poll';
    return {
      state: this.state,
      connected: this.isConnected(),
      transport,
      failures: this._machine.failures,
      connects: this._counts.connects,
      reconnects: this._counts.reconnects,
      ...this._times,
      streamFailures: this._counts.streamFailures,
      pollFailures: this._counts.pollFailures,
      events,
      duplicates,
      restaurants,
    };
  }

  /**
   * True while events flow: a stream is up, or long-polls are answered
   * (`state` is `live` or `polling`).
   */
  isConnected() {
    return this.state === 'live' || this.state === 'polling';
  }

  /**
   * Drops the current connection and connects again at once (no backoff),
   * each restaurant resuming from its cursor: nothing is missed or repeated.
   * For a screen that knows better than the heartbeat (a network change, a
   * "reconnect" button).
   */
  reconnect() {
    if (this._closed) throw new Error('client is closed');
    this._log('reconnect requested');
    clearTimeout(this._timer);
    this._timer = null;
    const stream = this._stream;
    this._stream = null;
    stream?.close();
    for (const p of this._pollers.values()) p.stop();
    this._pollers.clear();
    this._backoff.reset();
    if (this._subs.size === 0) return;
    if (!this._machine.polling) this._apply('stream_lost');
    this._run();
  }

  /** Closes every connection; the client cannot be used afterwards. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    this._stream?.close();
    this._stream = null;
    for (const p of this._pollers.values()) p.stop();
    this._pollers.clear();
    globalThis.removeEventListener?.('online', this._onOnline);
    globalThis.removeEventListener?.('offline', this._onOffline);
    this._apply('closed');
  }

  // --- internals --------------------------------------------------------

  _activeSubs() {
    return [...this._subs.values()].filter((s) => !s.failed);
  }

  _attach(sub) {
    this._stream?.add(sub);
    if (this._machine.polling) this._startPoller(sub);
    this._run();
  }

  _detach(sub) {
    this._stream?.remove(sub);
    this._pollers.get(sub.rid)?.stop();
    this._pollers.delete(sub.rid);
    if (this._subs.size === 0) {
      clearTimeout(this._timer);
      this._timer = null;
      this._stream?.close();
      this._stream = null;
    }
  }

  _resubscribe(sub) {
    this._stream?.resubscribe(sub);
    this._pollers.get(sub.rid)?.restart();
  }

  /** Makes sure something is connecting, streaming or polling. */
  _run() {
    if (this._closed || this._subs.size === 0) return;
    if (this._machine.polling) for (const sub of this._activeSubs()) this._startPoller(sub);
    if (this._kinds.length > 0 && !this._stream && !this._timer) this._connectStream();
  }

  _connectStream() {
    this._timer = null;
    if (this._closed || this._subs.size === 0) return;
    const kind = this._kinds[this._kindIndex % this._kinds.length];
    this._stream = kind === 'ws' ? new WsStream(this) : new SseStream(this);
    if (this._counts.connects > 0) this._counts.reconnects += 1;
    this._counts.connects += 1;
    this._log(`connecting (${kind})`);
    this._stream.start();
  }

  _streamUp(stream) {
    if (stream !== this._stream) return;
    this._backoff.reset();
    for (const p of this._pollers.values()) p.stop();
    this._pollers.clear();
    this._times.lastConnectedAt = Date.now();
    this._times.lastHeartbeatAt = this._times.lastConnectedAt;
    this._log(`connected (${stream.kind})`);
    this._apply('stream_up');
  }

  _streamDown(stream, hint) {
    if (stream !== this._stream) return;
    this._stream = null;
    this._log(`${stream.kind} ${stream.up ? 'lost' : 'failed'}`, hint === null || hint === undefined ? '' : `(retry hint ${hint} ms)`);
    if (stream.up) {
      this._backoff.reset();
      this._apply('stream_lost');
    } else {
      this._counts.streamFailures += 1;
      this._kindIndex += 1; // auto: try the other streaming transport next
      this._apply('stream_failed');
    }
    if (this._closed || this._subs.size === 0) return;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._connectStream(), this._backoff.next(hint));
    this._run();
  }

  _startPoller(sub) {
    if (this._pollers.has(sub.rid) || sub.failed || this._closed) return;
    const poller = new Poller(this, sub);
    this._pollers.set(sub.rid, poller);
    poller.start();
  }

  _pollOk() {
    if (this.state !== 'polling') this._times.lastConnectedAt = Date.now();
    this._apply('poll_ok');
  }

  /** A sign of life from the server: a heartbeat, a pong, a poll answer. */
  _beat() {
    this._times.lastHeartbeatAt = Date.now();
  }

  /** With the `debug` option: a line on the console (never the token). */
  _log(...args) {
    if (this._o.debug) globalThis.console?.debug?.('[ordercast]', ...args);
  }

  _pollFailed() {
    this._counts.pollFailures += 1;
    this._apply('poll_failed');
  }

  _networkUp() {
    this._apply('network_up');
    this._backoff.reset();
    if (!this._stream && this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    for (const p of this._pollers.values()) p.nudge();
    this._run();
  }

  /** An event from a transport, for the subscription generation `gen`. */
  _deliver(sub, event, gen) {
    if (this._subs.get(sub.rid) !== sub || gen !== sub.gen || !Number.isInteger(event?.seq)) return;
    if (sub.buffer) {
      sub.buffer.push({ event });
      return;
    }
    if (!sub.cursor.accept(event.seq)) return;
    this._times.lastEventAt = Date.now();
    for (const h of sub.handlers) this._call(h.onEvent, event);
  }

  /** The server says everything up to `seq` is covered for `gen`. */
  _advance(sub, seq, gen) {
    if (this._subs.get(sub.rid) !== sub || gen !== sub.gen) return;
    if (sub.buffer) sub.buffer.push({ advance: seq });
    else sub.cursor.advance(seq);
  }

  /**
   * A `stale` or `live` signal about the restaurant's home region (the
   * edge sends one on every subscription to a restaurant homed elsewhere,
   * so a reconnect confirms the state). Emitted only when it changes.
   */
  _home(sub, f) {
    if (this._subs.get(sub.rid) !== sub) return;
    const was = sub.home;
    const next =
      f.type === 'stale'
        ? { state: 'stale', region: f.region, lastSeq: f.last_seq, lastEventAt: f.last_event_at ?? null, since: f.since }
        : { ...HOME_LIVE, region: f.region ?? was.region };
    sub.home = next;
    const same = ['state', 'lastSeq', 'lastEventAt', 'since'].every((k) => was[k] === next[k]);
    if (!same) this._emit('restaurant', this.restaurantState(sub.rid));
  }

  _unpause(sub) {
    sub.pauses -= 1;
    if (sub.pauses > 0 || !sub.buffer) return;
    const held = sub.buffer;
    sub.buffer = null;
    for (const item of held) {
      if (item.event) this._deliver(sub, item.event, sub.gen);
      else sub.cursor.advance(item.advance);
    }
  }

  /** A refused subscription: 'fatal' (give up), 'retry' (resubscribe now) or 'transient'. */
  _subError(sub, code, message, status = null) {
    const error = new OrdercastError(code ?? 'error', message ?? code ?? 'error', { status, restaurantId: sub.rid });
    this._log(`subscription to ${sub.rid} refused: ${error.code}`);
    let verdict = 'transient';
    if (code === 'invalid_cursor') {
      // The restaurant's history is behind our cursor (a restored database):
      // start again from now rather than never receiving anything.
      sub.cursor.seq = null;
      sub.gen += 1;
      verdict = 'retry';
    } else if (FATAL_FRAME.has(code) || FATAL_HTTP.has(status)) {
      sub.failed = true;
      verdict = 'fatal';
    }
    for (const h of sub.handlers) this._call(h.onError, error);
    this._emit('error', error);
    return verdict;
  }

  _httpError(sub, status, { slug, detail }) {
    const code = FATAL_HTTP.get(status) ?? (slug ? slug.replace(/-/g, '_') : `http_${status}`);
    return this._subError(sub, code, detail, status);
  }

  /** A command as its HTTP call; settles the command. */
  async _commandOverHttp(command) {
    if (this._closed) {
      command.reject(new OrdercastError('closed', 'client is closed'));
      return;
    }
    const { restaurant_id: rid, order_id: oid, item_id: iid, request_id: reqId, version, ...body } = command.fields;
    const at = `/v1/restaurants/${encodeURIComponent(rid)}`;
    const path = {
      'order.status': () => `${at}/orders/${encodeURIComponent(oid)}/status`,
      'order.item_status': () => `${at}/orders/${encodeURIComponent(oid)}/items/${encodeURIComponent(iid)}/status`,
      'request.status': () => `${at}/requests/${encodeURIComponent(reqId)}/status`,
    }[command.name];
    if (!path) {
      command.reject(new OrdercastError('invalid_body', `unknown command ${command.name}`, { status: 422 }));
      return;
    }
    const headers = {
      Authorization: `Bearer ${this._token()}`,
      Accept: 'application/json',
      'Content-Type': 'application/json',
      'Idempotency-Key': command.id,
    };
    if (version != null) headers['If-Match'] = `"${version}"`;
    try {
      const res = await this._fetch(joinUrl(this._apiBase, path()), {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
      });
      if (res.ok) {
        command.resolve(await res.json());
        return;
      }
      let problem = null;
      try {
        problem = await res.json();
      } catch {
        // not problem+json
      }
      const wait = retryAfterMs(res);
      command.reject(commandError(res.status, problem, wait === null ? null : wait / 1000));
    } catch (e) {
      command.reject(new OrdercastError('unavailable', `the api could not be reached: ${e?.message ?? e}`));
    }
  }

  async _getJson(path) {
    const res = await this._fetch(joinUrl(this._apiBase, path), {
      headers: { Authorization: `Bearer ${this._token()}`, Accept: 'application/json' },
      cache: 'no-store',
    });
    if (!res.ok) {
      const { slug, detail } = await problemOf(res);
      throw new OrdercastError(slug || `http_${res.status}`, detail, { status: res.status });
    }
    return res.json();
  }

  _apply(input) {
    const before = this._machine.state;
    const after = this._machine.apply(input);
    if (after !== before) {
      this._log(`state ${before} → ${after} (${input})`);
      this._emit('state', after);
    }
  }

  _emit(name, value) {
    for (const fn of this._listeners.get(name) ?? []) this._call(fn, value);
  }

  _call(fn, value) {
    if (typeof fn !== 'function') return;
    try {
      fn(value);
    } catch (e) {
      // A screen's bug must not stop delivery to the others.
      globalThis.console?.error?.('ordercast: handler threw', e);
    }
  }
}

export default OrdercastClient;
