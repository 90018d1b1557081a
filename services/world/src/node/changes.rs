//! One owner of a player's numbers at a time. While a player is online its node owns its
//! hit points (live, saved write-behind) and shows its level, experience, coins, attack and
//! defence; the game service's REST routes change those in the database and announce it
//! ([`PlayerChanged`] on the bus, read by every node). The node that holds the player reads
//! its numbers again, adds a heal to the live hit points, and tells the player and those who
//! see it. Offline, the database is the only owner and nothing is to be done.

use rsgame_proto::events::{PLAYER_CHANGED_TOPIC, PlayerChanged};

use super::*;

/// How many change ids a node remembers to spot a redelivery.
const REMEMBERED: usize = 4096;

impl World {
    /// Whether the change `id` is new here (0: no id, always new); remembers it.
    fn first_time(&self, id: u64) -> bool {
        if id == 0 {
            return true;
        }
        let mut seen = lock(&self.0.changes_seen);
        if seen.1.contains(&id) {
            return false;
        }
        seen.1.insert(id);
        seen.0.push_back(id);
        if seen.0.len() > REMEMBERED
            && let Some(old) = seen.0.pop_front()
        {
            seen.1.remove(&old);
        }
        true
    }

    /// Applies the game service's changes to players on this node, until the bus
    /// subscription ends.
    pub(super) async fn follow_changes(self, bus: Bus, node: String) {
        let w = &self;
        follow(&bus, PLAYER_CHANGED_TOPIC, &node, "player-changed", |e: PlayerChanged| async move {
            if w.first_time(e.id) {
                w.player_changed(PlayerId::new(e.user_id), e.hp_delta, &e.reason).await
            } else {
                tracing::debug!(user = e.user_id, "a player change delivered again: applied once");
            }
        })
        .await
    }

    /// `uid`'s numbers changed in the database: if it plays here, its scene takes the new
    /// ones and adds `hp_delta` to its live hit points.
    pub(super) async fn player_changed(&self, uid: PlayerId, hp_delta: i64, reason: &str) {
        // Under the account's transition lock: a room move in progress finishes first, so
        // the change reaches the room the player is in, with the numbers it has there.
        let _t = self.transition(uid).await;
        let Some(room) = lock(&self.0.players).get(&uid).map(|p| p.room) else { return };
        let pack = match self.0.game.pack(uid.get()).await {
            Ok(p) => p,
            Err(e) => {
                // Stored all the same; the player sees it at its next room change or login.
                tracing::warn!(user = %uid, reason, error = %e, "changed numbers not read");
                return;
            }
        };
        let stats = Stats::from_pack(&pack);
        // In a lockstep room nothing shows them; the next scene reads them at its join.
        if let Some(Handle::Scene(h)) = self.room_handle(room) {
            let id = uid.entity();
            if h.call(move |r, ctx| r.changed(ctx, id, stats, hp_delta)).await.is_err() {
                tracing::debug!(user = %uid, "scene ended before the player's change arrived");
            }
        }
        tracing::debug!(user = %uid, reason, hp_delta, "player's numbers changed");
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    #[tokio::test]
    async fn changes_made_elsewhere_reach_the_live_player_and_those_who_see_it() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=all").await;
        let mut b = f.login(2, "caps=all").await;
        let first: pb::PlayerStats = a.expect(ids::PLAYER_STATS).await;
        // A hit takes a's live hit points below the stored ones; then a potion is used.
        let a_id = PlayerId::new(1).entity();
        let Some(Handle::Scene(scene)) = f.world.room_handle(1000) else { panic!("scene 1000") };
        scene
            .call(move |r, _| {
                let v = r.scene.get(a_id).cloned().expect("a");
                r.scene.apply(Command::Stats { id: a_id, hp: 40, max_hp: v.max_hp, attack: 0, defence: 0 });
            })
            .await
            .expect("hurt");
        f.world.player_changed(PlayerId::new(1), 25, "use").await;
        let now: pb::PlayerStats = a.expect_where(ids::PLAYER_STATS, |s: &pb::PlayerStats| s.hp != first.hp).await;
        assert_eq!(now.hp, 65, "the heal is added to the live hit points, not the stored ones");
        // b, who sees a, is told how a stands.
        b.expect_where(ids::SPAWN, |s: &pb::SpawnResp| s.list.iter().any(|e| e.id == 1 && e.hp == 65)).await;
        // A heal never passes the maximum; someone not here changes nothing.
        f.world.player_changed(PlayerId::new(1), 10_000, "use").await;
        let full: pb::PlayerStats = a.expect_where(ids::PLAYER_STATS, |s: &pb::PlayerStats| s.hp != 65).await;
        assert_eq!(full.hp, full.max_hp);
        f.world.player_changed(PlayerId::new(7), 10, "use").await;
    }
}
