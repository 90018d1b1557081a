//! The world's area of interest: the framework's nine-grid ([`rsgame_gate::aoi`]), and how
//! the demo splits entity ids between players and monsters.

pub use rsgame_gate::aoi::{Bounds, EntityId, Grid, ViewChange};

/// Monster ids start here, above any account id.
pub const MONSTER_BASE: EntityId = 1 << 48;

/// A player: its account id, the one type the world passes around for a player, from the
/// login to the scene. Account ids are positive and below [`MONSTER_BASE`], so the same
/// number is the player's entity in a scene and its id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayerId(i64);

impl PlayerId {
    /// The player of account `id` (as a login's token proved it).
    pub const fn new(id: i64) -> PlayerId {
        PlayerId(id)
    }

    /// The account id, as the protocol, the room API and the database carry it.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// The player's entity in a scene.
    pub const fn entity(self) -> EntityId {
        self.0 as EntityId
    }

    /// The player an entity is, if it is one (not a monster).
    pub const fn of(entity: EntityId) -> Option<PlayerId> {
        if entity < MONSTER_BASE { Some(PlayerId(entity as i64)) } else { None }
    }
}

impl std::fmt::Display for PlayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An entity's id on the wire (protobuf int64): every id is below 2^63.
pub const fn wire_id(id: EntityId) -> i64 {
    id as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn players_and_monsters_share_the_entity_space_without_overlap() {
        let p = PlayerId::new(42);
        assert_eq!((p.get(), p.entity(), wire_id(p.entity())), (42, 42, 42));
        assert_eq!(PlayerId::of(p.entity()), Some(p));
        assert_eq!(PlayerId::of(MONSTER_BASE + 3), None, "a monster is no player");
        assert_eq!(wire_id(MONSTER_BASE), 1 << 48);
    }
}
