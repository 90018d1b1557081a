//! Parties: players who play together — queued for a match as one ticket by their leader,
//! with a chat of their own. The rules live here, without sockets or stores: who may invite,
//! join, leave and kick, and who leads when the leader leaves.
//!
//! A party outlives a member's dropped connection (the reconnect grace); a member leaves
//! when its stay ends (logout, the grace over, its sessions ended). The party closes with
//! its last member.
//!
//! - `store`: where parties are kept (in process, or in Redis for every game node), each
//!   change one compare-and-set on the party's version.

use rsgame_kit::{Code, Error, Result};
use rsgame_proto::pb;
use serde::{Deserialize, Serialize};

use crate::matchmaker::Member;

pub mod store;

/// The largest party.
pub const MAX_SIZE: u32 = 8;
/// How long an invitation lasts.
pub const INVITE_MS: i64 = 5 * 60 * 1000;
/// Invitations a party holds at once (the oldest go first).
const MAX_INVITES: usize = 16;

/// A party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    /// Unique.
    pub id: String,
    /// Counts changes from 1: each write must name the version it read (0: none yet).
    pub version: u64,
    /// The member who queues the party and may kick.
    pub leader: i64,
    /// In the order they joined.
    pub members: Vec<Member>,
    /// Anyone may join by its id; else only the invited.
    pub open: bool,
    /// The most members.
    pub max: u32,
    /// Invited players and when their invitation expires (ms since the epoch).
    #[serde(default)]
    pub invites: Vec<(i64, i64)>,
}

impl Party {
    /// A party of one, `leader`. `max` 0 is [`MAX_SIZE`].
    pub fn new(id: String, leader: Member, open: bool, max: i32) -> Result<Party> {
        let max = if max == 0 { MAX_SIZE as i32 } else { max };
        if !(2..=MAX_SIZE as i32).contains(&max) {
            return Err(Error::bad_param(format!("maxSize: 2 to {MAX_SIZE}, or 0")));
        }
        Ok(Party {
            id,
            version: 1,
            leader: leader.user,
            members: vec![leader],
            open,
            max: max as u32,
            invites: Vec::new(),
        })
    }

    /// Whether `user` is a member.
    pub fn has(&self, user: i64) -> bool {
        self.members.iter().any(|m| m.user == user)
    }

    /// The members' ids.
    pub fn users(&self) -> Vec<i64> {
        self.members.iter().map(|m| m.user).collect()
    }

    fn member_only(&self, user: i64) -> Result<()> {
        if self.has(user) { Ok(()) } else { Err(Error::msg(Code::Forbidden, "not a member of this party")) }
    }

    /// `by`, a member, invites `user` until `now + INVITE_MS`.
    pub fn invite(&mut self, by: i64, user: i64, now: i64) -> Result<()> {
        self.member_only(by)?;
        if self.has(user) {
            return Err(Error::msg(Code::Failed, "already a member"));
        }
        self.invites.retain(|(u, until)| *u != user && *until > now);
        if self.invites.len() >= MAX_INVITES {
            self.invites.remove(0);
        }
        self.invites.push((user, now + INVITE_MS));
        Ok(())
    }

    /// `who` joins: the party is open or invited it, and has room.
    pub fn join(&mut self, who: Member, now: i64) -> Result<()> {
        if self.has(who.user) {
            return Err(Error::msg(Code::Failed, "already a member"));
        }
        let invited = self.invites.iter().any(|(u, until)| *u == who.user && *until > now);
        if !self.open && !invited {
            return Err(Error::msg(Code::Forbidden, "this party is by invitation"));
        }
        if self.members.len() as u32 >= self.max {
            return Err(Error::msg(Code::Forbidden, "the party is full"));
        }
        self.invites.retain(|(u, _)| *u != who.user);
        self.members.push(who);
        Ok(())
    }

    /// `user` leaves; the longest member leads when the leader leaves. False when the party
    /// is now empty.
    pub fn leave(&mut self, user: i64) -> Result<bool> {
        self.member_only(user)?;
        self.members.retain(|m| m.user != user);
        if self.leader == user
            && let Some(next) = self.members.first()
        {
            self.leader = next.user;
        }
        Ok(!self.members.is_empty())
    }

    /// The leader `by` removes `user`.
    pub fn kick(&mut self, by: i64, user: i64) -> Result<()> {
        if self.leader != by {
            return Err(Error::msg(Code::Forbidden, "only the party's leader can remove members"));
        }
        if by == user {
            return Err(Error::bad_param("userId: another member (leave to go yourself)"));
        }
        if !self.has(user) {
            return Err(Error::msg(Code::NotFound, "not a member of this party"));
        }
        self.members.retain(|m| m.user != user);
        Ok(())
    }

    /// The party as clients see it, after `event` about `subject`.
    pub fn to_pb(&self, event: pb::PartyEvent, subject: i64) -> pb::PartyUpdate {
        pb::PartyUpdate {
            party_id: self.id.clone(),
            event: event as i32,
            subject,
            leader: self.leader,
            members: self
                .members
                .iter()
                .map(|m| pb::PartyMember { user_id: m.user, nickname: m.nickname.clone() })
                .collect(),
            open: self.open,
            max_size: self.max as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(user: i64) -> Member {
        Member { user, nickname: format!("p{user}") }
    }

    #[test]
    fn invitations_open_a_closed_party_and_expire() {
        let mut p = Party::new("p".into(), m(1), false, 3).expect("party");
        assert_eq!(p.join(m(2), 0).expect_err("closed").code(), Code::Forbidden);
        assert_eq!(p.invite(9, 2, 0).expect_err("not a member").code(), Code::Forbidden);
        p.invite(1, 2, 0).expect("invited");
        p.invite(1, 3, 0).expect("invited");
        assert_eq!(p.join(m(3), INVITE_MS + 1).expect_err("expired").code(), Code::Forbidden);
        p.join(m(2), 10).expect("joins by invitation");
        assert_eq!(p.join(m(2), 10).expect_err("twice").code(), Code::Failed);
        p.invite(2, 4, 20).expect("a member invites");
        p.join(m(4), 30).expect("third");
        p.invite(1, 5, 40).expect("invited");
        assert_eq!(p.join(m(5), 50).expect_err("full").code(), Code::Forbidden);
        assert_eq!(p.users(), [1, 2, 4]);
    }

    #[test]
    fn the_longest_member_leads_when_the_leader_goes_and_only_the_leader_kicks() {
        let mut p = Party::new("p".into(), m(1), true, 0).expect("party");
        assert_eq!(p.max, MAX_SIZE);
        for u in 2..=4 {
            p.join(m(u), 0).expect("open");
        }
        assert_eq!(p.kick(2, 3).expect_err("not the leader").code(), Code::Forbidden);
        assert!(p.kick(1, 1).is_err(), "not oneself");
        p.kick(1, 3).expect("kicked");
        assert!(p.leave(1).expect("left"));
        assert_eq!(p.leader, 2, "the longest member leads");
        assert!(p.leave(2).expect("left"));
        assert!(!p.leave(4).expect("left"), "empty: the party closes");
        assert!(Party::new("p".into(), m(1), true, 9).is_err(), "at most 8");
        assert!(Party::new("p".into(), m(1), true, 1).is_err(), "at least 2");
    }
}
