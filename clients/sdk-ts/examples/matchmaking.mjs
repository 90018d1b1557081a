// Matchmaking: two players ask for the same mode (world.yaml's match_modes), a match forms,
// both enter the room it made.   node --experimental-websocket examples/matchmaking.mjs
import { MessageId } from "@rsgame/client/node";
import { next, online } from "./_player.mjs";

const players = [await online("m1"), await online("m2")];
const found = players.map(({ socket }) => next(socket, MessageId.MatchFound, () => true, 20_000));
for (const { socket } of players) {
  const t = await socket.request(MessageId.MatchAdd, { mode: "squares" });
  console.log(`queued with ticket ${t.ticket}`);
}
for (const [i, m] of (await Promise.all(found)).entries()) {
  console.log(`match ${m.matchId}: ${m.players.length} players, room ${m.roomId} on this node: ${m.here}`);
  if (m.here) await players[i].socket.request(MessageId.EnterRoom, { roomId: m.roomId });
}
for (const { socket } of players) await socket.logout();
