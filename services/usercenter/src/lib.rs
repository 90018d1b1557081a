//! The usercenter service: accounts, passwords (argon2id), JWT access and refresh tokens,
//! QR login, login logs. Not built yet: its issue adds `api` (REST), `rpc` (gRPC),
//! `logic` and `model`. Until then this crate exports nothing.
