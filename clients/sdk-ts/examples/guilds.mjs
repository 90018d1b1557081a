// Guilds (REST) with their push: create one, another player joins (an open guild), both read
// it; the leader is told on its socket.   node --experimental-websocket examples/guilds.mjs
import { MessageId } from "@rsgame/client/node";
import { next, online, player } from "./_player.mjs";

const leader = await online("lead");
const name = `Guild ${Date.now().toString(36)}`;
const made = await leader.client.api.guild.create({ name, notice: "welcome", open: true });
console.log(`created ${made.guild.name} (#${made.guild.id})`);
const told = next(leader.socket, MessageId.GuildNotice);
const member = await player("member");
await member.api.guild.join({ guildId: made.guild.id });
console.log(`the leader was told: ${(await told).event}`);
const detail = await member.api.guild.detail({ guildId: made.guild.id });
console.log(`${detail.guild.members} members; I am ${detail.myRole}`);
await leader.socket.logout();
