// The inbox: messages (with coins and goods to claim) from the game's own systems and
// operators; a MailNotice push says when one arrives.   node examples/inbox.mjs
import { player } from "./_player.mjs";

const client = await player("reader");
const page = await client.api.inbox.list({ limit: 20 });
console.log(`${page.mails.length} messages, ${page.unread} unread`);
for (const m of page.mails) {
  if (!m.read) await client.api.inbox.read({ ids: [m.id] });
  if ((m.coins || m.goods.length) && !m.claimed) console.log(`claimed: ${JSON.stringify(await client.api.inbox.claim({ id: m.id }))}`);
}
