import assert from "node:assert/strict";
import { test } from "node:test";
import { FrameError, FrameReader, encodeFrame } from "../src/frame.js";

const frames = [
  [1000, new Uint8Array([8, 1])],
  [200200, new Uint8Array(3000).fill(7)],
  [9000, new Uint8Array(0)],
  [200000, new Uint8Array([1, 2, 3, 4, 5])],
] as const;
const stream = Uint8Array.from(frames.flatMap(([id, b]) => [...encodeFrame(id, b)]));

test("the worked example of docs/protocol.md", () => {
  assert.deepEqual([...encodeFrame(1000, new Uint8Array([8, 1]))], [0, 0, 3, 0xe8, 0, 0, 0, 2, 8, 1]);
});

test("coalesced frames come out one by one", () => {
  const got = new FrameReader().push(stream);
  assert.deepEqual(got.map(([id, b]) => [id, [...b]]), frames.map(([id, b]) => [id, [...b]]));
});

test("frames split anywhere, down to single bytes, come out whole", () => {
  for (const size of [1, 3, 7, 8, 9, 1000, 4099]) {
    const r = new FrameReader();
    const got: Array<[number, Uint8Array]> = [];
    for (let i = 0; i < stream.length; i += size) got.push(...r.push(stream.subarray(i, i + size)));
    assert.equal(got.length, frames.length, `chunks of ${size}`);
    got.forEach(([id, b], i) => {
      assert.equal(id, frames[i][0]);
      assert.deepEqual([...b], [...frames[i][1]]);
    });
    assert.equal(r.pending, 0);
  }
});

test("a body is a copy: later chunks do not change it", () => {
  const r = new FrameReader();
  const [[, body]] = r.push(encodeFrame(1, new Uint8Array([1, 2])));
  r.push(encodeFrame(2, new Uint8Array([9, 9])));
  assert.deepEqual([...body], [1, 2]);
});

test("a header announcing too large a body is refused before it is buffered", () => {
  const r = new FrameReader(1024);
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(4, 1025);
  assert.throws(() => r.push(head), FrameError);
});
