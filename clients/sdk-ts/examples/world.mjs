// The world: log in to the game node, learn the scene, walk, and see who and what is in view.
//   node --experimental-websocket examples/world.mjs
import { MessageId, pb } from "@rsgame/client/node";
import { next, online } from "./_player.mjs";

const { socket, last } = await online("walker");
// SceneInfo comes right after the login reply (and after each move to another scene).
const scene = last.get(MessageId.SceneInfo) ?? (await next(socket, MessageId.SceneInfo));
console.log(`in scene ${scene.roomId}: ${scene.maxX - scene.minX} × ${scene.maxZ - scene.minZ}, ${scene.tickHz} ticks/s`);
const inView = new Map((last.get(MessageId.SpawnResp)?.list ?? []).map((e) => [e.id, e]));
socket.on(MessageId.SpawnResp, (m) => m.list.forEach((e) => inView.set(e.id, e)));
socket.on(MessageId.DespawnResp, (m) => m.ids.forEach((id) => inView.delete(id)));

// The server is authoritative: moves within world.max_speed are taken, others corrected. Each
// tick's MoveResp holds everyone in view who moved (this player too).
let at = socket.me.position;
let moves = 0;
socket.on(MessageId.MoveResp, (m) => (moves += m.siteList.length));
// A move too far is answered with this player's own position, action "correct": snap to it.
socket.on(MessageId.MoveResp, (m) => {
  const fix = m.siteList.find((s) => s.userId === socket.me.userId && s.action === "correct");
  if (fix) at = fix.site;
});
for (let i = 0; i < 10; i++) {
  at = { X: at.X + 3, Z: at.Z };
  socket.send(MessageId.Move, { site: at });
  await new Promise((r) => setTimeout(r, 100));
}
await new Promise((r) => setTimeout(r, 300));
console.log(`walked to ${at.X.toFixed(1)},${at.Z.toFixed(1)}; ${moves} moves of others seen meanwhile`);
const monsters = [...inView.values()].filter((e) => e.kind === pb.EntityKind.ENTITY_KIND_MONSTER);
console.log(`in view: ${inView.size} (${monsters.length} monsters)`);
await socket.logout();
