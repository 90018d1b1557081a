//! rsgame's storage. Not built yet: the storage issue fills it with the database (SQLite,
//! MySQL/MariaDB, PostgreSQL through one query path, versioned migrations, pool settings
//! from `database.*`), the cache (in-memory and Redis, single-flight loading) and the message
//! bus (in-memory, NATS, Redis streams, Kafka). Until then this crate exports nothing.
