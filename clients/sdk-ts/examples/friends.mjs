// Friends by consent: Ann asks, Bob adds her back (the acceptance); then each sees the other's
// online status, and is told when the other comes or goes.
//   node --experimental-websocket examples/friends.mjs
import { MessageId, pb } from "@rsgame/client/node";
import { next, online } from "./_player.mjs";

const ann = await online("ann");
const bob = await online("bob");
const [annId, bobId] = [ann.client.session.userId, bob.client.session.userId];
const FRIEND = pb.FriendType.FRIEND_TYPE_FRIEND;
const asked = await ann.socket.request(MessageId.AddFriend, { userId: bobId, type: FRIEND });
console.log(`asked: ${asked.status === pb.ReplyStatus.REPLY_STATUS_OK}`);
await bob.socket.request(MessageId.AddFriend, { userId: annId, type: FRIEND });
const list = await ann.socket.request(MessageId.MyFriend, { type: FRIEND });
console.log(list.userList.map((u) => `${u.nickname} ${u.online ? "online" : "offline"}`).join(", "));
// Bob leaves: Ann is told (the `friends` capability, in caps=all).
const told = next(ann.socket, MessageId.FriendStatus, (u) => u.userId === bobId && !u.online);
await bob.socket.logout();
console.log(`told when Bob left: ${(await told).nickname}`);
await ann.socket.logout();
