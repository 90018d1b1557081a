// Lockstep: the server numbers frames of everyone's inputs; each client steps the same
// deterministic simulation frame by frame, so both end with the same state.
//   node --experimental-websocket examples/lockstep.mjs
import { MessageId, pb } from "@rsgame/client/node";
import { online } from "./_player.mjs";

const players = [await online("p1"), await online("p2")];
const made = await players[0].socket.request(MessageId.CreateRoom, { name: "race", type: pb.RoomType.ROOM_TYPE_LOCKSTEP, maxUser: 2 });
const roomId = Number(made.msg);
await players[1].socket.request(MessageId.EnterRoom, { roomId });

// The simulation: each player's counter adds the byte it sent; frames in order, inputs in
// ascending player order, the same on every client.
const runs = players.map(({ socket }, i) => {
  const state = new Map();
  let frame = 0;
  let syncAsked = false;
  return new Promise((resolve) => {
    socket.on(MessageId.LockstepFrames, (m) => {
      for (const f of m.frames) {
        if (f.number < frame) continue; // already stepped
        if (f.number > frame) {
          // Frames we have not seen (this listener started late): ask for them, once.
          if (!syncAsked) socket.send(MessageId.LockstepSync, { from: frame });
          syncAsked = true;
          return;
        }
        syncAsked = false;
        for (const input of f.inputs) for (const d of input.data) state.set(input.userId, (state.get(input.userId) ?? 0) + d[0]);
        frame += 1;
      }
      if (frame >= 30) resolve({ frame, state: JSON.stringify([...state].sort()) });
      else socket.send(MessageId.LockstepInput, { data: new Uint8Array([i + 1]) });
    });
  });
});
// The first input starts each player's stream of inputs (one per bundle after that).
players.forEach(({ socket }, i) => socket.send(MessageId.LockstepInput, { data: new Uint8Array([i + 1]) }));
const [a, b] = await Promise.all(runs);
console.log(`after ${a.frame} frames both agree: ${a.state === b.state}`);
if (a.state !== b.state) process.exitCode = 1;
for (const { socket } of players) await socket.logout();
