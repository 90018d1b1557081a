//! The battle simulation: plain, deterministic code. The same seed, player stats and level
//! give the same record on every machine (its own xorshift generator, integer arithmetic
//! only), so a stored record can be replayed and checked. The game draws each battle's seed
//! at random on the server and stores it with the record.

use serde::{Deserialize, Serialize};

use crate::data::Enemy;

/// One side of a fight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fighter {
    /// Name.
    pub name: String,
    /// Hit points at the start.
    pub hp: i64,
    /// Attack.
    pub attack: i64,
    /// Defence.
    pub defence: i64,
}

/// Who hit whom for how much: go-game's `warInfo` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    /// 1-based round.
    pub round: u32,
    /// The attacker's name.
    pub attacker: String,
    /// The target's name.
    pub target: String,
    /// Damage dealt.
    pub damage: i64,
    /// Whether it was a critical hit.
    pub crit: bool,
    /// The target's hp after the hit.
    pub target_hp: i64,
}

/// A whole fight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarInfo {
    /// The seed it ran from.
    pub seed: u64,
    /// Whether the player won.
    pub win: bool,
    /// Rounds fought.
    pub rounds: u32,
    /// The player's hp at the end.
    pub player_hp: i64,
    /// Every hit, in order.
    pub hits: Vec<Hit>,
}

/// A fight that has not ended after this many rounds is lost.
pub const MAX_ROUNDS: u32 = 200;

/// xorshift64*: small, fast, and fixed here so records never change with a library.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 spreads every bit of the seed over the state; zero is xorshift's one bad
        // state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Damage of one hit: attack less half the defence (at least 1), ±10 %, and a 10 % chance of
/// a critical hit doing half again.
fn damage(rng: &mut Rng, attack: i64, defence: i64) -> (i64, bool) {
    let base = (attack - defence / 2).max(1);
    let spread = 90 + rng.below(21) as i64; // 90..=110 %
    let crit = rng.below(100) < 10;
    let d = (base * spread / 100).max(1);
    (if crit { d * 3 / 2 } else { d }, crit)
}

/// Runs the fight: each round the player hits the first standing enemy, then every standing
/// enemy hits the player. The player wins when no enemy stands.
pub fn simulate(seed: u64, player: &Fighter, enemies: &[Enemy]) -> WarInfo {
    let mut rng = Rng::new(seed);
    let mut hp = player.hp;
    let mut foes: Vec<(String, i64, i64, i64)> =
        enemies.iter().map(|e| (e.name.clone(), e.hp, e.attack, e.defence)).collect();
    let mut hits = Vec::new();
    let mut round = 0;
    while round < MAX_ROUNDS && hp > 0 && foes.iter().any(|f| f.1 > 0) {
        round += 1;
        if let Some(target) = foes.iter_mut().find(|f| f.1 > 0) {
            let (d, crit) = damage(&mut rng, player.attack, target.3);
            target.1 = (target.1 - d).max(0);
            hits.push(Hit {
                round,
                attacker: player.name.clone(),
                target: target.0.clone(),
                damage: d,
                crit,
                target_hp: target.1,
            });
        }
        for foe in foes.iter().filter(|f| f.1 > 0) {
            if hp <= 0 {
                break;
            }
            let (d, crit) = damage(&mut rng, foe.2, player.defence);
            hp = (hp - d).max(0);
            hits.push(Hit {
                round,
                attacker: foe.0.clone(),
                target: player.name.clone(),
                damage: d,
                crit,
                target_hp: hp,
            });
        }
    }
    let win = hp > 0 && foes.iter().all(|f| f.1 == 0);
    WarInfo { seed, win, rounds: round, player_hp: hp, hits }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hero(attack: i64) -> Fighter {
        Fighter { name: "hero".into(), hp: 120, attack, defence: 4 }
    }

    fn slimes() -> Vec<Enemy> {
        (0..2).map(|_| Enemy { name: "Slime".into(), hp: 30, attack: 6, defence: 1 }).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_fight() {
        let a = simulate(42, &hero(12), &slimes());
        let b = simulate(42, &hero(12), &slimes());
        assert_eq!(a, b);
        assert!(a.win);
        assert!(a.hits.iter().any(|h| h.attacker == "Slime"), "enemies hit back");
        let c = simulate(43, &hero(12), &slimes());
        assert_ne!(a.hits, c.hits, "another seed, another fight");
    }

    #[test]
    fn a_weak_player_loses_and_fights_end() {
        let boss = vec![Enemy { name: "Dragon".into(), hp: 5000, attack: 80, defence: 50 }];
        let w = simulate(7, &hero(10), &boss);
        assert!(!w.win);
        assert_eq!(w.player_hp, 0);
        let stalemate = vec![Enemy { name: "Wall".into(), hp: i64::MAX / 4, attack: 0, defence: 1000 }];
        let tank = Fighter { hp: 1_000_000, ..hero(1) };
        let w = simulate(7, &tank, &stalemate);
        assert!(!w.win && w.rounds == MAX_ROUNDS, "bounded");
    }
}
