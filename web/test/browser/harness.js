// Browser-test harness: a real `ordercast api` and `ordercast edge` (separate
// processes, so the edge can be stopped and restarted on its own) on a fresh
// database, behind a small path-routing proxy standing in for the ingress
// (so the screens reach both on one origin), and headless Chromium driven
// by playwright-core. Everything started here is stopped by `close()`, and
// by an exit hook if a test crashes.
import { spawn, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ARTIFACTS = path.join(ROOT, 'target/browser-artifacts');
const BIN =
  process.env.ORDERCAST_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target'), 'debug/ordercast');
const SECRET = 'browser-test-secret-0123456789-abcdefghij';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Resolves when `check()` returns something truthy; rejects after `ms`. */
export async function until(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A free port below the kernel's ephemeral range (32768+), so no outgoing
 * connection takes it while the edge is down between a stop and a restart.
 */
async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise((resolve) => {
      const server = net.createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through scripts/browser-test.sh (or make test)`);
  return value;
}

const PSQL = process.env.ORDERCAST_TEST_PG_BIN ? path.join(process.env.ORDERCAST_TEST_PG_BIN, 'psql') : 'psql';

/** Runs SQL on the database at `url`. */
function psql(url, sql) {
  execFileSync(PSQL, [url, '-qAtc', sql], { stdio: 'pipe' });
}

/** A fresh database on the test PostgreSQL; returns its URL. */
function freshDatabase() {
  const admin = new URL(required('ORDERCAST_TEST_DATABASE_URL'));
  const name = `browser_${randomUUID().replace(/-/g, '')}`;
  psql(admin.toString(), `CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

class Server {
  constructor(role, env, name) {
    this.role = role;
    this.env = env;
    this.name = name;
  }

  async start() {
    fs.mkdirSync(path.join(ARTIFACTS, 'logs'), { recursive: true });
    const log = fs.openSync(path.join(ARTIFACTS, 'logs', `${this.name}.log`), 'a');
    this.child = spawn(BIN, [this.role], { env: this.env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    children.add(this.child);
    const child = this.child;
    child.on('exit', () => children.delete(child));
    const ready = `http://${this.env.ORDERCAST_ADMIN_LISTEN}/readyz`;
    await until(`${this.name} to be ready`, async () => {
      if (child.exitCode !== null) throw new Error(`${this.name} exited with ${child.exitCode}; see ${ARTIFACTS}/logs`);
      return fetch(ready).then((r) => r.ok).catch(() => false);
    });
  }

  /** Graceful stop (SIGTERM: drain, then exit); SIGKILL after 15 s. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Routes like the ingress: streaming and screens to the edge, the rest to the api. */
function toEdge(method, url) {
  const p = url.split('?')[0];
  return (
    p === '/v1/ws' ||
    p.startsWith('/client/') ||
    p === '/demo' ||
    p.startsWith('/demo/') ||
    /^\/v1\/restaurants\/[^/]+\/stream$/.test(p) ||
    (method === 'GET' && /^\/v1\/restaurants\/[^/]+\/events$/.test(p))
  );
}

function isStreaming(url) {
  const p = url.split('?')[0];
  return p === '/v1/ws' || /^\/v1\/restaurants\/[^/]+\/stream$/.test(p);
}

class Ingress {
  constructor(apiPort, edgePort) {
    this.apiPort = apiPort;
    this.edgePort = edgePort;
    this.blockStreaming = false;
    this.streams = new Set(); // client sockets of open SSE / WebSocket connections
  }

  async start() {
    this.server = http.createServer((req, res) => this.http(req, res));
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.server.keepAliveTimeout = 1000;
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    this.sockets = new Set();
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Refuses SSE and WebSocket (as some corporate proxies do) and cuts the open ones. */
  setBlocked(blocked) {
    this.blockStreaming = blocked;
    if (blocked) for (const s of this.streams) s.destroy();
  }

  http(req, res) {
    if (this.blockStreaming && isStreaming(req.url)) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end('streaming blocked by the test');
      return;
    }
    const port = toEdge(req.method, req.url) ? this.edgePort : this.apiPort;
    const upstream = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
        up.on('error', () => res.destroy());
      },
    );
    if (isStreaming(req.url)) {
      this.streams.add(req.socket);
      res.on('close', () => this.streams.delete(req.socket));
    }
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('upstream unreachable');
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }

  upgrade(req, socket, head) {
    if (this.blockStreaming) {
      socket.destroy();
      return;
    }
    const upstream = net.connect(this.edgePort, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    this.streams.add(socket);
    const done = () => {
      this.streams.delete(socket);
      socket.destroy();
      upstream.destroy();
    };
    upstream.on('error', done);
    upstream.on('close', done);
    socket.on('error', done);
    socket.on('close', done);
  }

  async close() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** api + edge + ingress + Chromium, and one method per thing a test does. */
export class Stack {
  /**
   * `env`: more settings for both servers; `sql`: statements run on the
   * migrated database before they start.
   */
  async start({ env = {}, sql = [] } = {}) {
    const ports = new Set();
    while (ports.size < 4) ports.add(await freePort());
    const [apiPort, apiAdmin, edgePort, edgeAdmin] = ports;
    const base = {
      ...process.env,
      ORDERCAST_DATABASE_URL: freshDatabase(),
      ORDERCAST_REDIS_URL: required('ORDERCAST_TEST_REDIS_URL'),
      ORDERCAST_REDIS_PREFIX: `bt${randomUUID().slice(0, 8)}`,
      ORDERCAST_JWT_SECRET: SECRET,
      ORDERCAST_DATABASE_POOL: '4',
      ORDERCAST_DRAIN_WINDOW: '500ms',
      ORDERCAST_SHUTDOWN_GRACE: '5s',
      ORDERCAST_LOG_FORMAT: 'json',
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
    };
    // Migrated as one region: `env` is for the servers.
    execFileSync(BIN, ['migrate'], { env: base, stdio: 'pipe' });
    this.env = { ...base, ...env };
    for (const statement of sql) this.sql(statement);
    this.api = new Server('api', { ...this.env, ORDERCAST_LISTEN: `127.0.0.1:${apiPort}`, ORDERCAST_ADMIN_LISTEN: `127.0.0.1:${apiAdmin}` }, 'api');
    // The edge runs WebSocket commands on the api, as the chart sets it up.
    this.edge = new Server('edge', {
      ...this.env,
      ORDERCAST_LISTEN: `127.0.0.1:${edgePort}`,
      ORDERCAST_ADMIN_LISTEN: `127.0.0.1:${edgeAdmin}`,
      ORDERCAST_API_URL: `http://127.0.0.1:${apiPort}`,
    }, 'edge');
    await Promise.all([this.api.start(), this.edge.start()]);
    this.apiBase = `http://127.0.0.1:${apiPort}`;
    this.ingress = new Ingress(apiPort, edgePort);
    await this.ingress.start();
    this.origin = `http://127.0.0.1:${this.ingress.port}`;
    this.browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    this.pages = [];
    return this;
  }

  async close() {
    for (const page of this.pages) {
      if (page.errors.length) console.error('page errors:', page.errors);
    }
    await this.browser?.close().catch(() => {});
    await this.ingress?.close();
    await Promise.all([this.api?.stop(), this.edge?.stop()]);
  }

  /** Runs SQL on the stack's database (what replication would write, say). */
  sql(statement) {
    psql(this.env.ORDERCAST_DATABASE_URL, statement);
  }

  token(role, restaurant, { session } = {}) {
    const args = ['token', '--role', role, '--restaurant', restaurant, '--sub', `browser-${role}`, '--ttl', '1h'];
    if (session) args.push('--session', session);
    return execFileSync(BIN, args, { env: this.env }).toString().trim();
  }

  async call(token, method, path, body) {
    const res = await fetch(`${this.apiBase}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  }

  /** A new restaurant and an owner token for it. */
  async restaurant(name = 'Test Bistro') {
    const id = randomUUID();
    await this.call(this.token('admin', '*'), 'POST', '/v1/restaurants', { id, name });
    return { id, owner: this.token('owner', id) };
  }

  async order(rid, token, { table = '12', session, items } = {}) {
    const body = {
      channel: session ? 'qr' : 'pos',
      table,
      items: items ?? [
        { sku: 'burger', name: 'Smash burger', quantity: 2, unit_price_cents: 1250, station: 'grill', notes: 'no onions' },
        { sku: 'fries', name: 'Fries', quantity: 1, unit_price_cents: 450, station: 'fryer' },
      ],
      notes: 'Birthday — bring a candle',
    };
    if (session) body.session_id = session;
    const { order } = await this.call(token, 'POST', `/v1/restaurants/${rid}/orders`, body);
    return order;
  }

  async status(rid, token, orderId, status) {
    return this.call(token, 'POST', `/v1/restaurants/${rid}/orders/${orderId}/status`, { status });
  }

  /** Opens a screen with its settings in the URL fragment. */
  async open(screen, settings, { width = 1440, height = 900 } = {}) {
    const page = await this.browser.newPage({ viewport: { width, height } });
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    // The pages are served with a Content-Security-Policy; anything it
    // blocks is a bug in the page.
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) page.errors.push(m.text());
    });
    this.pages.push(page);
    const fragment = new URLSearchParams(settings).toString();
    await page.goto(`${this.origin}/demo/${screen}.html#${fragment}`);
    return page;
  }

  /** Writes target/browser-artifacts/<name>.png once one-off animations have ended. */
  async screenshot(page, name) {
    await page.waitForFunction(
      () => document.getAnimations().every((a) => a.effect.getTiming().iterations === Infinity || a.playState !== 'running'),
      null,
      { timeout: 5_000 },
    );
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  }
}

/** The connection indicator's state. */
export function connection(page) {
  return page.getAttribute('[data-testid=connection]', 'data-state');
}

export async function waitForState(page, state, ms = 30_000) {
  await page.waitForSelector(`[data-testid=connection][data-state=${state}]`, { timeout: ms });
}

/** The seqs the screen's client delivered (to check "each once, in order"). */
export function delivered(page) {
  return page.evaluate(() => window.ordercastScreen.delivered);
}
