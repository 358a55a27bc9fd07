import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../client/ordercast.js';

function parse(chunks) {
  const out = [];
  const p = new SseParser((m) => out.push(m));
  for (const c of chunks) p.push(c);
  return out;
}

const STREAM = 'retry: 2000\n: subscribed at 1056\n\nid: 1057\nevent: order.created\ndata: {"seq":1057}\n\n:\n\n';

test('parses the edge stream: retry, cursor comment, event, heartbeat', () => {
  assert.deepEqual(parse([STREAM]), [
    { kind: 'retry', ms: 2000 },
    { kind: 'comment', text: 'subscribed at 1056' },
    { kind: 'event', id: '1057', event: 'order.created', data: '{"seq":1057}' },
    { kind: 'comment', text: '' },
  ]);
});

test('chunks split anywhere give the same result', () => {
  const whole = parse([STREAM]);
  for (let i = 1; i < STREAM.length; i += 1) {
    assert.deepEqual(parse([STREAM.slice(0, i), STREAM.slice(i)]), whole, `split at ${i}`);
  }
  assert.deepEqual(parse([...STREAM]), whole, 'one character at a time');
});

test('CRLF and CR line endings, even split inside CRLF', () => {
  const crlf = STREAM.replace(/\n/g, '\r\n');
  assert.deepEqual(parse([crlf]), parse([STREAM]));
  for (let i = 1; i < crlf.length; i += 1) {
    assert.deepEqual(parse([crlf.slice(0, i), crlf.slice(i)]), parse([STREAM]), `split at ${i}`);
  }
  assert.deepEqual(parse([STREAM.replace(/\n/g, '\r')]), parse([STREAM]));
});

test('multi-line data, default type, fields without a space, no data means no event', () => {
  assert.deepEqual(parse(['data:a\ndata: b\n\nevent: x\n\nid: 9\nretry: soon\ndata\n\n']), [
    { kind: 'event', id: null, event: 'message', data: 'a\nb' },
    { kind: 'event', id: '9', event: 'message', data: '' },
  ]);
});

test('an event without its blank line is not dispatched yet', () => {
  assert.deepEqual(parse(['id: 1\ndata: {}\n']), []);
});
