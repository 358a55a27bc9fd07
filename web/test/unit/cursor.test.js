import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cursor } from '../../client/ordercast.js';

test('events after the cursor are accepted in order; repeats are dropped', () => {
  const c = new Cursor(3);
  const accepted = [2, 3, 4, 5, 5, 4, 6].filter((seq) => c.accept(seq));
  assert.deepEqual(accepted, [4, 5, 6]);
  assert.equal(c.seq, 6);
  assert.equal(c.delivered, 3);
  assert.equal(c.duplicates, 4);
});

test('holes are not losses: a jump is accepted', () => {
  const c = new Cursor(10);
  assert.ok(c.accept(13), 'events 11 and 12 were for another audience');
  assert.equal(c.seq, 13);
});

test('"from now" has no cursor until the server or an event gives one', () => {
  const c = new Cursor();
  assert.equal(c.seq, null);
  c.advance(41);
  assert.equal(c.seq, 41);
  assert.equal(c.accept(41), false);
  assert.equal(c.accept(42), true);
  const d = new Cursor(null);
  assert.equal(d.accept(7), true, 'the first event sets the cursor');
});

test('since 0 replays from the first event', () => {
  const c = new Cursor(0);
  assert.ok(c.accept(1));
});

test('advance never moves backwards and ignores nonsense', () => {
  const c = new Cursor(20);
  c.advance(15);
  c.advance(undefined);
  c.advance(-1);
  c.advance(2.5);
  assert.equal(c.seq, 20);
  c.advance(25);
  assert.equal(c.seq, 25);
  assert.equal(c.accept(24), false, 'a long-poll next covers skipped seqs');
});

test('two transports overlapping during a handover deliver each seq once', () => {
  const c = new Cursor(100);
  const poll = [101, 102, 103];
  const stream = [102, 103, 104, 105]; // resumed from 101
  const out = [];
  for (const seq of [poll[0], stream[0], poll[1], stream[1], poll[2], stream[2], stream[3]]) {
    if (c.accept(seq)) out.push(seq);
  }
  assert.deepEqual(out, [101, 102, 103, 104, 105]);
});

test('a Date cursor is sent as RFC 3339 until the first seq replaces it', () => {
  const c = new Cursor(new Date(Date.UTC(2026, 11, 5, 10, 42, 7)));
  assert.equal(c.seq, null);
  assert.equal(c.param(), '2026-12-05T10:42:07.000Z');
  c.advance(12);
  assert.equal(c.param(), 12, 'the server placed it: from now on a seq');
  const d = new Cursor(new Date(0));
  assert.equal(d.accept(3), true);
  assert.equal(d.param(), 3);
});
