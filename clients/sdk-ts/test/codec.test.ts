import assert from "node:assert/strict";
import { test } from "node:test";
import { Codec } from "../src/codec.js";
import { MessageId, REPLIES, BODIES } from "../src/gen/protocol.js";
import { pb } from "../src/gen/game.js";

test("every id has a body class, and pairs name ids that exist", () => {
  for (const id of Object.values(MessageId)) assert.ok(BODIES[id], `body of ${id}`);
  for (const reply of Object.values(REPLIES)) assert.ok(Object.values(MessageId).includes(reply as never));
  assert.equal(REPLIES[MessageId.ChatHistory], MessageId.ChatHistoryResp);
  // Pushed unasked too, so never paired: a push would be taken for the answer.
  assert.ok(!(MessageId.PartyKick in REPLIES) && !(MessageId.Respawn in REPLIES));
  assert.equal(BODIES[MessageId.FriendStatus], pb.UserInfo);
});

test("protobuf: a message survives the round trip, int64 as numbers", () => {
  const c = new Codec("protobuf");
  const [d] = new Codec("protobuf").decode(c.encode(MessageId.Attack, { objId: 2 ** 48 + 5 }) as Uint8Array);
  assert.equal(d.id, MessageId.Attack);
  assert.equal((d as { msg: pb.Attack }).msg.objId, 2 ** 48 + 5);
});

test("JSON: the server's text messages, bytes as arrays of numbers and Site's capitals", () => {
  const c = new Codec("json");
  const text = c.encode(MessageId.LockstepInput, { data: new Uint8Array([1, 255]) });
  assert.equal(text, '{"id":100300,"data":{"data":[1,255]}}');
  const frames = JSON.stringify({
    id: MessageId.LockstepFrames,
    data: { roomId: 7, frames: [{ number: 3, inputs: [{ userId: 9, data: [[4], [8, 1]] }] }], unknownField: 1 },
  });
  const [d] = c.decode(frames) as Array<{ id: number; msg: pb.LockstepFrames }>;
  assert.equal(d.msg.roomId, 7);
  assert.deepEqual([...d.msg.frames[0].inputs![0].data![1]], [8, 1]);
  assert.ok(d.msg.frames[0].inputs![0].data![1] instanceof Uint8Array);
  const [m] = c.decode('{"id":200200,"data":{"siteList":[{"userId":3,"site":{"X":1.5,"Z":-2}}]}}') as Array<{ id: number; msg: pb.MoveResp }>;
  assert.equal(m.msg.siteList[0].site?.X, 1.5);
  assert.equal(m.msg.siteList[0].site?.Z, -2);
  assert.equal(m.msg.siteList[0].action, "", "missing fields read as defaults");
});

test("int64 fields a message leaves out read as the number 0, not a Long", () => {
  const [d] = new Codec("protobuf").decode(new Codec("protobuf").encode(MessageId.UserInfo, {}) as Uint8Array) as Array<{ id: number; msg: pb.UserInfo }>;
  assert.equal(d.msg.roomId, 0);
  assert.equal(typeof d.msg.userId, "number");
});

test("JSON: unknown ids are skipped, broken text is reported", () => {
  const c = new Codec("json");
  assert.deepEqual(c.decode('{"id":299999,"data":{}}'), []);
  const [bad] = c.decode("{nope");
  assert.ok("error" in bad);
});
