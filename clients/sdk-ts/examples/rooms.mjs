// Rooms and scenes: list them, create a room (the creator is moved in), leave it.
//   node --experimental-websocket examples/rooms.mjs
import { MessageId, pb } from "@rsgame/client/node";
import { online } from "./_player.mjs";

const { socket } = await online("host");
const list = await socket.request(MessageId.RoomList, { type: 0 });
console.log(list.roomList.map((r) => `${r.roomId} ${r.name}`).join(", "));
const entered = new Promise((r) => socket.on(MessageId.EnterRoomResp, r));
const made = await socket.request(MessageId.CreateRoom, { name: "my room", type: pb.RoomType.ROOM_TYPE_PUBLIC, maxUser: 8 });
if (made.status !== pb.ReplyStatus.REPLY_STATUS_OK) throw new Error(made.msg);
console.log(`created room ${made.msg}, now in ${(await entered).roomId}`);
await socket.request(MessageId.QuitRoom, { roomId: Number(made.msg) });
await socket.logout();
