//! A scene's serial part alone (benchmark, not a test): how long one tick of one scene takes
//! with N players, on one core, with no sockets, so that issue 25's "one scene is capped by
//! its tick" can be read off directly instead of from a server sharing its core with bots.
//!
//! The open world of `clients/bot/bench_world.py`: a square of side √(500 N) with 50-unit
//! cells (about 45 others in each player's nine cells), 20 ticks a second, every player
//! moving at 10 Hz (half of them each tick, a step of 0.9 units in a direction that turns
//! now and then, bouncing off the edges). Each tick is what the scene's task does serially:
//! the moves applied (`Scene::apply`), `Scene::tick` (AOI, the batches by cell), then each
//! position batch turned into a `MoveResp` and encoded once, and every receiver looked up
//! for its batch, as `SceneRoom::deliver` does before it pushes into the sessions' queues
//! (the pushes themselves, one per receiver, are not here).
//!
//! SHAPE `town` is bench_world.py's town square instead: go-game's scene 1000 (325 × 325,
//! 32.5-unit cells), every player starting within 25 units of the respawn point.
//!
//! Prints one JSON line per N: tick p50 / p99 / max (ms), the share of the 50 ms budget at
//! the median, entity updates per tick, batches per tick and MoveResp bytes per tick (the sum
//! over receivers: what leaves the server).
//!
//! `cargo run --release -p rsgame-world --example bench_scene -- [N,N,…] [TICKS] [EVERY] [SHAPE] [CROWD_CAP]`
//! (defaults 2000,5000,10000,20000; 200; 1; open; 96 — EVERY is `world.position_every_ticks`,
//! CROWD_CAP `world.crowd_cap`, 0 for none)

use std::collections::HashMap;
use std::time::Instant;

use prost::Message as _;
use rsgame_proto::pb;
use rsgame_world::aoi::{Bounds, EntityId};
use rsgame_world::crowd::Crowd;
use rsgame_world::scene::{Command, Out, Scene, SceneConfig};

/// A fixed-seed generator: the same walk every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Walker {
    id: EntityId,
    x: f32,
    z: f32,
    dir: f32,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(n: usize, ticks: usize, every: u32, town: bool, crowd_cap: usize) -> serde_json::Value {
    let side = (500.0 * n as f32).sqrt();
    let bounds = if town {
        Bounds { min_x: 85.0, min_z: 75.0, max_x: 410.0, max_z: 400.0 }
    } else {
        Bounds { min_x: 0.0, min_z: 0.0, max_x: side, max_z: side }
    };
    let crowd = if crowd_cap == 0 { Crowd::OFF } else { Crowd { cap: crowd_cap, ..Crowd::default() } };
    let mut scene = Scene::new(SceneConfig {
        id: 1,
        bounds,
        cell: if town { 32.5 } else { 50.0 },
        go_game_grid: None,
        tick_hz: 20,
        max_speed: 10.0,
        monsters: Vec::new(),
        attack_range: 3.0,
        attack_cooldown: 10,
        pvp: false,
        respawn: (side / 2.0, side / 2.0),
        safe_radius: 0.0,
        regen_per_sec: 0,
        regen_after_secs: 5,
        position_every: every,
        crowd,
    });
    let mut rng = Lcg(0x5eed);
    let mut walkers: Vec<Walker> = (0..n)
        .map(|i| {
            let (x, z) = if town {
                // Uniform over the disc of radius 25 around go-game's respawn point.
                let (r, a) = (25.0 * rng.next().sqrt(), rng.next() * std::f32::consts::TAU);
                (185.0 + r * a.cos(), 159.0 + r * a.sin())
            } else {
                (rng.next() * side, rng.next() * side)
            };
            Walker { id: i as EntityId + 1, x, z, dir: rng.next() * std::f32::consts::TAU }
        })
        .collect();
    for w in &walkers {
        scene.apply(Command::Join {
            id: w.id,
            name: format!("p{}", w.id),
            x: w.x,
            z: w.z,
            hp: 100,
            max_hp: 100,
            attack: 10,
            defence: 2,
        });
    }
    // The joins' spawns are not part of a steady tick.
    scene.tick();
    let warm = 20;
    let (mut times, mut updates, mut batches, mut out_bytes) = (Vec::with_capacity(ticks), 0u64, 0u64, 0u64);
    let mut position_of: HashMap<EntityId, usize> = HashMap::new();
    for t in 0..ticks + warm {
        let start = Instant::now();
        for w in walkers.iter_mut().filter(|w| (w.id as usize + t) % 2 == 0) {
            if rng.next() < 0.05 {
                w.dir = rng.next() * std::f32::consts::TAU;
            }
            let (nx, nz) = (w.x + 0.9 * w.dir.cos(), w.z + 0.9 * w.dir.sin());
            if nx <= bounds.min_x || nz <= bounds.min_z || nx >= bounds.max_x || nz >= bounds.max_z {
                w.dir += std::f32::consts::PI;
                continue;
            }
            (w.x, w.z) = (nx, nz);
            scene.apply(Command::Move { id: w.id, x: nx, z: nz });
        }
        let out = scene.tick();
        position_of.clear();
        let mut bytes = 0u64;
        let (mut u, mut b) = (0u64, 0u64);
        for (i, o) in out.into_iter().enumerate() {
            if let Out::Positions { to, moves } = o {
                u += (to.len() * moves.len()) as u64;
                b += 1;
                let site_list = moves
                    .into_iter()
                    .map(|(id, x, z)| pb::UserSite {
                        user_id: id as i64,
                        site: Some(pb::Site { x, z, ..Default::default() }),
                        action: String::new(),
                    })
                    .collect();
                bytes += (pb::MoveResp { site_list }.encode_to_vec().len() * to.len()) as u64;
                for r in to {
                    position_of.insert(r, i);
                }
            }
        }
        std::hint::black_box(&position_of);
        if t >= warm {
            times.push(start.elapsed().as_secs_f64() * 1e3);
            updates += u;
            batches += b;
            out_bytes += bytes;
        }
    }
    times.sort_by(f64::total_cmp);
    let p50 = percentile(&times, 0.5);
    serde_json::json!({
        "players": n,
        "position_every_ticks": every,
        "shape": if town { "town" } else { "open" },
        "crowd_cap": crowd_cap,
        "ticks": ticks,
        "tick_p50_ms": (p50 * 100.0).round() / 100.0,
        "tick_p99_ms": (percentile(&times, 0.99) * 100.0).round() / 100.0,
        "tick_max_ms": (times[times.len() - 1] * 100.0).round() / 100.0,
        "budget_used_at_p50": (p50 / 50.0 * 1000.0).round() / 1000.0,
        "entity_updates_per_tick": updates / ticks as u64,
        "batches_per_tick": batches / ticks as u64,
        "moveresp_bytes_per_tick": out_bytes / ticks as u64,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ns: Vec<usize> = args
        .get(1)
        .map_or("2000,5000,10000,20000", String::as_str)
        .split(',')
        .map(|s| s.trim().parse().expect("N,N,… players"))
        .collect();
    let ticks = args.get(2).map_or(200, |s| s.parse().expect("TICKS"));
    let every = args.get(3).map_or(1, |s| s.parse().expect("EVERY"));
    let town = match args.get(4).map_or("open", String::as_str) {
        "open" => false,
        "town" => true,
        other => panic!("SHAPE: open or town, not {other}"),
    };
    let crowd_cap = args.get(5).map_or(96, |s| s.parse().expect("CROWD_CAP"));
    for n in ns {
        println!("{}", run(n, ticks, every, town, crowd_cap));
    }
}
