//! rsgame's gRPC layer. Not built yet: the distributed-mode issue fills it with the code
//! generated from `proto/`, service discovery (static endpoints, etcd), balanced channels and
//! the governance layers shared with REST. Until then this crate exports nothing.
