//! Leaderboards in Redis sorted sets, used when the cache is Redis: updated after every
//! committed change of score, level or exp, read in O(log n); rebuilt from the database when
//! the sets are empty (a fresh or flushed Redis). The database stays the truth: a Redis error
//! falls back to the database query.
//!
//! Ties are broken as the database query breaks them: the score board by level, the level
//! board by exp, both then by the smaller account id. The tie-break is folded into the sorted
//! set's score (exactly: the values stay below 2^53), and the member is `i64::MAX - id`
//! zero-padded, so Redis's reverse member order among equal scores is ascending id.

use rsgame_store::{Cache, Db};
use sea_query::{ExprTrait as _, Query};

use crate::logic::{Player, RankBy, RankEntry};

const SCORE: &str = "game:rank:score";
const LEVEL: &str = "game:rank:level";

fn member(user_id: i64) -> String {
    format!("{:019}", i64::MAX - user_id)
}

fn user_of(m: &str) -> Option<i64> {
    m.parse::<i64>().ok().map(|v| i64::MAX - v)
}

/// Score board: score, then level (under 1024).
fn score_value(score: i64, level: i64) -> f64 {
    (score as f64) * 1024.0 + level.clamp(0, 1023) as f64
}

/// Level board: level, then exp (under 2^40).
fn level_value(level: i64, exp: i64) -> f64 {
    (level as f64) * 1_099_511_627_776.0 + exp.clamp(0, (1 << 40) - 1) as f64
}

fn decode(by: RankBy, v: f64) -> i64 {
    match by {
        RankBy::Score => (v / 1024.0).floor() as i64,
        RankBy::Level => (v / 1_099_511_627_776.0).floor() as i64,
    }
}

fn key(by: RankBy) -> &'static str {
    match by {
        RankBy::Score => SCORE,
        RankBy::Level => LEVEL,
    }
}

/// The two boards in Redis.
#[derive(Clone)]
pub(crate) struct RedisRanks {
    cache: Cache,
}

impl RedisRanks {
    pub(crate) fn new(cache: Cache) -> RedisRanks {
        RedisRanks { cache }
    }

    /// Puts a player's current values on both boards.
    pub(crate) async fn update(&self, p: &Player) -> Result<(), rsgame_store::StoreError> {
        self.cache.zset_add(SCORE, &member(p.user_id), score_value(p.score, p.level)).await?;
        self.cache.zset_add(LEVEL, &member(p.user_id), level_value(p.level, p.exp)).await
    }

    /// Fills the boards from the database when Redis holds fewer players than it (a fresh or
    /// flushed Redis, or one enabled on an existing database: a few writes may have landed
    /// first, so an empty check is not enough).
    pub(crate) async fn ensure(&self, db: &Db) -> Result<(), rsgame_kit::Error> {
        let count =
            Query::select().expr_as(sea_query::Expr::col("user_id").count(), "n").from("game_player").to_owned();
        let players = db.fetch_optional(&count).await?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
        if self.cache.zset_len(SCORE).await? as i64 >= players && self.cache.zset_len(LEVEL).await? as i64 >= players {
            return Ok(());
        }
        let q = Query::select().columns(["user_id", "score", "level", "exp"]).from("game_player").to_owned();
        for r in db.fetch_all(&q).await? {
            let u = r.i64("user_id")?;
            let (score, level, exp) = (r.i64("score")?, r.i64("level")?, r.i64("exp")?);
            self.cache.zset_add(SCORE, &member(u), score_value(score, level)).await?;
            self.cache.zset_add(LEVEL, &member(u), level_value(level, exp)).await?;
        }
        Ok(())
    }

    /// A page, 1-based.
    pub(crate) async fn page(&self, by: RankBy, page: i64, size: i64) -> Result<Vec<RankEntry>, rsgame_kit::Error> {
        let start = page.saturating_sub(1).saturating_mul(size);
        let rows = self.cache.zset_rev_range(key(by), start, start + size - 1).await?;
        Ok(rows
            .into_iter()
            .enumerate()
            .filter_map(|(i, (m, v))| {
                Some(RankEntry { rank: start + i as i64 + 1, user_id: user_of(&m)?, value: decode(by, v) })
            })
            .collect())
    }

    /// A player's 1-based rank and value.
    pub(crate) async fn of(&self, by: RankBy, p: &Player) -> Result<Option<RankEntry>, rsgame_kit::Error> {
        let Some(r) = self.cache.zset_rev_rank(key(by), &member(p.user_id)).await? else { return Ok(None) };
        let value = if by == RankBy::Score { p.score } else { p.level };
        Ok(Some(RankEntry { rank: r as i64 + 1, user_id: p.user_id, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_members_keep_the_database_order() {
        assert!(score_value(80, 1) > score_value(79, 9));
        assert!(score_value(80, 2) > score_value(80, 1), "ties by level");
        assert_eq!(decode(RankBy::Score, score_value(123_456, 7)), 123_456);
        assert_eq!(decode(RankBy::Level, level_value(11, 2_700)), 11);
        assert!(member(22) > member(23), "reverse member order is ascending id");
        assert_eq!(user_of(&member(42)), Some(42));
    }
}
