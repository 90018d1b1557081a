//! Inbox notices: the game service stores a message for a player and announces it
//! ([`MailArrived`] on the bus, read by every node); the node that holds the player, if any,
//! pushes a `MailNotice` (200450) to its client, when the client asked for them (capability
//! `inbox`). The message itself waits in the database: a notice lost on the way costs only
//! the live push.

use rsgame_proto::events::{MAIL_ARRIVED_TOPIC, MailArrived};

use super::*;

impl World {
    /// Pushes inbox notices to players on this node, until the bus subscription ends.
    pub(super) async fn follow_mail(self, bus: Bus, node: String) {
        follow(&bus, MAIL_ARRIVED_TOPIC, &node, "mail-arrived", |e: MailArrived| {
            self.mail_arrived(&e);
            async {}
        })
        .await
    }

    /// Tells `e.user_id` (0: every player: mail to everyone, whose copy each makes when it
    /// lists its inbox), if it plays here and its client takes inbox notices, that a message
    /// arrived.
    pub(super) fn mail_arrived(&self, e: &MailArrived) {
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            let with = |p: &Online| p.caps.has(Caps::INBOX).then(|| p.session.clone()).flatten();
            if e.user_id == 0 {
                players.values().filter_map(with).collect()
            } else {
                players.get(&PlayerId::new(e.user_id)).and_then(with).into_iter().collect()
            }
        };
        let notice =
            pb::MailNotice { id: e.mail_id, kind: e.kind.clone(), title: e.title.clone(), attachment: e.attachment };
        // Nothing to undo if it cannot be sent: the connection is closing, and the message
        // is listed at the next login.
        send_many(&sessions, ids::MAIL_NOTICE, &notice);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    #[tokio::test]
    async fn a_notice_reaches_the_player_if_its_client_asked_for_it() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=all").await;
        let mut go_game = f.login(2, "").await;
        let arrived = |user_id| MailArrived {
            user_id,
            mail_id: 9,
            kind: "gm".into(),
            title: "Sorry for the outage".into(),
            attachment: true,
        };
        f.world.mail_arrived(&arrived(1));
        let n: pb::MailNotice = a.expect(ids::MAIL_NOTICE).await;
        assert_eq!((n.id, n.kind.as_str(), n.title.as_str(), n.attachment), (9, "gm", "Sorry for the outage", true));
        // A go-game client never hears of it; someone not here changes nothing.
        f.world.mail_arrived(&arrived(2));
        f.world.mail_arrived(&arrived(7));
        // The push is queued before mail_arrived returns: what the client got is already there.
        let got = go_game.ids_within(Duration::from_millis(1)).await;
        assert!(!got.contains(&ids::MAIL_NOTICE), "{got:?}");
        // Mail to everyone: every client that takes notices hears of it.
        f.world.mail_arrived(&arrived(0));
        let _: pb::MailNotice = a.expect(ids::MAIL_NOTICE).await;
        assert!(!go_game.ids_within(Duration::from_millis(1)).await.contains(&ids::MAIL_NOTICE));
    }
}
