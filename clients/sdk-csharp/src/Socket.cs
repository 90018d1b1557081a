// The game connection: JSON text messages {"id": N, "data": {...}} over a WebSocket
// (docs/protocol.md), a login on every (re)connect, a heartbeat, reconnection with backoff,
// request/reply pairing, and the rules of docs/client.md for when to stop.

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Rsgame
{
    public enum SocketStatus
    {
        /// <summary>Not started.</summary>
        Idle,
        /// <summary>Opening a connection and logging in.</summary>
        Connecting,
        /// <summary>Logged in: messages flow.</summary>
        Online,
        /// <summary>The connection dropped; a reconnect is scheduled.</summary>
        Offline,
        /// <summary>Stopped: the account logged in elsewhere (LogoutResp type 3). Never reconnect by itself.</summary>
        TakenOver,
        /// <summary>Stopped: the session is over (LogoutResp type 4, a refused refresh, a foreign token). Log in again.</summary>
        SessionEnded,
        /// <summary>Stopped by the app (Stop, LogoutAsync).</summary>
        Closed,
    }

    /// <summary>Supplies the session for each (re)connect; <c>rejectedToken</c> is the access token the last login was refused with.</summary>
    public delegate Task<Session> CredentialsProvider(string rejectedToken, CancellationToken ct);

    public sealed class SocketOptions
    {
        /// <summary>GameLogin's plat.</summary>
        public string Platform { get; set; } = "dotnet";
        /// <summary>GameLogin's param: the capabilities (docs/protocol.md); the SDK handles them all.</summary>
        public string Param { get; set; } = "caps=all";
        public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
        /// <summary>Silence after which the connection is taken for dead and replaced (the server's own limit is 20 s).</summary>
        public TimeSpan HeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(20);
        /// <summary>
        /// How long a request waits for its reply. A request that was sent and got no answer in
        /// time makes the connection untrustworthy (the server answers in order, so what follows
        /// could no longer be paired): the connection is closed and replaced.
        /// </summary>
        public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);
        /// <summary>Requests kept while offline, sent after the next login.</summary>
        public int MaxQueued { get; set; } = 32;
        public IClock Clock { get; set; } = SystemClock.Instance;
        /// <summary>A number in [0, 1) for the backoff's jitter.</summary>
        public Func<double> Random { get; set; }
        public Func<ITransport> Transport { get; set; } = () => new WebSocketTransport();
        /// <summary>
        /// Runs each event handler and completes each awaited request, one at a time in the
        /// order the messages arrived. Null: on the socket's threads, as things happen.
        /// Unity: <c>RsgameDispatcher.Post</c>, so that handlers run in Update on the main
        /// thread, and an <c>await socket.Request(…)</c> made on the main thread continues
        /// there, right after the handlers of its reply and before those of later messages.
        /// Never block on a request's Task then (<c>.Result</c>, <c>.Wait()</c>): await it.
        /// </summary>
        public Action<Action> Dispatch { get; set; }
    }

    /// <summary>
    /// One game connection that logs in on every (re)connect. Pushes arrive as events
    /// (<c>OnMoveResp</c>, <c>OnChatMsgResp</c>… and <see cref="OnMessage"/> for all),
    /// requests with a reply are awaited with <see cref="Request{TReply}"/>. A drop reconnects
    /// after 0.5, 1, 2, 4… s (at most 10 s, ±20 % jitter), refreshing the token first when it
    /// is due. A takeover (LogoutResp type 3), the end of the account's sessions (type 4),
    /// a logout (type 1) or <see cref="Stop"/> stops it for good. Events are raised one at a
    /// time, in the order of what they report. Thread-safe.
    /// </summary>
    public sealed partial class Socket : IDisposable
    {
        // docs/client.md: what goes stale and is not worth sending after a reconnect.
        static readonly HashSet<int> Stale = new HashSet<int>
        {
            MessageId.Move, MessageId.Attack, MessageId.Respawn, MessageId.LockstepInput, MessageId.Ping,
        };

        // A connection that lasted this long was a success: the next drop starts the backoff over.
        static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(30);
        const int MaxAttempt = 6;

        readonly Func<IList<Uri>> servers;
        readonly CredentialsProvider credentials;
        // Why the credentials ran out (a Client's EndedBy), when the socket was made from a Client.
        readonly Func<RsgameException> sessionEndedBy;
        readonly SocketOptions options;
        readonly IClock clock;
        readonly Func<double> random;
        readonly EventQueue events;
        // Everything below, and every Pending's SentOn and Settled, is guarded by `gate`. Events
        // are queued under it, so that they come in the order of the changes they report.
        readonly object gate = new object();

        SocketStatus status = SocketStatus.Idle;
        RsgameException endedBy;
        CancellationTokenSource life;
        Conn conn;
        bool everOnline;
        long sn;
        // Sent requests awaiting their reply, oldest first (the server answers a session in order).
        readonly LinkedList<Pending> waiting = new LinkedList<Pending>();
        // Messages kept until the next login.
        readonly List<Outgoing> queue = new List<Outgoing>();

        /// <summary>Connects with a Client's session: its game servers and its tokens.</summary>
        public Socket(Client client, SocketOptions options = null)
            : this(client.GameServerUris, (rejected, ct) => client.FreshTokenAsync(rejected, ct), options)
        {
            sessionEndedBy = () => client.EndedBy;
        }

        /// <param name="servers">The game servers' WebSocket URLs, asked before each connect (a failed connect tries the next).</param>
        /// <param name="credentials">The session for each login; null ends the socket (SessionEnded).</param>
        /// <param name="options">Timings, the transport, the clock; null: the defaults.</param>
        public Socket(Func<IList<Uri>> servers, CredentialsProvider credentials, SocketOptions options = null)
        {
            if (servers == null) throw new ArgumentNullException("servers");
            if (credentials == null) throw new ArgumentNullException("credentials");
            this.servers = servers;
            this.credentials = credentials;
            this.options = options ?? new SocketOptions();
            clock = this.options.Clock ?? SystemClock.Instance;
            events = new EventQueue(this.options.Dispatch);
            if (this.options.Random != null) random = this.options.Random;
            else
            {
                var rng = new Random();
                random = rng.NextDouble; // only the run loop calls it, one call at a time
            }
        }

        public SocketStatus Status { get { lock (gate) return status; } }

        public bool Online { get { return Status == SocketStatus.Online; } }

        /// <summary>
        /// The server's refusal that ended the session, once the socket stopped with
        /// SessionEnded: a ban (<see cref="Code.AccountBanned"/>: its Message says until when
        /// and why), a closed account (<see cref="Code.AccountClosed"/>), a token of another
        /// account (<see cref="Code.Forbidden"/>), a refused refresh (the Client's
        /// <see cref="Client.EndedBy"/>), the notice of a <c>session_ended</c> close. Null
        /// otherwise, and when the session ended without a word (LogoutResp type 4 alone).
        /// </summary>
        public RsgameException EndedBy { get { lock (gate) return endedBy; } }

        long rttTicks;

        /// <summary>The last heartbeat's round trip.</summary>
        public TimeSpan Rtt { get { return new TimeSpan(Interlocked.Read(ref rttTicks)); } }

        /// <summary>
        /// The status and, for Offline and the stops, why (the server's notice when it said why
        /// it closed the connection: an ErrorResp with reqId 0 is the reason of the status that
        /// follows, not an error).
        /// </summary>
        public event Action<SocketStatus, string> StatusChanged;

        /// <summary>
        /// The login was answered (UserInfo). <c>reconnected</c>: this is not the first login of
        /// this socket — clear the view (entities, room) and rebuild it from what follows (the
        /// SpawnResp of everything in view; a lockstep room's frames from the one missed).
        /// </summary>
        public event Action<UserInfo, bool> LoggedIn;

        /// <summary>Every message from the server: its id and body (a <see cref="JsonValue"/> for an id this SDK does not know).</summary>
        public event Action<int, object> OnMessage;

        /// <summary>
        /// What went wrong without ending the socket. An <see cref="RsgameException"/>: an
        /// ErrorResp that answers no waiting request (a refused Move, a chat while muted…; its
        /// RequestId is the refused message's id). Anything else is for developers: a handler
        /// threw, a message did not decode (and no request was waiting for it), a connect or a
        /// refresh failed. <c>OnErrorResp</c> is the raw event: every ErrorResp, also those
        /// that answered a request or announced a close.
        /// </summary>
        public event Action<Exception> OnError;

        /// <summary>Starts connecting (once per socket).</summary>
        public void Start()
        {
            CancellationToken token;
            lock (gate)
            {
                if (life != null || status != SocketStatus.Idle) throw new InvalidOperationException("a Socket starts once; make a new one after it stopped");
                life = new CancellationTokenSource();
                token = life.Token;
            }
            Task.Run(() => RunAsync(token));
        }

        /// <summary>
        /// Sends a message that has no reply (Move, ChatMsg, LockstepInput, Respawn, the party
        /// requests…: listen for what the server pushes). Before the login is answered it waits
        /// in a queue, unless it goes stale (Move, Attack, Respawn, LockstepInput, Ping). False
        /// when it was dropped (stale while offline, queue full, stopped).
        /// </summary>
        public bool Send(IOutbound message)
        {
            if (message == null) throw new ArgumentNullException("message");
            return Post(message.MessageId, Frame(message.MessageId, message), null);
        }

        /// <summary>Sends a message by id (for ids newer than this SDK; <paramref name="body"/> may be a JsonValue).</summary>
        public bool Send(int id, IJsonWritable body)
        {
            return Post(id, Frame(id, body), null);
        }

        /// <summary>
        /// Sends a request and waits for its reply (game.proto's `// reply:`). Throws
        /// <see cref="RsgameException"/> when the server answers with an ErrorResp for it,
        /// <see cref="JsonException"/> when its reply does not decode, TimeoutException after
        /// the request timeout (the connection is then replaced), <see cref="ConnectionException"/>
        /// when the connection drops before the answer or the socket stops. Cancelling
        /// <paramref name="ct"/> stops the wait; a request already sent keeps its place, and
        /// its answer is dropped.
        /// </summary>
        public Task<TReply> Request<TReply>(IRequest<TReply> message, TimeSpan? timeout = null, CancellationToken ct = default(CancellationToken))
        {
            if (message == null) throw new ArgumentNullException("message");
            int id = message.MessageId;
            int reply = Messages.ReplyOf(id);
            if (reply == 0) throw new ArgumentException(Messages.Name(id) + " has no reply in game.proto: use Send", "message");
            // With a dispatcher the task completes inside it, and the awaiting code may go on at
            // once (Unity's main thread), in order with the events; without one, never on the
            // socket's own threads.
            var p = new Pending<TReply>(id, reply, events.Dispatched);
            if (ct.IsCancellationRequested)
            {
                p.Complete(null, new OperationCanceledException(ct));
                return p.Task;
            }
            if (!Post(id, Frame(id, message), p)) return p.Task;
            var wait = timeout ?? options.RequestTimeout;
            clock.Delay(wait, p.Timer.Token).ContinueWith(t =>
            {
                if (!t.IsCanceled) Expire(p, wait);
            }, TaskContinuationOptions.ExecuteSynchronously);
            if (ct.CanBeCanceled)
            {
                var registration = ct.Register(() => Cancel(p, ct));
                p.Task.ContinueWith(t => registration.Dispose(), TaskContinuationOptions.ExecuteSynchronously);
            }
            return p.Task;
        }

        /// <summary>
        /// Leaves the game: Logout{type 1} (the server saves the player and answers), then the
        /// socket stops (Closed) — always, whatever the answer. Offline, it only stops: the
        /// server ends the player after its reconnect grace. Throws the server's refusal
        /// (<see cref="RsgameException"/>) after stopping; no answer is no error. Revoke the
        /// tokens afterwards with <see cref="Client.LogoutAsync"/>.
        /// </summary>
        public async Task LogoutAsync()
        {
            try
            {
                if (Online) await Request(new Logout { Type = (int)LogoutType.Quit }).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException || e is ConnectionException)
            {
            }
            finally
            {
                Finish(SocketStatus.Closed, "logged out");
            }
        }

        /// <summary>Closes for good (Closed). Waiting requests fail with ConnectionException.</summary>
        public void Stop() { Finish(SocketStatus.Closed, "stopped"); }

        public void Dispose() { Stop(); }

        /// <summary>Drops the connection as a network failure would (to try reconnection by hand).</summary>
        public void Drop()
        {
            Conn c;
            lock (gate) c = conn;
            if (c != null) c.Transport.Abort();
        }

        /// <summary>The backoff before reconnect attempt <paramref name="attempt"/> (0-based), with <paramref name="random01"/> in [0, 1) for the jitter.</summary>
        public static TimeSpan Backoff(int attempt, double random01)
        {
            double ms = Math.Min(10000.0, 500.0 * Math.Pow(2, Math.Max(0, attempt)));
            return TimeSpan.FromMilliseconds(ms * (0.8 + random01 * 0.4));
        }

        // ---- sending ---------------------------------------------------------------------------

        static string Frame(int id, IJsonWritable body)
        {
            var w = new JsonWriter();
            w.BeginObject().Name("id").Value(id).Name("data");
            if (body == null) w.BeginObject().EndObject();
            else body.WriteJson(w);
            return w.EndObject().ToString();
        }

        bool Post(int id, string text, Pending p)
        {
            Exception refused = null;
            lock (gate)
            {
                if (IsStopped(status))
                    refused = new ConnectionException("the socket is stopped (" + status + ")", status);
                else if (status == SocketStatus.Online && conn != null && conn.LoggedIn && !conn.Closed)
                {
                    if (p != null)
                    {
                        p.SentOn = conn;
                        waiting.AddLast(p.Node);
                    }
                    conn.Enqueue(text);
                    return true;
                }
                else if (Stale.Contains(id))
                    refused = new ConnectionException(Messages.Name(id) + " goes stale: not kept while offline", status);
                else if (queue.Count >= options.MaxQueued)
                    refused = new ConnectionException("offline, and " + options.MaxQueued + " messages already wait", status);
                else
                {
                    queue.Add(new Outgoing { Text = text, Pending = p });
                    return true;
                }
            }
            if (p != null)
            {
                // Before the task is handed out: nothing awaits it yet.
                p.Settled = true;
                p.Complete(null, refused);
            }
            return false;
        }

        // The request's time is up.
        void Expire(Pending p, TimeSpan wait)
        {
            Conn sick = null;
            lock (gate)
            {
                if (p.Settled) return;
                if (p.SentOn != null)
                {
                    // Sent and unanswered (maybe cancelled meanwhile, keeping its place): its
                    // answer may come late or never, and either way the pairing of the answers
                    // that follow can no longer be trusted. The connection is replaced, and
                    // every other request sent on it fails with ConnectionException.
                    if (p.Node.List != null) waiting.Remove(p.Node);
                    if (!p.SentOn.Closed)
                    {
                        sick = p.SentOn;
                        sick.Closed = true; // nothing more is read from it, nor sent on it
                        sick.Detail = sick.Detail ?? Messages.Name(p.RequestId) + " got no answer in " + wait.TotalSeconds + " s";
                    }
                }
                else queue.RemoveAll(o => o.Pending == p);
                Settle(p, null, new TimeoutException(Messages.Name(p.RequestId) + " got no answer in " + wait.TotalSeconds + " s"));
            }
            if (sick != null) sick.Kill();
            Flush();
        }

        // The caller stopped waiting.
        void Cancel(Pending p, CancellationToken ct)
        {
            lock (gate)
            {
                if (p.Settled) return;
                if (p.SentOn == null)
                {
                    queue.RemoveAll(o => o.Pending == p);
                    Settle(p, null, new OperationCanceledException(ct));
                }
                else
                {
                    // Sent: it keeps its place in `waiting`, so that its answer is not taken
                    // for the answer of the next request of its kind; its timer still runs.
                    events.Add(() => p.Complete(null, new OperationCanceledException(ct)));
                }
            }
            Flush();
        }

        // Under `gate`: the request is answered, refused or lost; its task completes in order
        // with the events.
        void Settle(Pending p, object reply, Exception error)
        {
            p.Settled = true;
            events.Add(() =>
            {
                p.Timer.Cancel();
                try { p.Complete(reply, error); }
                catch (Exception) { } // continuations run inline only with a dispatcher; theirs to report
            });
        }

        // ---- the run loop ----------------------------------------------------------------------

        async Task RunAsync(CancellationToken token)
        {
            int attempt = 0, server = 0;
            string rejected = null;
            while (!token.IsCancellationRequested)
            {
                SetStatus(SocketStatus.Connecting, null);
                Outcome outcome;
                try
                {
                    var session = await credentials(rejected, token).ConfigureAwait(false);
                    rejected = null;
                    if (session == null)
                    {
                        var why = sessionEndedBy != null ? sessionEndedBy() : null;
                        Finish(SocketStatus.SessionEnded, why != null ? "the session ended: " + why.RawCode + " " + why.Message : "the session ended: log in again", why);
                        return;
                    }
                    var list = servers();
                    if (list == null || list.Count == 0) throw new InvalidOperationException("no game server to connect to");
                    outcome = await ConnectionAsync(list[server % list.Count], session, token).ConfigureAwait(false);
                    if (!outcome.Connected) server++;
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    // A refresh that could not reach the server, a bad server list: try again later.
                    ReportError(e);
                    outcome = new Outcome { Detail = e.Message };
                }
                if (outcome.Final.HasValue)
                {
                    Finish(outcome.Final.Value, outcome.Detail, outcome.EndedBy);
                    return;
                }
                if (outcome.RejectedToken != null) rejected = outcome.RejectedToken;
                // A connection that did not last is no success: keep backing off (a server that
                // closes us for flooding or oversize messages must not be hammered every 0.5 s).
                if (outcome.OnlineFor >= StableAfter && outcome.CloseCode != 1008 && outcome.CloseCode != 1009) attempt = 0;
                var delay = Backoff(attempt, random());
                attempt = Math.Min(attempt + 1, MaxAttempt);
                SetStatus(SocketStatus.Offline, outcome.Detail);
                try { await clock.Delay(delay, token).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }

        sealed class Outcome
        {
            public bool Connected;
            public SocketStatus? Final;
            public RsgameException EndedBy;
            public string Detail;
            public string RejectedToken;
            public TimeSpan OnlineFor;
            public int CloseCode;
        }

        async Task<Outcome> ConnectionAsync(Uri uri, Session session, CancellationToken token)
        {
            var transport = options.Transport();
            try
            {
                using (var limit = CancellationTokenSource.CreateLinkedTokenSource(token))
                {
                    limit.CancelAfter(options.ConnectTimeout);
                    await transport.ConnectAsync(uri, limit.Token).ConfigureAwait(false);
                }
            }
            catch (Exception e)
            {
                transport.Dispose();
                if (token.IsCancellationRequested) throw;
                return new Outcome { Detail = "cannot connect to " + uri + ": " + e.Message };
            }
            var c = new Conn(this, transport, session.AccessToken, token);
            lock (gate)
            {
                if (IsStopped(status)) { transport.Abort(); transport.Dispose(); return new Outcome { Connected = true, Final = status }; }
                conn = c;
            }
            // The login goes first, ahead of anything queued (which waits for its answer).
            c.Enqueue(Frame(MessageId.GameLogin, new GameLogin
            {
                UserId = session.UserId, Token = session.AccessToken, Plat = options.Platform, Param = options.Param,
            }));
            c.Start();
            var outcome = new Outcome { Connected = true };
            try
            {
                while (true)
                {
                    // Not cancelled by Stop: Stop closes the connection politely and the receive
                    // ends with the server's answering close (or the abort behind it).
                    var text = await transport.ReceiveAsync(CancellationToken.None).ConfigureAwait(false);
                    if (text == null) break;
                    OnText(c, text);
                }
            }
            catch (Exception e)
            {
                // A broken connection, or one aborted (Drop, silence, a request unanswered, Stop's fallback).
                if (!token.IsCancellationRequested) outcome.Detail = "connection lost: " + e.Message;
            }
            c.Close();
            lock (gate)
            {
                if (conn == c) conn = null;
                // Everything still waiting was sent on this connection: its answer will not come.
                var lost = new ConnectionException("the connection dropped before the answer", SocketStatus.Offline);
                foreach (var p in waiting) Settle(p, null, lost);
                waiting.Clear();
            }
            Flush();

            outcome.CloseCode = transport.CloseCode;
            outcome.OnlineFor = c.OnlineSince.HasValue ? clock.Monotonic - c.OnlineSince.Value : TimeSpan.Zero;
            outcome.RejectedToken = c.RejectedToken;
            outcome.Final = c.Final;
            outcome.EndedBy = c.EndedBy;
            // docs/protocol.md "Closing": session_ended is a close that may come without a
            // LogoutResp (a node that ends the session as the connection opens).
            if (!outcome.Final.HasValue && (transport.CloseReason == "session_ended" || (c.Notice != null && c.Notice.Code == Code.TokenExpired)))
                outcome.Final = SocketStatus.SessionEnded;
            if (outcome.Final == SocketStatus.SessionEnded && outcome.EndedBy == null) outcome.EndedBy = c.Notice;
            outcome.Detail = c.FinalDetail ?? c.Detail ?? outcome.Detail
                ?? (transport.CloseCode != 0 ? "closed by the server (" + transport.CloseCode + (transport.CloseReason != "" ? " " + transport.CloseReason : "") + ")" : "connection lost");
            transport.Dispose();
            return outcome;
        }

        // ---- receiving -------------------------------------------------------------------------

        void OnText(Conn c, string text)
        {
            c.Heard(clock.Monotonic);
            int id = -1;
            string data = null;
            object body;
            try
            {
                var r = new JsonReader(text);
                r.BeginObject();
                string name;
                while (r.NextProperty(out name))
                {
                    if (name == "id") id = r.ReadInt32();
                    else if (name == "data") data = r.ReadRawValue();
                    else r.Skip();
                }
                if (id < 0) throw new JsonException("no message id");
                body = Messages.Read(id, new JsonReader(data ?? "{}")) ?? JsonValue.Parse(data ?? "{}");
            }
            catch (Exception e)
            {
                Undecodable(c, id, data, new JsonException("message " + (id >= 0 ? Messages.Name(id) : "?") + " did not decode: " + e.Message));
                return;
            }
            Handle(c, id, body);
        }

        // A message that did not decode. The session goes on; a request waiting for it fails
        // now rather than taking the next one's answer.
        void Undecodable(Conn c, int id, string data, JsonException error)
        {
            int refusedId = -1;
            if (id == MessageId.ErrorResp)
            {
                // Which request it refuses, if that much can be read.
                try { refusedId = (int)JsonValue.Parse(data ?? "{}")["reqId"].AsLong(); }
                catch (Exception) { }
            }
            bool reLogin = false;
            lock (gate)
            {
                if (c.Closed || IsStopped(status)) return;
                Pending p = null;
                if (id == MessageId.UserInfo && !c.LoggedIn)
                {
                    // The login's answer: without it the connection is of no use. Try another.
                    c.Detail = c.Detail ?? error.Message;
                    reLogin = true;
                }
                else if (id == MessageId.ErrorResp) { if (refusedId > 0) p = Take(refusedId, true); }
                else if (id >= 0) p = Take(id, false);
                if (p != null) Settle(p, null, error);
                else ReportErrorLocked(error);
            }
            if (reLogin) c.CloseSoon(4002, "bad login answer");
            Flush();
        }

        void Handle(Conn c, int id, object body)
        {
            Action after = null;
            lock (gate)
            {
                // The rest of a batch that arrived after a stop, or on a connection given up.
                if (c.Closed || IsStopped(status)) return;
                if (id == MessageId.UserInfo && !c.LoggedIn)
                {
                    GoOnline(c, (UserInfo)body);
                    Raise(id, body);
                }
                else
                {
                    switch (id)
                    {
                        case MessageId.ErrorResp:
                            Raise(id, body);
                            after = Refused(c, (ErrorResp)body);
                            break;
                        case MessageId.PingResp:
                            Raise(id, body);
                            var ping = Take(id, false);
                            var beat = ping as Heartbeat;
                            if (beat != null) Interlocked.Exchange(ref rttTicks, (clock.Monotonic - beat.SentAt).Ticks);
                            if (ping != null) Settle(ping, body, null);
                            break;
                        case MessageId.LogoutResp:
                            Raise(id, body);
                            Answer(id, body);
                            var type = ((LogoutResp)body).Type;
                            if (type == (int)LogoutType.Elsewhere) after = () => c.Stop(SocketStatus.TakenOver, "the account logged in elsewhere");
                            else if (type == (int)LogoutType.Ended) after = () => c.Stop(SocketStatus.SessionEnded, "the account's sessions were ended: log in again");
                            else if (type == (int)LogoutType.Quit) after = () => c.Stop(SocketStatus.Closed, "logged out");
                            break;
                        default:
                            Raise(id, body);
                            Answer(id, body);
                            break;
                    }
                }
            }
            if (after != null) after();
            Flush();
        }

        // Under `gate`: the message's events (the typed one, then OnMessage).
        void Raise(int id, object body)
        {
            RaiseTyped(id, body);
            Emit(OnMessage, id, body);
        }

        // Under `gate`: the reply completes the oldest request waiting for it (if that one
        // was cancelled, the answer goes with it); with none waiting it was a push.
        void Answer(int replyId, object body)
        {
            var p = Take(replyId, false);
            if (p != null) Settle(p, body, null);
        }

        // Under `gate`: what an ErrorResp means; returns what to do with the connection after.
        Action Refused(Conn c, ErrorResp e)
        {
            var error = new RsgameException(e.Code, e.Msg, 0, (int)e.ReqId);
            var code = (Code)e.Code;
            bool gone = code == Code.AccountBanned || code == Code.AccountClosed;
            if (e.ReqId == MessageId.GameLogin && !c.LoggedIn)
            {
                // The login itself was refused. A bad or revoked token (400103): reconnect, and
                // the credentials are asked to refresh this one. A token of another account
                // (400501), a banned (400515) or closed (400516) account will never get in: stop.
                var detail = "login refused: " + e.Code + " " + e.Msg;
                if (code == Code.Forbidden || gone)
                {
                    c.EndedBy = error;
                    return () => c.Stop(SocketStatus.SessionEnded, detail);
                }
                if (code == Code.TokenExpired) c.RejectedToken = c.Token;
                c.Detail = detail;
                return () => c.CloseSoon(4001, "login refused");
            }
            if (e.ReqId == 0)
            {
                // The server's last word before it closes the connection (docs/protocol.md): the
                // reason of the status that follows, not an error.
                c.Notice = error;
                c.Detail = "the server closes the connection: " + e.Code + " " + e.Msg;
                if (gone)
                {
                    c.EndedBy = error;
                    return () => c.Stop(SocketStatus.SessionEnded, c.Detail);
                }
                return null;
            }
            // The refusal of the oldest request with that id, or of a message with no reply.
            var p = Take((int)e.ReqId, true);
            if (p != null) Settle(p, null, error);
            else ReportErrorLocked(error);
            return null;
        }

        // Under `gate`: the oldest sent request answered by `id` (its reply id, or with
        // `byRequest` its own id, as an ErrorResp names it), taken off the list.
        Pending Take(int id, bool byRequest)
        {
            for (var n = waiting.First; n != null; n = n.Next)
            {
                var p = n.Value;
                if ((byRequest ? p.RequestId : p.ReplyId) != id) continue;
                waiting.Remove(n);
                return p;
            }
            return null;
        }

        // Under `gate`.
        void GoOnline(Conn c, UserInfo info)
        {
            if (IsStopped(status) || conn != c) return;
            c.LoggedIn = true;
            c.OnlineSince = clock.Monotonic;
            status = SocketStatus.Online;
            bool again = everOnline;
            everOnline = true;
            Emit(StatusChanged, SocketStatus.Online, (string)null);
            Emit(LoggedIn, info, again);
            foreach (var o in queue)
            {
                if (o.Pending != null)
                {
                    if (o.Pending.Settled) continue;
                    o.Pending.SentOn = c;
                    waiting.AddLast(o.Pending.Node);
                }
                c.Enqueue(o.Text);
            }
            queue.Clear();
        }

        // ---- status ----------------------------------------------------------------------------

        static bool IsStopped(SocketStatus s)
        {
            return s == SocketStatus.TakenOver || s == SocketStatus.SessionEnded || s == SocketStatus.Closed;
        }

        void SetStatus(SocketStatus s, string detail)
        {
            lock (gate)
            {
                if (IsStopped(status) || status == s) return;
                status = s;
                Emit(StatusChanged, s, detail);
            }
            Flush();
        }

        void Finish(SocketStatus final, string detail, RsgameException why = null)
        {
            Conn c;
            CancellationTokenSource stopping;
            lock (gate)
            {
                if (IsStopped(status)) return;
                status = final;
                endedBy = final == SocketStatus.SessionEnded ? why : null;
                stopping = life;
                c = conn;
                conn = null;
                if (c != null) c.Closed = true;
                var stopped = new ConnectionException("the socket stopped: " + detail, final);
                foreach (var p in waiting) Settle(p, null, stopped);
                waiting.Clear();
                foreach (var o in queue) if (o.Pending != null) Settle(o.Pending, null, stopped);
                queue.Clear();
                Emit(StatusChanged, final, detail);
            }
            if (stopping != null) stopping.Cancel();
            if (c != null) c.Shutdown();
            Flush();
        }

        // ---- events ----------------------------------------------------------------------------

        // Queues a handler call: under `gate` when it reports a change, then Flush after it.
        void Emit<T>(Action<T> handler, T value)
        {
            if (handler == null) return;
            Queue(() => handler(value));
        }

        void Emit<T1, T2>(Action<T1, T2> handler, T1 a, T2 b)
        {
            if (handler == null) return;
            Queue(() => handler(a, b));
        }

        void Queue(Action call)
        {
            events.Add(() =>
            {
                try { call(); }
                catch (Exception e) { RaiseError(e); }
            });
        }

        void ReportErrorLocked(Exception e)
        {
            events.Add(() => RaiseError(e));
        }

        void ReportError(Exception e)
        {
            ReportErrorLocked(e);
            Flush();
        }

        void RaiseError(Exception e)
        {
            var h = OnError;
            if (h == null) return;
            // An error handler that throws has nowhere left to report to.
            try { h(e); }
            catch (Exception) { }
        }

        // Runs (or dispatches) the queued events; never under `gate`.
        void Flush() { events.Drain(); }

        // ---- one connection --------------------------------------------------------------------

        sealed class Outgoing
        {
            public string Text;
            public Pending Pending;
        }

        /// <summary>One WebSocket connection: its writer, its heartbeat, and what the server said of it.</summary>
        sealed class Conn
        {
            readonly Socket owner;
            public readonly ITransport Transport;
            public readonly string Token;
            readonly CancellationTokenSource cts;
            readonly Queue<string> outbox = new Queue<string>();
            readonly SemaphoreSlim ready = new SemaphoreSlim(0);
            long lastInbound; // the monotonic clock's ticks

            public bool LoggedIn;
            public TimeSpan? OnlineSince;
            public string RejectedToken;
            public RsgameException Notice;
            public RsgameException EndedBy;
            public string Detail;
            public SocketStatus? Final;
            public string FinalDetail;
            /// <summary>Given up (ended, stopped, or untrustworthy): nothing more is read from it or sent on it.</summary>
            public volatile bool Closed;

            public Conn(Socket owner, ITransport transport, string token, CancellationToken life)
            {
                this.owner = owner;
                Transport = transport;
                Token = token;
                cts = CancellationTokenSource.CreateLinkedTokenSource(life);
                Heard(owner.clock.Monotonic);
            }

            public void Heard(TimeSpan at) { Interlocked.Exchange(ref lastInbound, at.Ticks); }

            TimeSpan LastInbound { get { return new TimeSpan(Interlocked.Read(ref lastInbound)); } }

            public void Start()
            {
                Task.Run(() => WriteLoop());
                Task.Run(() => HeartbeatLoop());
            }

            public void Enqueue(string text)
            {
                lock (outbox) outbox.Enqueue(text);
                ready.Release();
            }

            async Task WriteLoop()
            {
                try
                {
                    while (true)
                    {
                        await ready.WaitAsync(cts.Token).ConfigureAwait(false);
                        string text;
                        lock (outbox) text = outbox.Dequeue();
                        await Transport.SendAsync(text, cts.Token).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException) { }
                catch (Exception e)
                {
                    // A write that fails leaves the connection useless: drop it and reconnect.
                    if (!Closed) { Detail = Detail ?? "send failed: " + e.Message; Transport.Abort(); }
                }
            }

            async Task HeartbeatLoop()
            {
                var o = owner.options;
                try
                {
                    while (true)
                    {
                        await owner.clock.Delay(o.HeartbeatInterval, cts.Token).ConfigureAwait(false);
                        if (owner.clock.Monotonic - LastInbound > o.HeartbeatTimeout)
                        {
                            // A half-open connection (a phone that changed networks) never
                            // closes by itself: take silence for death.
                            Detail = Detail ?? "no message from the server in " + o.HeartbeatTimeout.TotalSeconds + " s";
                            Transport.Abort();
                            return;
                        }
                        var beat = new Heartbeat(owner.clock.Monotonic);
                        lock (owner.gate)
                        {
                            if (Closed) return;
                            // In the lock, so that its place in `waiting` is its place on the wire.
                            beat.SentOn = this;
                            owner.waiting.AddLast(beat.Node);
                            Enqueue(Frame(MessageId.Ping, new Ping { Sn = ++owner.sn }));
                        }
                    }
                }
                catch (OperationCanceledException) { }
            }

            /// <summary>Stops the socket for good once this connection ends (a takeover, a logout).</summary>
            public void Stop(SocketStatus final, string detail)
            {
                if (Final.HasValue) return;
                Final = final;
                FinalDetail = detail;
                CloseSoon(1000, "bye");
            }

            /// <summary>Closes politely, and drops the connection if the server does not answer soon.</summary>
            public void Shutdown()
            {
                CloseSoon(1000, "bye");
                owner.clock.Delay(TimeSpan.FromSeconds(2), CancellationToken.None).ContinueWith(t => Transport.Abort());
            }

            public void CloseSoon(int code, string reason)
            {
                Transport.CloseAsync(code, reason).ContinueWith(t =>
                {
                    // A close that cannot be sent: drop the connection instead.
                    if (t.IsFaulted) Transport.Abort();
                });
            }

            /// <summary>Drops a connection that cannot be trusted any more (<see cref="Closed"/> is set).</summary>
            public void Kill()
            {
                cts.Cancel();
                Transport.Abort();
            }

            public void Close()
            {
                Closed = true;
                cts.Cancel();
            }
        }

        // ---- requests --------------------------------------------------------------------------

        abstract class Pending
        {
            public readonly int RequestId;
            public readonly int ReplyId;
            public readonly LinkedListNode<Pending> Node;
            public readonly CancellationTokenSource Timer = new CancellationTokenSource();
            /// <summary>Under the socket's gate: the connection it was sent on; null while queued.</summary>
            public Conn SentOn;
            /// <summary>Under the socket's gate: answered, refused, lost, expired or dropped; out of `waiting` and the queue.</summary>
            public bool Settled;

            protected Pending(int requestId, int replyId)
            {
                RequestId = requestId;
                ReplyId = replyId;
                Node = new LinkedListNode<Pending>(this);
            }

            /// <summary>Completes the caller's task (a no-op once it is complete).</summary>
            public abstract void Complete(object reply, Exception error);
        }

        sealed class Pending<T> : Pending
        {
            readonly TaskCompletionSource<T> tcs;

            public Pending(int requestId, int replyId, bool inline) : base(requestId, replyId)
            {
                tcs = new TaskCompletionSource<T>(inline ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously);
            }

            public Task<T> Task { get { return tcs.Task; } }

            public override void Complete(object reply, Exception error)
            {
                var cancelled = error as OperationCanceledException;
                if (cancelled != null) tcs.TrySetCanceled(cancelled.CancellationToken);
                else if (error != null) tcs.TrySetException(error);
                else tcs.TrySetResult((T)reply);
            }
        }

        /// <summary>A heartbeat Ping: it takes its place among the requests so that PingResps pair in order.</summary>
        sealed class Heartbeat : Pending
        {
            public readonly TimeSpan SentAt;

            public Heartbeat(TimeSpan sentAt) : base(MessageId.Ping, MessageId.PingResp) { SentAt = sentAt; }

            public override void Complete(object reply, Exception error) { }
        }
    }
}
