// Chat: a world line comes back stamped by the server to everyone (the sender too), and the
// history keeps it.   node --experimental-websocket examples/chat.mjs
import { MessageId, pb } from "@rsgame/client/node";
import { next, online } from "./_player.mjs";

const { socket } = await online("talker");
// Refusals (too fast, too long, muted) come as errors on the socket.
socket.onError((e) => console.log(`refused: ${e.code} ${e.message}`));
const text = `hello at ${new Date().toISOString()}`;
socket.send(MessageId.ChatMsg, { chatType: pb.ChatType.CHAT_TYPE_WORLD, msgType: 1, msg: text });
const back = await next(socket, MessageId.ChatMsgResp, (m) => m.msgList.some((c) => c.msg === text));
console.log(`sent at ${back.msgList[0].sendTime} by #${back.msgList[0].userId}`);
const history = await socket.request(MessageId.ChatHistory, { chatType: pb.ChatType.CHAT_TYPE_WORLD, limit: 10 });
console.log(`history holds it: ${history.msgList.some((c) => c.msg === text)}`);
await socket.logout();
