//! The world's area of interest: the framework's nine-grid ([`rsgame_gate::aoi`]), and how
//! the demo splits entity ids between players and monsters.

pub use rsgame_gate::aoi::{Bounds, EntityId, Grid, ViewChange};

/// Monster ids start here, above any account id.
pub const MONSTER_BASE: EntityId = 1 << 48;
