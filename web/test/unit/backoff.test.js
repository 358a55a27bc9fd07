import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../client/ordercast.js';

test('ceilings double from 1 s and stop at 30 s', () => {
  const b = new Backoff({ random: () => 0 });
  const ceilings = [];
  for (let i = 0; i < 8; i += 1) {
    ceilings.push(b.ceiling());
    b.next();
  }
  assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('full jitter: each delay is uniform in [0, ceiling)', () => {
  const b = new Backoff({ random: () => 0.999999 });
  assert.equal(b.next(), 999);
  assert.equal(b.next(), 1999);
  const zero = new Backoff({ random: () => 0 });
  assert.equal(zero.next(), 0);
  const half = new Backoff({ random: () => 0.5 });
  half.next();
  half.next();
  assert.equal(half.next(), 2000);
});

test('real randomness stays within bounds and is spread out', () => {
  const b = new Backoff();
  const seen = new Set();
  for (let i = 0; i < 200; i += 1) {
    b.reset();
    for (let k = 0; k < 3; k += 1) b.next();
    const ceiling = b.ceiling();
    const d = b.next();
    assert.ok(d >= 0 && d < ceiling, `${d} within [0, ${ceiling})`);
    seen.add(Math.floor(d / 1000));
  }
  assert.ok(seen.size >= 5, 'delays are spread over the window');
});

test('a server hint is a lower bound, capped at five minutes', () => {
  const b = new Backoff({ random: () => 0 });
  assert.equal(b.next(2000), 2000);
  const high = new Backoff({ random: () => 0.99 });
  assert.equal(high.next(10), 990, 'jitter above the hint wins');
  assert.equal(new Backoff({ random: () => 0 }).next(3_600_000), 300_000);
  assert.equal(new Backoff({ random: () => 0 }).next(null), 0);
  assert.equal(new Backoff({ random: () => 0 }).next(-5), 0);
});

test('reset starts again from the base', () => {
  const b = new Backoff({ random: () => 0 });
  for (let i = 0; i < 10; i += 1) b.next();
  assert.equal(b.ceiling(), 30000);
  b.reset();
  assert.equal(b.ceiling(), 1000);
});
