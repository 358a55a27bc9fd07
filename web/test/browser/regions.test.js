// A restaurant homed in another region, whose heartbeat stops arriving: the
// kitchen display stays live, says the region is unreachable and how far its
// events go, and says nothing more once the region is back. The test plays
// replication: it writes the peer's rows itself.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Stack, connection, delivered, until, waitForState } from './harness.js';

const PEER = 'eu-west';
const rid = randomUUID();

let stack;
before(async () => {
  stack = await new Stack().start({
    // The peer's api is never called: nothing here writes to its restaurants.
    env: { ORDERCAST_PEERS: JSON.stringify([{ region: PEER, api: 'http://127.0.0.1:9' }]) },
    sql: [
      `INSERT INTO region_beats (region, beat_at, received_at) VALUES ('${PEER}', now(), now())`,
      `INSERT INTO restaurants (id, name, region) VALUES ('${rid}', 'Remote Bistro', '${PEER}')`,
    ],
  });
});
after(async () => {
  await stack?.close();
});

/** What replication brings: the peer's latest heartbeat, `ago` old. */
function heard(ago) {
  stack.sql(`UPDATE region_beats SET beat_at = now(), received_at = now() - interval '${ago}' WHERE region = '${PEER}'`);
}

/** An event committed in the peer, as replication inserts it here (the relay publishes it). */
function replicated(seq) {
  stack.sql(`
    INSERT INTO events (restaurant_id, seq, type, audience, data, created_at, region)
    VALUES ('${rid}', ${seq}, 'notification', '{"roles":["kitchen"]}',
            '{"urgency":"info","title":"From ${PEER}","message":"replicated","group_key":null}', now(), '${PEER}');
    UPDATE restaurants SET last_seq = ${seq} WHERE id = '${rid}';
    INSERT INTO outbox (restaurant_id, seq, created_at, from_peer) VALUES ('${rid}', ${seq}, now(), true);
    NOTIFY ordercast_outbox;`);
}

test('regions: the kitchen display says when the home region is unreachable, and when it is back', async () => {
  const page = await stack.open('kitchen', { token: stack.token('kitchen', rid), restaurant: rid });
  await waitForState(page, 'live');
  replicated(1);
  await until('the replicated event', async () => (await delivered(page)).includes(1), 15_000);
  assert.equal(await page.isVisible('[data-testid=stale]'), false);

  heard('1 hour');
  await page.waitForSelector('[data-testid=stale]', { state: 'visible', timeout: 15_000 });
  const text = await page.textContent('[data-testid=stale]');
  assert.match(text, new RegExp(`^${PEER} unreachable — showing events up to #1 \\(.+\\)$`));
  assert.equal(await connection(page), 'live', 'the connection itself is fine');
  await stack.screenshot(page, 'kitchen-region-stale');

  heard('0 seconds');
  await page.waitForSelector('[data-testid=stale]', { state: 'hidden', timeout: 15_000 });
  replicated(2);
  await until('events after the return', async () => (await delivered(page)).includes(2), 15_000);
  assert.deepEqual(await delivered(page), [1, 2]);
  assert.deepEqual(page.errors, []);
});
