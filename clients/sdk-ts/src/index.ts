// @rsgame/client: REST and the game connection of an rsgame server, typed from proto/ and
// docs/openapi.json. Node's TCP transport is in `@rsgame/client/node`, WeChat's adapters in
// `@rsgame/client/wechat`.
export { Client, deviceId, type ClientOptions } from "./client.js";
export { Socket, type Credentials, type SocketOptions, type Status, type StopReason } from "./socket.js";
export { RsgameError, NO_ANSWER } from "./errors.js";
export { webSocketTransport, type Transport, type Link, type LinkEvents, type Data, type WebSocketLike, type WebSocketCtor } from "./transport.js";
export { fetchHttp, type Http, type HttpRequest, type HttpResponse } from "./http.js";
export { memoryStore, webStore, type Session, type SessionStore } from "./session.js";
export { systemClock, type Clock } from "./clock.js";
export { Codec, type Wire } from "./codec.js";
export { FrameReader, FrameError, encodeFrame, HEADER, MAX_BODY } from "./frame.js";
export { MessageId, REPLIES, NAMES, type Inbound, type Outbound, type Replies } from "./gen/protocol.js";
export { pb } from "./gen/game.js";
export * from "./gen/rest.js";
