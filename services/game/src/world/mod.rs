//! The real-time world (in progress with its issue): scenes own their players, monsters and
//! AOI grid and are driven by commands and a fixed tick; the simulation is plain code.
//!
//! - [`aoi`]: the nine-grid area of interest.
//! - [`scene`]: a scene's simulation: joins, leaves, validated moves, per-tick batches,
//!   combat, monster AI.
//! - [`lockstep`]: frame-sync rooms: inputs bundled per frame at a fixed rate, catch-up.

pub mod aoi;
pub mod lockstep;
pub mod scene;
