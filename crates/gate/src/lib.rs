//! rsgame's connection engine (zinx's role in go-game). Not built yet: the gate issue fills
//! it with TCP, WebSocket and KCP transports on one router, zinx's frame layouts (big-endian
//! id+length, and the legacy little-endian one) with an enforced size limit, protobuf and
//! JSON bodies, sessions with heartbeat, rate limits and bounded outbound queues, and routing
//! by message id. Until then this crate exports nothing.
