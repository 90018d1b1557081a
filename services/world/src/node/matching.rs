//! The matchmaker on a game node: MatchAdd and MatchRemove, a player's ticket dropped when it
//! disconnects or logs out, the passes (run by the node holding the queue's lease), MatchFound
//! and MatchTimeout pushed to the players here and sent over the bus for the players on other
//! nodes, and a formed match's room, opened on the node chosen for it when the first of its
//! players enters (its seats: only the match's players, until they expire).

use super::*;
use crate::matchmaker::queue::{LocalQueue, MatchRecord, Queue, RedisQueue};
use crate::matchmaker::{self, MATCH_ROOM_BASE, Member, Mode, RoomKind, Ticket};

/// The matchmaker's part of a world.
pub(super) struct Matching {
    pub(super) queue: Arc<dyn Queue>,
    modes: HashMap<String, Mode>,
    /// This node's id for the queue's lease and the match rooms it hosts ("local" alone).
    node: String,
    seq: AtomicU64,
    /// Players here holding a ticket: a disconnect asks the queue only for those.
    queued: Mutex<HashSet<PlayerId>>,
}

impl Matching {
    /// The queue for this node: Redis when the node is one of several (the queue they
    /// share), in process otherwise.
    pub(super) fn new(modes: Vec<Mode>, cluster: Option<&Cluster>) -> Matching {
        let shared = cluster.and_then(|c| RedisQueue::new(c.cache()));
        if cluster.is_some() && shared.is_none() {
            tracing::warn!("game nodes without a Redis cache: each node matches only its own players");
        }
        let queue: Arc<dyn Queue> = match shared {
            Some(q) => Arc::new(q),
            None => Arc::new(LocalQueue::default()),
        };
        Matching {
            queue,
            modes: modes.into_iter().map(|m| (m.name.clone(), m)).collect(),
            node: cluster.map_or_else(|| "local".to_owned(), |c| c.node().to_owned()),
            seq: AtomicU64::new(1),
            queued: Mutex::new(HashSet::new()),
        }
    }

    pub(super) fn has_modes(&self) -> bool {
        !self.modes.is_empty()
    }
}

fn found(rec: &MatchRecord, ticket: &str, here: bool, mode: Option<&Mode>) -> pb::MatchFound {
    pb::MatchFound {
        match_id: rec.id.clone(),
        mode: rec.mode.clone(),
        room_id: rec.room,
        room_type: mode.map_or(pb::RoomType::Lockstep, Mode::room_type) as i32,
        node_id: rec.node.clone(),
        url: rec.url.clone(),
        here,
        players: rec.players().map(|p| pb::MatchPlayer { user_id: p.user, nickname: p.nickname.clone() }).collect(),
        seat_expires_at: rec.seats_until,
        ticket: ticket.to_owned(),
    }
}

impl World {
    pub(super) async fn match_add(self, session: Session, msg: pb::MatchAdd) -> Result<()> {
        let uid = World::me(&session)?;
        let m = &self.0.matching;
        if let Some(mode) = m.modes.get(&msg.mode)
            && mode.room == RoomKind::Lockstep
            && !session.get::<Caps>().unwrap_or_default().has(Caps::LOCKSTEP)
        {
            return Err(Error::bad_param(format!(
                "mode: {} plays in lockstep rooms: log in with caps=lockstep",
                mode.name
            )));
        }
        // A party is queued by its leader, as one ticket: its players land in one match.
        let players = match self.party_of(uid).await? {
            Some(p) if p.leader != uid.get() => {
                return Err(Error::msg(Code::Forbidden, "the party's leader queues the party"));
            }
            Some(p) => p.members,
            None => {
                let nickname = lock(&self.0.players).get(&uid).map(|p| p.profile.nickname.clone()).unwrap_or_default();
                vec![Member { user: uid.get(), nickname }]
            }
        };
        let id = format!("{}-{}", self.0.env.run, m.seq.fetch_add(1, Ordering::Relaxed));
        let ticket = Ticket::new(id, &msg, &m.modes, players, unix_ms())?;
        m.queue.add(&ticket).await?;
        {
            let here = lock(&self.0.players);
            let mut queued = lock(&m.queued);
            queued.extend(ticket.players.iter().map(|p| PlayerId::new(p.user)).filter(|u| here.contains_key(u)));
        }
        tracing::debug!(user = %uid, ticket = %ticket.id, mode = %ticket.mode, "queued for a match");
        session.push(
            ids::reply(ids::MATCH_ADD),
            &pb::MatchTicket { ticket: ticket.id, mode: ticket.mode, expires_at: ticket.expires_ms },
        );
        Ok(())
    }

    pub(super) async fn match_remove(self, session: Session, msg: pb::MatchRemove) -> Result<()> {
        let uid = World::me(&session)?;
        let m = &self.0.matching;
        match m.queue.remove(&msg.ticket, uid.get()).await? {
            Some(t) => {
                lock(&m.queued).remove(&uid);
                session.push(ids::reply(ids::MATCH_REMOVE), &pb::MatchRemoveResp { ticket: t.id });
                Ok(())
            }
            None => Err(Error::msg(Code::NotFound, "no such ticket: matched, timed out or not yours")),
        }
    }

    /// Takes the player's ticket out of the queue (it disconnected or logged out): its own,
    /// or its party's — a party whose leader is on another node queued it there.
    pub(super) async fn unqueue(&self, uid: PlayerId) {
        let m = &self.0.matching;
        let hinted = lock(&m.queued).remove(&uid);
        if !hinted && !matches!(self.0.parties.party_of(uid.get()).await, Ok(Some(_))) {
            return;
        }
        match m.queue.remove_player(uid.get()).await {
            Ok(Some(t)) => tracing::debug!(user = %uid, ticket = %t.id, "ticket dropped: its player left"),
            Ok(None) => {}
            Err(e) => tracing::warn!(user = %uid, error = %e, "ticket not dropped: it may still be matched"),
        }
    }

    /// Runs the passes while this node holds the queue's lease.
    pub(super) async fn run_matchmaker(self) {
        let every = Duration::from_millis(self.0.cfg.match_interval_ms.max(50));
        // Long enough to survive a slow pass; short enough that a dead leader is replaced
        // within seconds.
        let lease = (every * 4).max(Duration::from_secs(2));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let m = &self.0.matching;
            if !m.queue.lead(&m.node, lease).await {
                continue;
            }
            if let Err(e) = self.match_pass().await {
                tracing::warn!(error = %e, "matchmaking pass failed: the tickets wait for the next");
            }
        }
    }

    /// One pass: matches formed and told, timed-out tickets dropped and told.
    pub(super) async fn match_pass(&self) -> Result<()> {
        let m = &self.0.matching;
        let started = Instant::now();
        let place = || match &self.0.cluster {
            Some(c) => c.room_node(),
            None => (m.node.clone(), String::new()),
        };
        let out = matchmaker::run_pass(m.queue.as_ref(), &m.modes, unix_ms(), &place).await?;
        metrics::histogram!(crate::metrics::MATCH_PASS_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::gauge!(crate::metrics::MATCH_TICKETS).set(out.queued as f64);
        for (mode, waited) in out.waits {
            metrics::histogram!(crate::metrics::MATCH_WAIT_SECONDS, "mode" => mode).record(waited);
        }
        for t in out.expired {
            metrics::counter!(crate::metrics::MATCH_TIMEOUTS, "mode" => t.mode.clone()).increment(1);
            let users: Vec<i64> = t.players.iter().map(|p| p.user).collect();
            self.tell_match(What::MatchTimedOut { ticket: t.id, mode: t.mode, users }).await;
        }
        for rec in out.formed {
            metrics::counter!(crate::metrics::MATCHES, "mode" => rec.mode.clone()).increment(1);
            tracing::info!(r#match = %rec.id, mode = %rec.mode, room = rec.room, node = %rec.node, players = rec.players().count(), "match formed");
            self.tell_match(What::Matched(rec)).await;
        }
        Ok(())
    }

    /// Tells the players here, then the other nodes for theirs.
    async fn tell_match(&self, what: What) {
        self.on_match_news(&what);
        if let Some(c) = &self.0.cluster {
            c.publish(what).await;
        }
    }

    /// A match formed or a ticket timed out: pushed to its players on this node.
    pub(super) fn on_match_news(&self, what: &What) {
        let m = &self.0.matching;
        match what {
            What::Matched(rec) => {
                let here = rec.node == m.node;
                let players = lock(&self.0.players);
                let mut queued = lock(&m.queued);
                for (ticket, members) in &rec.tickets {
                    let msg = found(rec, ticket, here, m.modes.get(&rec.mode));
                    for p in members {
                        let uid = PlayerId::new(p.user);
                        queued.remove(&uid);
                        if let Some(s) = players.get(&uid).and_then(|p| p.session.as_ref()) {
                            s.push(ids::MATCH_FOUND, &msg);
                        }
                    }
                }
            }
            What::MatchTimedOut { ticket, mode, users } => {
                let players = lock(&self.0.players);
                let mut queued = lock(&m.queued);
                let msg = pb::MatchTimeout { ticket: ticket.clone(), mode: mode.clone() };
                for u in users {
                    let uid = PlayerId::new(*u);
                    queued.remove(&uid);
                    if let Some(s) = players.get(&uid).and_then(|p| p.session.as_ref()) {
                        s.push(ids::MATCH_TIMEOUT, &msg);
                    }
                }
            }
            _ => {}
        }
    }

    /// Opens a formed match's room here on the first entry of one of its players. Nothing
    /// when the room is open already or `room` is not a match's.
    pub(super) async fn open_match_room(&self, uid: PlayerId, room: i64) -> Result<()> {
        if room < MATCH_ROOM_BASE || lock(&self.0.rooms).contains_key(&room) {
            return Ok(());
        }
        let m = &self.0.matching;
        let gone = || Error::msg(Code::NotFound, "no such room: the match's seats have expired");
        let rec = m.queue.get_match(room).await?.ok_or_else(gone)?;
        if rec.node != m.node {
            return Err(Error::msg(Code::NotFound, format!("this match plays on node {}", rec.node)));
        }
        if !rec.players().any(|p| p.user == uid.get()) {
            return Err(Error::msg(Code::Forbidden, "only the match's players may enter its room"));
        }
        let mode = m.modes.get(&rec.mode).ok_or_else(gone)?;
        let seats: BTreeSet<PlayerId> = rec.players().map(|p| PlayerId::new(p.user)).collect();
        let template = mode.scene.and_then(|s| self.0.templates.get(&s).cloned());
        let max_users = seats.len() as i32;
        let (handle, spawn) = self.room_task(room, mode.room == RoomKind::Lockstep, max_users, template);
        let entry = Room {
            name: format!("{} {}", rec.mode, rec.id),
            kind_code: mode.room_type() as i32,
            password: None,
            max_users,
            owner: seats.first().copied().unwrap_or(uid),
            permanent: false,
            members: BTreeSet::new(),
            handle,
            chat: VecDeque::new(),
            spawn,
            spawn_radius: 25.0,
            seats: Some(Seats { players: seats, until: rec.seats_until, opened: unix_ms(), record: rec.clone() }),
        };
        let opened = {
            let mut rooms = lock(&self.0.rooms);
            if rooms.contains_key(&room) {
                // Another of its players opened it meanwhile: this task ends with `entry`.
                false
            } else if rooms.values().filter(|r| !r.permanent).count() >= self.0.cfg.max_rooms {
                return Err(Error::msg(Code::TooManyRequests, "too many rooms on this node"));
            } else {
                rooms.insert(room, entry);
                true
            }
        };
        if opened {
            metrics::gauge!(crate::metrics::ROOMS).increment(1.0);
            tracing::info!(room, r#match = %rec.id, "match room opened");
        }
        Ok(())
    }
}

impl World {
    /// A match's room closed (its last player left): each of its players gets the match's
    /// record in its inbox (kind `match`; once per match, by its reference). Sent in the
    /// background: a leaving player does not wait for it; a failure is logged.
    pub(super) fn match_over(&self, seats: Seats) {
        let game = self.0.game.clone();
        tokio::spawn(async move {
            let rec = seats.record;
            let names: Vec<String> = rec.players().map(|p| p.nickname.clone()).collect();
            let lasted = (unix_ms() - seats.opened).max(0) / 1000;
            for p in rec.players() {
                let mail = rsgame_game::inbox::NewMail {
                    user_id: p.user,
                    kind: "match".into(),
                    title: format!("Your {} match is over", rec.mode),
                    body: format!(
                        "Match {} ({}): {}. It lasted {} min {} s.",
                        rec.id,
                        rec.mode,
                        names.join(", "),
                        lasted / 60,
                        lasted % 60
                    ),
                    reference: format!("match:{}", rec.id),
                    ..Default::default()
                };
                if let Err(e) = game.send_mail(mail).await {
                    tracing::warn!(user = p.user, r#match = %rec.id, error = %e, "match record not mailed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    fn duel(rating: f64) -> pb::MatchAdd {
        matchmaker::window("duel", "rating", rating, 100.0)
    }

    async fn add(f: &Fixture, s: &Session, msg: pb::MatchAdd) -> std::result::Result<(), Code> {
        f.world.clone().match_add(s.clone(), msg).await.map_err(|e| e.code())
    }

    async fn remove(f: &Fixture, s: &Session, ticket: &str) -> std::result::Result<(), Code> {
        f.world.clone().match_remove(s.clone(), pb::MatchRemove { ticket: ticket.into() }).await.map_err(|e| e.code())
    }

    #[tokio::test]
    async fn two_players_are_matched_into_a_lockstep_room_only_they_may_enter() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=lockstep").await;
        let mut b = f.login(2, "caps=lockstep").await;
        let mut c = f.login(3, "caps=lockstep").await;
        add(&f, &a.session, duel(1000.0)).await.expect("queued");
        let t: pb::MatchTicket = a.expect(ids::reply(ids::MATCH_ADD)).await;
        assert_eq!(t.mode, "duel");
        assert_eq!(add(&f, &a.session, duel(1000.0)).await, Err(Code::AlreadyQueued), "one ticket at a time");
        add(&f, &b.session, duel(1080.0)).await.expect("queued");
        add(&f, &c.session, duel(1500.0)).await.expect("queued");
        let ct: pb::MatchTicket = c.expect(ids::reply(ids::MATCH_ADD)).await;
        f.world.match_pass().await.expect("pass");
        let fa: pb::MatchFound = a.expect(ids::MATCH_FOUND).await;
        let fb: pb::MatchFound = b.expect(ids::MATCH_FOUND).await;
        assert_eq!((fa.room_id, fa.match_id.clone()), (fb.room_id, fb.match_id.clone()));
        assert!(fa.here && fa.room_type == pb::RoomType::Lockstep as i32, "{fa:?}");
        assert_eq!(fa.ticket, t.ticket);
        let mut who: Vec<i64> = fa.players.iter().map(|p| p.user_id).collect();
        who.sort_unstable();
        assert_eq!(who, [1, 2]);
        assert!(!c.ids_within(Duration::from_millis(50)).await.contains(&ids::MATCH_FOUND), "1500 is not within 100");
        // The stranger may not take a seat; the players may.
        let enter = |s: &Session| {
            f.world.clone().enter_room(s.clone(), pb::EnterRoom { room_id: fa.room_id, ..Default::default() })
        };
        assert_eq!(enter(&c.session).await.map_err(|e| e.code()), Err(Code::Forbidden));
        enter(&a.session).await.expect("a enters");
        enter(&b.session).await.expect("b enters");
        assert!(f.world.created_rooms().iter().all(|(id, _)| *id != fa.room_id), "a match room is not listed");
        // Both leave: the room closes, and each finds the match's record in its inbox.
        for p in [&a, &b] {
            let quit = pb::QuitRoom { room_id: fa.room_id, ..Default::default() };
            f.world.clone().quit_room(p.session.clone(), quit).await.expect("quit");
        }
        for user in [1, 2] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let inbox = f.world.0.game.inbox(user, 0, 10).await.expect("inbox");
                if let Some(m) = inbox.mails.iter().find(|m| m.kind == "match") {
                    assert!(m.body.contains(&fa.match_id) && m.body.contains("Nick1, Nick2"), "{m:?}");
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "player {user} got no match record");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // c's ticket is still queued; removing it answers once.
        assert_eq!(remove(&f, &c.session, &t.ticket).await, Err(Code::NotFound), "not its ticket");
        remove(&f, &c.session, &ct.ticket).await.expect("removed");
        assert_eq!(remove(&f, &c.session, &ct.ticket).await, Err(Code::NotFound));
    }

    #[tokio::test]
    async fn a_ticket_past_its_timeout_leaves_with_a_match_timeout() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(6, "caps=lockstep").await;
        let modes = &f.world.0.matching.modes;
        let me = vec![Member { user: 6, nickname: "Nick6".into() }];
        // Queued two hours ago: the duel's 120 s are long over.
        let old = unix_ms() - 7_200_000;
        let t = Ticket::new("old".into(), &duel(1000.0), modes, me, old).expect("ticket");
        f.world.0.matching.queue.add(&t).await.expect("queued");
        lock(&f.world.0.matching.queued).insert(PlayerId::new(6));
        f.world.match_pass().await.expect("pass");
        let out: pb::MatchTimeout = a.expect(ids::MATCH_TIMEOUT).await;
        assert_eq!((out.ticket.as_str(), out.mode.as_str()), ("old", "duel"));
        assert!(f.world.0.matching.queue.all().await.expect("all").is_empty(), "it left the queue");
        assert!(!lock(&f.world.0.matching.queued).contains(&PlayerId::new(6)));
    }

    #[tokio::test]
    async fn bad_tickets_and_departures() {
        let f = Fixture::new(WorldConfig::default()).await;
        let plain = f.login(4, "").await;
        assert_eq!(add(&f, &plain.session, duel(1000.0)).await, Err(Code::BadParam), "no lockstep caps");
        let a = f.login(5, "caps=lockstep").await;
        let unknown = pb::MatchAdd { mode: "chess".into(), ..Default::default() };
        assert_eq!(add(&f, &a.session, unknown).await, Err(Code::BadParam));
        add(&f, &a.session, duel(1000.0)).await.expect("queued");
        // It logs out: its ticket goes, so nobody is matched with an absent player.
        f.world.clone().logout(a.session.clone(), pb::Logout::default()).await.expect("logout");
        assert!(f.world.0.matching.queue.all().await.expect("all").is_empty());
    }
}
