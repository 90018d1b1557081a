//! The basic service: captcha, verification codes (SMS, email) and files. Not built yet: its
//! issue adds `api` (REST), `rpc` (gRPC), `logic` and `model`. Until then this crate exports
//! nothing.
