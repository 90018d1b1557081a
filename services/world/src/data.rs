//! The world's data: its scenes, their bounds, AOI cells, respawn points and monsters, from
//! `world.yaml` in the game data folder (the built-in sample when the file is missing).
//! Checked as a whole at start-up; a bad file stops it with the scene named.

use std::path::Path;

use crate::config::WorldConfig;
use serde::Deserialize;

use crate::aoi::Bounds;
use crate::matchmaker::Mode;
use crate::scene::{MonsterSpawn, SceneConfig};

/// The sample shipped with rsgame (scenes 1000, 1001, 1002 as in go-game).
pub const SAMPLE: &str = include_str!("../sample/world.yaml");

/// A bad world file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {msg}")]
pub struct WorldDataError {
    /// The file.
    pub file: String,
    /// What is wrong, naming the scene.
    pub msg: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenes: Vec<SceneDef>,
    #[serde(default)]
    match_modes: Vec<Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Point {
    x: f32,
    z: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rect {
    min_x: f32,
    min_z: f32,
    max_x: f32,
    max_z: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SceneDef {
    id: i32,
    name: String,
    bounds: Rect,
    cell: f32,
    /// go-game's grid for its clients' view (zinx's AOI: `cols` × `rows` cells over the
    /// bounds); rsgame's own clients see by `cell`.
    #[serde(default)]
    go_game_grid: Option<GridDef>,
    respawn: Point,
    /// New players appear within this distance of the respawn point (go-game: 25).
    #[serde(default = "default_spawn_radius")]
    spawn_radius: f32,
    #[serde(default)]
    pvp: bool,
    /// Monsters leave players alone this close to the respawn point.
    #[serde(default)]
    safe_radius: f32,
    /// Hit points regained out of combat.
    #[serde(default)]
    regen: Option<RegenDef>,
    #[serde(default)]
    monsters: Vec<MonsterSpawn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegenDef {
    /// Hit points a second.
    per_sec: i64,
    /// After this long without hitting or being hit.
    #[serde(default = "default_regen_after")]
    after_secs: u32,
}

fn default_regen_after() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridDef {
    cols: usize,
    rows: usize,
}

fn default_spawn_radius() -> f32 {
    25.0
}

/// A scene as the world runs it: its name and its simulation settings.
#[derive(Debug, Clone)]
pub struct SceneSpec {
    /// Shown in room lists.
    pub name: String,
    /// New players appear within this distance of the respawn point (a start zone).
    pub spawn_radius: f32,
    /// The simulation's settings.
    pub config: SceneConfig,
}

/// What `world.yaml` holds: the scenes and the match modes.
#[derive(Debug, Clone)]
pub struct WorldData {
    /// The scenes, the first being where new players start.
    pub scenes: Vec<SceneSpec>,
    /// The matchmaker's modes.
    pub modes: Vec<Mode>,
}

/// Loads `dir/world.yaml`, or the sample when there is none, with the node's settings.
pub fn load(dir: &Path, cfg: &WorldConfig) -> Result<WorldData, WorldDataError> {
    let path = dir.join("world.yaml");
    let (file, text) = match std::fs::read_to_string(&path) {
        Ok(t) => (path.display().to_string(), t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ("built-in world.yaml".to_string(), SAMPLE.to_string()),
        Err(e) => return Err(WorldDataError { file: path.display().to_string(), msg: e.to_string() }),
    };
    parse_all(&text, cfg).map_err(|msg| WorldDataError { file, msg })
}

/// Parses and checks a world file's scenes.
pub fn parse(text: &str, cfg: &WorldConfig) -> Result<Vec<SceneSpec>, String> {
    parse_all(text, cfg).map(|d| d.scenes)
}

/// Parses and checks a world file: scenes and match modes.
pub fn parse_all(text: &str, cfg: &WorldConfig) -> Result<WorldData, String> {
    let f: File = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    if f.scenes.is_empty() {
        return Err("scenes: at least one".into());
    }
    let scene_ids: std::collections::BTreeSet<i32> = f.scenes.iter().map(|s| s.id).collect();
    let mut names = std::collections::BTreeSet::new();
    for (i, m) in f.match_modes.iter().enumerate() {
        let at = |msg: &str| format!("match_modes[{i}] ({}): {msg}", m.name);
        m.check().map_err(|e| at(&e))?;
        if !names.insert(m.name.clone()) {
            return Err(at("name: unique"));
        }
        if m.scene.is_some_and(|s| !scene_ids.contains(&s)) {
            return Err(at("scene: one of the scenes above"));
        }
    }
    let modes = f.match_modes;
    let mut seen = std::collections::BTreeSet::new();
    let tick_hz = cfg.tick_hz.clamp(1, 120);
    let cooldown = (cfg.attack_cooldown_ms * u64::from(tick_hz)).div_ceil(1000);
    f.scenes
        .into_iter()
        .map(|s| {
            let at = |m: &str| format!("scene {}: {m}", s.id);
            if s.id <= 0 || !seen.insert(s.id) {
                return Err(at("id: positive and unique"));
            }
            let b = &s.bounds;
            let finite = [b.min_x, b.min_z, b.max_x, b.max_z, s.cell, s.respawn.x, s.respawn.z];
            if finite.iter().any(|v| !v.is_finite()) || b.max_x <= b.min_x || b.max_z <= b.min_z {
                return Err(at("bounds: min below max, finite"));
            }
            let bounds = Bounds { min_x: b.min_x, min_z: b.min_z, max_x: b.max_x, max_z: b.max_z };
            // Too small a cell makes the grid huge; at least 1/512 of the longer side.
            if s.cell <= 0.0 || (b.max_x - b.min_x).max(b.max_z - b.min_z) / s.cell > 512.0 {
                return Err(at("cell: positive, at most 512 cells along a side"));
            }
            if s.go_game_grid.as_ref().is_some_and(|g| !(1..=512).contains(&g.cols) || !(1..=512).contains(&g.rows)) {
                return Err(at("go_game_grid: cols and rows from 1 to 512"));
            }
            if !bounds.contains(s.respawn.x, s.respawn.z) {
                return Err(at("respawn: inside the bounds"));
            }
            if !s.spawn_radius.is_finite() || s.spawn_radius < 0.0 {
                return Err(at("spawn_radius: zero or more"));
            }
            if !s.safe_radius.is_finite() || s.safe_radius < 0.0 {
                return Err(at("safe_radius: zero or more"));
            }
            if s.regen.as_ref().is_some_and(|r| r.per_sec < 0 || r.after_secs > 3600) {
                return Err(at("regen: per_sec zero or more, after_secs at most 3600"));
            }
            for (i, m) in s.monsters.iter().enumerate() {
                let ok = m.hp > 0
                    && m.attack >= 0
                    && m.defence >= 0
                    && m.exp >= 0
                    && m.coins >= 0
                    && m.score >= 0
                    && [m.speed, m.aggro, m.leash].iter().all(|v| v.is_finite() && *v >= 0.0)
                    && bounds.contains(m.x, m.z)
                    && !m.name.is_empty();
                if !ok {
                    return Err(at(&format!(
                        "monsters[{i}] ({}): a name, hp above 0, no negative numbers, inside the bounds",
                        m.name
                    )));
                }
            }
            Ok(SceneSpec {
                name: s.name,
                spawn_radius: s.spawn_radius,
                config: SceneConfig {
                    id: s.id,
                    bounds,
                    cell: s.cell,
                    go_game_grid: s.go_game_grid.map(|g| (g.cols, g.rows)),
                    tick_hz,
                    max_speed: cfg.max_speed,
                    monsters: s.monsters,
                    attack_range: cfg.attack_range,
                    attack_cooldown: cooldown.max(1),
                    pvp: s.pvp,
                    respawn: (s.respawn.x, s.respawn.z),
                    safe_radius: s.safe_radius,
                    regen_per_sec: s.regen.as_ref().map_or(0, |r| r.per_sec),
                    regen_after_secs: s.regen.as_ref().map_or(5, |r| r.after_secs),
                    position_every: cfg.position_every_ticks.max(1),
                    crowd: cfg.crowd(),
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|scenes| WorldData { scenes, modes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_has_go_games_scenes() {
        let scenes = parse(SAMPLE, &WorldConfig::default()).expect("sample");
        let ids: Vec<i32> = scenes.iter().map(|s| s.config.id).collect();
        assert_eq!(ids, [1000, 1001, 1002]);
        assert_eq!(scenes[0].config.attack_cooldown, 16, "800 ms at 20 Hz");
    }

    #[test]
    fn bad_files_name_the_scene() {
        let cfg = WorldConfig::default();
        let dup = "scenes:\n  - {id: 5, name: a, bounds: {min_x: 0, min_z: 0, max_x: 10, max_z: 10}, cell: 5, respawn: {x: 1, z: 1}}\n  - {id: 5, name: b, bounds: {min_x: 0, min_z: 0, max_x: 10, max_z: 10}, cell: 5, respawn: {x: 1, z: 1}}\n";
        assert!(parse(dup, &cfg).expect_err("dup").contains("scene 5: id"));
        let out = "scenes:\n  - {id: 7, name: a, bounds: {min_x: 0, min_z: 0, max_x: 10, max_z: 10}, cell: 5, respawn: {x: 50, z: 1}}\n";
        assert!(parse(out, &cfg).expect_err("respawn").contains("scene 7: respawn"));
        let tiny = "scenes:\n  - {id: 7, name: a, bounds: {min_x: 0, min_z: 0, max_x: 10000, max_z: 10}, cell: 0.001, respawn: {x: 1, z: 1}}\n";
        assert!(parse(tiny, &cfg).expect_err("cell").contains("cell"));
        let monster = "scenes:\n  - {id: 8, name: a, bounds: {min_x: 0, min_z: 0, max_x: 10, max_z: 10}, cell: 5, respawn: {x: 1, z: 1}, monsters: [{name: X, x: 1, z: 1, hp: 0, attack: 1, defence: 0, speed: 1, aggro: 1, leash: 1, respawn_secs: 1, exp: 1, coins: 1}]}\n";
        assert!(parse(monster, &cfg).expect_err("hp").contains("monsters[0] (X)"));
        assert!(parse("scenes: []", &cfg).is_err());
        assert!(parse("scenes: [{id: 1, nme: x}]", &cfg).is_err(), "unknown keys are refused");
    }

    #[test]
    fn match_modes_are_checked_by_name() {
        let cfg = WorldConfig::default();
        let data = parse_all(SAMPLE, &cfg).expect("sample");
        assert!(data.modes.iter().any(|m| m.name == "duel"), "{:?}", data.modes);
        let scene = "scenes:\n  - {id: 5, name: a, bounds: {min_x: 0, min_z: 0, max_x: 10, max_z: 10}, cell: 5, respawn: {x: 1, z: 1}}\n";
        let dup = format!(
            "{scene}match_modes:\n  - {{name: m, room: lockstep, min_count: 2, max_count: 2, timeout_secs: 9}}\n  - {{name: m, room: lockstep, min_count: 2, max_count: 2, timeout_secs: 9}}\n"
        );
        assert!(parse_all(&dup, &cfg).expect_err("dup").contains("match_modes[1] (m): name"));
        let far = format!(
            "{scene}match_modes:\n  - {{name: m, room: scene, scene: 9, min_count: 2, max_count: 2, timeout_secs: 9}}\n"
        );
        assert!(parse_all(&far, &cfg).expect_err("scene").contains("scene: one of"));
        let counts = format!(
            "{scene}match_modes:\n  - {{name: m, room: lockstep, min_count: 3, max_count: 2, timeout_secs: 9}}\n"
        );
        assert!(parse_all(&counts, &cfg).expect_err("counts").contains("min_count"));
    }
}
