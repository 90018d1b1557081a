// Accounts: register, who am I, a guest by device id, tokens refreshed one at a time, a typed
// error, log out.   node examples/accounts.mjs
import { Client, Code, RsgameError } from "@rsgame/client/node";
import { player, server } from "./_player.mjs";

const ann = await player("ann");
const { userInfo } = await ann.api.user.detail();
console.log(`registered #${userInfo.id} ${userInfo.username}`);

// A guest: the device id is the whole login (keep it like a password; see deviceId()).
const guest = new Client({ baseUrl: server });
const device = `example-${Date.now()}-${process.pid}`;
const first = await guest.loginDevice({ deviceId: device });
const again = await new Client({ baseUrl: server }).loginDevice({ deviceId: device });
console.log(`guest #${first.userId}, the same account again: ${first.userId === again.userId}`);

// Refresh tokens rotate: the client shares one refresh among everything that asks.
const [a, b] = await Promise.all([ann.freshSession(true), ann.freshSession(true)]);
console.log(`one refresh for two callers: ${a.refreshToken === b.refreshToken}`);

// Errors carry the server's code.
try {
  await new Client({ baseUrl: server }).login({ username: userInfo.username, password: "wrong-password" });
} catch (e) {
  if (!(e instanceof RsgameError) || !e.is(Code.LoginFailed)) throw e;
  console.log(`wrong password: ${e.code}`);
}
await ann.logout();
console.log(`logged out: ${ann.session === null}`);
