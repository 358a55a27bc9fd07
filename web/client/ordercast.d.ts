// Type declarations for ordercast.js, the Ordercast browser client.
// Guide: docs/client.md. Wire protocol: docs/protocol.md.

/** What a connection indicator shows. */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'offline';

/** `auto`: WebSocket, then server-sent events, then long-poll as a fallback. */
export type TransportChoice = 'auto' | 'sse' | 'ws' | 'poll';

/** The transport currently delivering events, if any. */
export type ActiveTransport = 'ws' | 'sse' | 'poll' | null;

export declare const STATES: readonly ConnectionState[];

/** One event, the same envelope on every transport. */
export interface OrdercastEvent<T = any> {
  restaurant_id: string;
  /** Dense per restaurant; the cursor. Holes are events this token may not see. */
  seq: number;
  /** `order.created`, `order.status_changed`, `order.item_status_changed`, `request.created`, … */
  type: string;
  /** Commit time, RFC 3339 UTC. */
  ts: string;
  audience: { roles: string[]; session_id?: string; waiter_id?: string };
  data: T;
  previous_status?: string;
  item_id?: string;
  trace?: string;
}

export interface OrderItem {
  id: string;
  sku: string;
  name: string;
  quantity: number;
  unit_price_cents: number;
  station?: string;
  notes?: string;
  status: 'queued' | 'cooking' | 'ready' | 'served' | 'cancelled';
}

export interface Order {
  id: string;
  restaurant_id: string;
  /** Said out loud: per restaurant, rolling 1–9999, then 1 again. */
  number: number;
  status: 'new' | 'accepted' | 'in_progress' | 'ready' | 'served' | 'paid' | 'cancelled' | 'rejected';
  version: number;
  table?: string;
  session_id?: string;
  waiter_id?: string;
  channel: string;
  notes?: string;
  reason?: string;
  items: OrderItem[];
  total_cents: number;
  created_at: string;
  updated_at: string;
}

/** A waiter request: the `data` of `request.created` / `request.status_changed`. */
export interface WaiterRequest {
  id: string;
  restaurant_id: string;
  kind: 'call_waiter' | 'bill' | 'water' | 'other';
  table: string;
  session_id?: string;
  waiter_id?: string;
  /** The latest human message (1–200 characters); a status change may replace it. */
  message?: string;
  /** `open → acknowledged → in_progress ⇄ on_hold → resolved | cancelled` (docs/protocol.md). */
  status: 'open' | 'acknowledged' | 'in_progress' | 'on_hold' | 'resolved' | 'cancelled';
  version: number;
  created_at: string;
  updated_at: string;
}

/** `data` of `session.transferred` for the staff (owner, waiter). */
export interface StaffTransfer {
  from_waiter_id: string;
  to_waiter_id: string;
  session_ids: string[];
  order_ids: string[];
}

/** `data` of `session.transferred` for a table's guests: "your waiter changed". */
export interface GuestTransfer {
  session_id: string;
  to_waiter_id: string;
  /** The session's own open orders now served by `to_waiter_id`. */
  order_ids: string[];
}

/** `GET /v1/restaurants/{rid}/orders?state=open`: the open orders as of `seq`. */
export interface Snapshot {
  seq: number;
  orders: Order[];
  truncated: boolean;
}

export interface ClientOptions {
  /** Origin of the edge (streaming). Default: the page's origin. */
  baseUrl?: string;
  /** Origin of the api (snapshots for `sync`). Default: `baseUrl`. */
  apiUrl?: string;
  /**
   * A JWT, or a function returning the current one: called on every connect,
   * and, over WebSocket, from a minute before the token's `exp` until it
   * returns a later-expiring token, which the open socket then takes in band
   * (`refresh`) without reconnecting.
   */
  token: string | (() => string);
  /** Default `auto`. */
  transport?: TransportChoice;
  /** A stream silent this long (ms) counts as dead. Default 45 000 (three SSE heartbeats). */
  heartbeatTimeout?: number;
  /** A connection not subscribed within this many ms counts as failed. Default 10 000. */
  connectTimeout?: number;
  /** First reconnect delay ceiling (ms); doubles per failure. Default 1 000. */
  backoffBase?: number;
  /** Largest reconnect delay ceiling (ms). Default 30 000. */
  backoffMax?: number;
  /** Failed streaming attempts in a row before long-polling (`auto`). Default 3. */
  fallbackAfter?: number;
  /** Long-poll `wait`, seconds (0–30). Default 25. */
  pollWait?: number;
  /** Long-poll `limit` (1–1000). Default 500. */
  pollLimit?: number;
  /**
   * Logs connection state changes, connects, losses and refused
   * subscriptions with `console.debug` ("[ordercast] …"; never the token).
   * Default false.
   */
  debug?: boolean;
  /** For tests: replacements for the globals and for Math.random. */
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
  random?: () => number;
}

export interface SubscribeOptions {
  /**
   * Resume after this seq (0: from the start of retention), or start from
   * the first event at or after this time (sent as RFC 3339; a time before
   * retention fails the subscription with `cursor_expired`). Absent: from now.
   */
  since?: number | Date | null;
  /** Every event once, in seq order. */
  onEvent?: (event: OrdercastEvent) => void;
  /** Called with the snapshot when `sync` loads one. */
  onSnapshot?: (snapshot: Snapshot) => void;
  /** A refused subscription (forbidden, not found, …). */
  onError?: (error: OrdercastError) => void;
}

/**
 * Whether a restaurant's events are current. `stale`: its home region (another
 * region of the deployment) is unreachable from the edge, which has its events
 * up to `lastSeq`, committed at `lastEventAt` (null when the edge does not
 * know), and noticed at `since` (RFC 3339). Events keep coming whenever they
 * arrive; the cursor is unaffected. Back to `live` when the region is.
 */
export type RestaurantState =
  | { restaurantId: string; state: 'live'; region: string | null; lastSeq: null; lastEventAt: null; since: null }
  | { restaurantId: string; state: 'stale'; region: string; lastSeq: number; lastEventAt: string | null; since: string };

export interface RestaurantStats {
  /** Seq of the last event processed (null: not known yet). */
  cursor: number | null;
  delivered: number;
  /** Events dropped because their seq was at or below the cursor. */
  duplicates: number;
  /** See `RestaurantState`. */
  state: 'live' | 'stale';
}

export interface ClientStats {
  state: ConnectionState;
  /** `isConnected()`. */
  connected: boolean;
  /** The transport events flow over now; null when none is up. */
  transport: ActiveTransport;
  /** Failed streaming attempts in a row. */
  failures: number;
  /** Streaming connection attempts. */
  connects: number;
  /** Streaming connection attempts after the first (automatic or `reconnect()`). */
  reconnects: number;
  /** When a stream last came up or polling last started answering (ms since the epoch). */
  lastConnectedAt: number | null;
  /** The last sign of life: a heartbeat, a pong, a poll answer (ms since the epoch). */
  lastHeartbeatAt: number | null;
  /** When the last new event was delivered (ms since the epoch). */
  lastEventAt: number | null;
  streamFailures: number;
  pollFailures: number;
  events: number;
  duplicates: number;
  restaurants: Record<string, RestaurantStats>;
}

export declare class OrdercastError extends Error {
  /** `unauthorized`, `forbidden`, `not_found`, `invalid_cursor`, `unavailable`, … */
  code: string;
  status: number | null;
  restaurantId: string | null;
  /** A refused command's problem+json, as the HTTP call answers it. */
  problem: Problem | null;
  /** The problem's `type` URI, e.g. `https://ordercast.dev/problems/illegal-transition`. */
  type: string | null;
  /** For a `409` (`illegal_transition`, `version_mismatch`): the resource as it is now. */
  current: Record<string, unknown> | null;
  /** For a `429`: seconds to wait before trying again. */
  retryAfter: number | null;
}

/** An application/problem+json body. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  current?: Record<string, unknown>;
  errors?: { field: string; message: string }[];
}

/** The commands `OrdercastClient.command` runs. */
export type CommandName = 'order.status' | 'order.item_status' | 'request.status';

/** What a status change resolves with: the resource and the seq of its event. */
export interface OrderWritten {
  order: Record<string, unknown> & { id: string; status: string; version: number };
  seq: number;
}
export interface RequestWritten {
  request: Record<string, unknown> & { id: string; status: string };
  seq: number;
}

export declare class OrdercastClient {
  constructor(options: ClientOptions);
  readonly state: ConnectionState;
  /** Returns a function that removes this subscription. */
  subscribe(restaurantId: string, options?: SubscribeOptions): () => void;
  /** Loads open orders and continues the stream from exactly their seq. Subscribe first. */
  sync(restaurantId: string): Promise<Snapshot>;
  /**
   * Commands: on a live WebSocket they go on the socket, otherwise as the
   * HTTP call on `apiUrl`; the generated id is the Idempotency-Key, reused
   * when a command whose socket closed is sent again over HTTP. Rejects
   * with an OrdercastError carrying the problem.
   */
  updateOrderStatus(
    restaurantId: string,
    orderId: string,
    status: string,
    options?: { version?: number; reason?: string },
  ): Promise<OrderWritten>;
  updateItemStatus(restaurantId: string, orderId: string, itemId: string, status: string): Promise<OrderWritten>;
  updateRequestStatus(
    restaurantId: string,
    requestId: string,
    status: string,
    body?: { message?: string; [field: string]: unknown },
  ): Promise<RequestWritten>;
  command(name: CommandName, fields: Record<string, unknown>): Promise<unknown>;
  on(name: 'state', listener: (state: ConnectionState) => void): () => void;
  /** A restaurant's home region went stale or came back. */
  on(name: 'restaurant', listener: (state: RestaurantState) => void): () => void;
  on(name: 'error', listener: (error: OrdercastError) => void): () => void;
  /** The restaurant's current `RestaurantState`; null if not subscribed to. */
  restaurantState(restaurantId: string): RestaurantState | null;
  stats(): ClientStats;
  /** True while events flow (`state` is `live` or `polling`). */
  isConnected(): boolean;
  /** Drops the connection and reconnects now, every restaurant resuming from its cursor. */
  reconnect(): void;
  close(): void;
}

/** Exponential backoff with full jitter (exported for tests). */
/** A JWT's `exp` claim in ms since the epoch, or null if it has none. */
export declare function tokenExpiry(token: string): number | null;

export declare class Backoff {
  constructor(options?: { base?: number; max?: number; random?: () => number });
  attempt: number;
  ceiling(): number;
  next(hintMs?: number | null): number;
  reset(): void;
}

/** Per-restaurant cursor with dedupe by seq (exported for tests). */
export declare class Cursor {
  constructor(since?: number | Date | null);
  seq: number | null;
  /** The start time (RFC 3339) until a seq is known, else null. */
  time: string | null;
  /** What to send as `since`: the seq, else the start time, else null. */
  param(): number | string | null;
  delivered: number;
  duplicates: number;
  accept(seq: number): boolean;
  advance(seq: number): void;
}

export type SseMessage =
  | { kind: 'event'; id: string | null; event: string; data: string }
  | { kind: 'comment'; text: string }
  | { kind: 'retry'; ms: number };

/** `text/event-stream` parser (exported for tests). */
export declare class SseParser {
  constructor(onMessage: (message: SseMessage) => void);
  push(chunk: string): void;
}

export type MachineInput =
  | 'stream_up'
  | 'stream_lost'
  | 'stream_failed'
  | 'poll_ok'
  | 'poll_failed'
  | 'network_down'
  | 'network_up'
  | 'closed';

/** The connection state machine (exported for tests). */
export declare class ConnectionMachine {
  constructor(options?: { fallbackAfter?: number; stream?: boolean; poll?: boolean });
  state: ConnectionState;
  mode: 'stream' | 'poll';
  failures: number;
  readonly polling: boolean;
  apply(input: MachineInput): ConnectionState;
}

export default OrdercastClient;
