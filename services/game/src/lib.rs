//! The game service: the economy (goods, shop, inventory), levels and battles, ranks and
//! notices over REST, and the real-time world (scenes with AOI, combat, monsters, rooms,
//! chat, friends, lockstep) behind the gate. Not built yet: the game REST and world issues
//! fill it. Until then this crate exports nothing.
