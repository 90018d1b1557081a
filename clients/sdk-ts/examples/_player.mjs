// Shared by the examples: a fresh player on the server named by RSGAME_SERVER (default
// http://127.0.0.1:8888), logged in over REST and connected over WebSocket.
// Node 20 needs `--experimental-websocket` for the global WebSocket (Node 22 has it).
import { Client, MessageId } from "@rsgame/client/node";

export const server = process.env.RSGAME_SERVER ?? "http://127.0.0.1:8888";
const run = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

/** Registers `name` (made unique) and returns its client. */
export async function player(name) {
  const client = new Client({ baseUrl: server });
  await client.register({ username: `${name}${run}`, password: "example-secret-1", nickname: `${name}${run}` });
  return client;
}

/**
 * A player's client with its game socket, online. `last` holds the latest message of each id
 * since the start (what the login's burst brought: SceneInfo, PlayerStats…).
 */
export async function online(name) {
  const client = await player(name);
  const socket = client.socket();
  const last = new Map();
  socket.onMessage((id, m) => last.set(id, m));
  socket.start();
  await new Promise((resolve, reject) => {
    socket.on(MessageId.UserInfo, resolve);
    socket.onStatus((s, why) => s === "stopped" && reject(new Error(`stopped: ${why}`)));
  });
  return { client, socket, last };
}

/** Waits for the first message of `id` that passes `test`. */
export function next(socket, id, test = () => true, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message ${id} in ${ms} ms`)), ms);
    const off = socket.on(id, (m) => {
      if (!test(m)) return;
      clearTimeout(timer);
      off();
      resolve(m);
    });
  });
}
