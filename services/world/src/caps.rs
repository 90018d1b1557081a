//! What a client asked to be sent beyond go-game's protocol (docs/protocol.md,
//! "Capabilities").
//!
//! A client that logs in as go-game's does — no `caps=` in `GameLogin.param` — is served
//! exactly go-game's protocol: only go-game's message ids, and `MoveResp` entries for players
//! only. rsgame's own clients list what they want:
//! `caps=entities,stats,friends,errors,lockstep,inbox,guild,moderation` (or `caps=all`), alone or among other
//! `key=value` pairs separated by `;` or `&`. Unknown names are ignored, so an older server
//! serves a newer client what it knows.

/// A set of capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(u8);

impl Caps {
    /// go-game's protocol alone.
    pub const NONE: Caps = Caps(0);
    /// Spawn and despawn pushes (200210, 200211), monsters in `MoveResp` and the
    /// `AttackResp`s about them, kill rewards (AttackResp status 202).
    pub const ENTITIES: Caps = Caps(1);
    /// `PlayerStats` pushes (200212): the player's own hp, level, exp, coins.
    pub const STATS: Caps = Caps(2);
    /// Friends' online and offline pushes (200102).
    pub const FRIENDS: Caps = Caps(4);
    /// `ErrorResp` (9000) for refused messages and before a close.
    pub const ERRORS: Caps = Caps(8);
    /// Lockstep rooms (RoomList types 3 and 4, their frames): hidden from and closed to
    /// clients without it.
    pub const LOCKSTEP: Caps = Caps(16);
    /// `MailNotice` pushes (200450): something arrived in the inbox.
    pub const INBOX: Caps = Caps(32);
    /// `GuildNotice` pushes (200420): the player's guild changed.
    pub const GUILD: Caps = Caps(64);
    /// `ChatRemoved` pushes (200007): an operator removed a chat line.
    pub const MODERATION: Caps = Caps(128);
    /// Everything above.
    pub const ALL: Caps = Caps(255);

    const NAMES: [(&'static str, Caps); 9] = [
        ("entities", Caps::ENTITIES),
        ("stats", Caps::STATS),
        ("friends", Caps::FRIENDS),
        ("errors", Caps::ERRORS),
        ("lockstep", Caps::LOCKSTEP),
        ("inbox", Caps::INBOX),
        ("guild", Caps::GUILD),
        ("moderation", Caps::MODERATION),
        ("all", Caps::ALL),
    ];

    /// The capabilities a `GameLogin.param` asks for.
    pub fn parse(param: &str) -> Caps {
        let mut caps = Caps::NONE;
        let list = param.split([';', '&']).filter_map(|pair| pair.trim().strip_prefix("caps="));
        for name in list.flat_map(|l| l.split(',')) {
            if let Some((_, c)) = Caps::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim())) {
                caps.0 |= c.0;
            }
        }
        caps
    }

    /// Whether every capability of `c` is in the set.
    pub fn has(self, c: Caps) -> bool {
        self.0 & c.0 == c.0
    }
}

#[cfg(test)]
mod tests {
    use super::Caps;

    #[test]
    fn a_go_game_login_asks_for_nothing_and_rsgame_clients_name_what_they_want() {
        assert_eq!(Caps::parse(""), Caps::NONE);
        assert_eq!(Caps::parse("web"), Caps::NONE, "go-game's free-form param means nothing here");
        assert_eq!(Caps::parse("caps=all"), Caps::ALL);
        let c = Caps::parse("v=3;caps=entities, stats&x=1");
        assert!(c.has(Caps::ENTITIES) && c.has(Caps::STATS));
        assert!(!c.has(Caps::FRIENDS) && !c.has(Caps::ERRORS));
        assert_eq!(Caps::parse("caps=teleport,ERRORS"), Caps::ERRORS, "unknown names are ignored");
        assert!(Caps::ALL.has(Caps::FRIENDS) && !Caps::NONE.has(Caps::FRIENDS));
    }
}
