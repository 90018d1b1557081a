// The economy over REST: the shop, a purchase (one ledger transaction on the server), using
// an item, the bag, the leaderboard.   node examples/shop.mjs
import { Code, RsgameError } from "@rsgame/client/node";
import { player } from "./_player.mjs";

const client = await player("buyer");
const shop = await client.api.game.getShop();
console.log(shop.map((s) => `${s.goods.name} ${s.price}`).join(", "));
const cheapest = shop.reduce((a, b) => (a.price <= b.price ? a : b));
const pack = await client.api.game.buyGoods({ id: cheapest.id, count: 1 });
console.log(`bought ${cheapest.goods.name}: ${pack.player.coins} coins left`);
try {
  await client.api.game.buyGoods({ id: cheapest.id, count: 50 });
} catch (e) {
  if (!(e instanceof RsgameError) || !e.is(Code.NotEnoughCoins)) throw e;
  console.log("not enough coins for 50");
}
const used = await client.api.game.useGoods({ id: cheapest.goods.id });
console.log(`used it: ${used.items.length} kinds of item left`);
const ranks = await client.api.game.getRank({ by: "score", page: 1, pageSize: 5 });
console.log(`top ${ranks.list.length} by score`);
