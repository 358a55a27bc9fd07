import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionMachine, STATES } from '../../client/ordercast.js';

function run(machine, inputs) {
  return inputs.map((i) => machine.apply(i));
}

test('the five states', () => {
  assert.deepEqual(STATES, ['connecting', 'live', 'reconnecting', 'polling', 'offline']);
});

test('connects, loses the stream, reconnects', () => {
  const m = new ConnectionMachine();
  assert.equal(m.state, 'connecting');
  assert.deepEqual(run(m, ['stream_up', 'stream_lost', 'stream_failed', 'stream_up']), [
    'live',
    'reconnecting',
    'reconnecting',
    'live',
  ]);
  assert.equal(m.failures, 0);
});

test('three failed streaming attempts switch to long-poll; a probe that works switches back', () => {
  const m = new ConnectionMachine();
  run(m, ['stream_failed', 'stream_failed']);
  assert.equal(m.mode, 'stream');
  assert.equal(m.apply('stream_failed'), 'reconnecting', 'until the first poll answers');
  assert.equal(m.mode, 'poll');
  assert.equal(m.apply('poll_ok'), 'polling');
  assert.equal(m.apply('stream_failed'), 'polling', 'a failed background probe changes nothing');
  assert.equal(m.apply('poll_failed'), 'offline');
  assert.equal(m.apply('poll_ok'), 'polling');
  assert.equal(m.apply('stream_up'), 'live');
  assert.equal(m.mode, 'stream');
  assert.equal(m.failures, 0);
});

test('a live stream dropping is not a failed attempt', () => {
  const m = new ConnectionMachine();
  run(m, ['stream_up', 'stream_lost', 'stream_failed', 'stream_failed', 'stream_up', 'stream_lost', 'stream_failed']);
  assert.equal(m.mode, 'stream', 'failures counted from the last live stream');
  assert.equal(m.state, 'reconnecting');
});

test('fallbackAfter is configurable', () => {
  const m = new ConnectionMachine({ fallbackAfter: 1 });
  m.apply('stream_failed');
  assert.equal(m.mode, 'poll');
});

test('streaming only: failures end offline, never polling', () => {
  const m = new ConnectionMachine({ poll: false });
  assert.deepEqual(run(m, ['stream_failed', 'stream_failed', 'stream_failed', 'stream_failed']), [
    'reconnecting',
    'reconnecting',
    'offline',
    'offline',
  ]);
  assert.equal(m.mode, 'stream');
  assert.equal(m.apply('stream_up'), 'live');
});

test('polling only', () => {
  const m = new ConnectionMachine({ stream: false });
  assert.equal(m.mode, 'poll');
  assert.deepEqual(run(m, ['poll_ok', 'poll_failed', 'poll_ok']), ['polling', 'offline', 'polling']);
});

test('the browser going offline shows offline until something works again', () => {
  const m = new ConnectionMachine();
  run(m, ['stream_up']);
  assert.equal(m.apply('network_down'), 'offline');
  assert.equal(m.apply('stream_lost'), 'offline');
  assert.equal(m.apply('stream_failed'), 'offline');
  assert.equal(m.apply('network_up'), 'reconnecting');
  assert.equal(m.apply('stream_up'), 'live');
});

test('closed is offline', () => {
  const m = new ConnectionMachine();
  m.apply('stream_up');
  assert.equal(m.apply('closed'), 'offline');
});

test('unknown inputs are bugs', () => {
  assert.throws(() => new ConnectionMachine().apply('nope'));
});
