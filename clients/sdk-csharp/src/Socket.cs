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
        public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);
        /// <summary>Requests kept while offline, sent after the next login.</summary>
        public int MaxQueued { get; set; } = 32;
        public IClock Clock { get; set; } = SystemClock.Instance;
        /// <summary>A number in [0, 1) for the backoff's jitter.</summary>
        public Func<double> Random { get; set; }
        public Func<ITransport> Transport { get; set; } = () => new WebSocketTransport();
        /// <summary>
        /// Runs each event handler. Null: on the socket's own thread, as the events happen.
        /// Unity: <c>RsgameDispatcher.Post</c>, so that handlers run in Update on the main thread.
        /// </summary>
        public Action<Action> Dispatch { get; set; }
    }

    /// <summary>
    /// One game connection that logs in on every (re)connect. Pushes arrive as events
    /// (<c>OnMoveResp</c>, <c>OnChatMsgResp</c>… and <see cref="OnMessage"/> for all),
    /// requests with a reply are awaited with <see cref="Request{TReply}"/>. A drop reconnects
    /// after 0.5, 1, 2, 4… s (at most 10 s, ±20 % jitter), refreshing the token first when it
    /// is due. A takeover (LogoutResp type 3), the end of the account's sessions (type 4) or
    /// <see cref="Stop"/> stops it for good. Thread-safe.
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
        readonly SocketOptions options;
        readonly IClock clock;
        readonly Func<double> random;
        readonly object gate = new object();

        SocketStatus status = SocketStatus.Idle;
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
            if (this.options.Random != null) random = this.options.Random;
            else
            {
                var rng = new Random();
                random = rng.NextDouble; // only the run loop calls it, one call at a time
            }
        }

        public SocketStatus Status { get { lock (gate) return status; } }

        public bool Online { get { return Status == SocketStatus.Online; } }

        long rttTicks;

        /// <summary>The last heartbeat's round trip.</summary>
        public TimeSpan Rtt { get { return new TimeSpan(Interlocked.Read(ref rttTicks)); } }

        /// <summary>The status and, for Offline and the stops, why.</summary>
        public event Action<SocketStatus, string> StatusChanged;

        /// <summary>
        /// The login was answered (UserInfo). <c>reconnected</c>: this is not the first login of
        /// this socket — clear the view (entities, room) and rebuild it from what follows (the
        /// SpawnResp of everything in view; a lockstep room's frames from the one missed).
        /// </summary>
        public event Action<UserInfo, bool> LoggedIn;

        /// <summary>Every message from the server: its id and body (a <see cref="JsonValue"/> for an id this SDK does not know).</summary>
        public event Action<int, object> OnMessage;

        /// <summary>What went wrong without ending the socket: a handler threw, a message did not decode, a connect failed.</summary>
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
        /// Sends a message that has no reply (Move, ChatMsg, LockstepInput…). Before the login is
        /// answered it waits in a queue, unless it goes stale (Move, Attack, Respawn,
        /// LockstepInput, Ping). False when it was dropped (stale while offline, queue full, stopped).
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
        /// TimeoutException after the request timeout, <see cref="ConnectionException"/> when
        /// the connection drops before the answer or the socket stops.
        /// </summary>
        public Task<TReply> Request<TReply>(IRequest<TReply> message, TimeSpan? timeout = null, CancellationToken ct = default(CancellationToken))
        {
            if (message == null) throw new ArgumentNullException("message");
            int id = message.MessageId;
            int reply = Messages.ReplyOf(id);
            if (reply == 0) throw new ArgumentException(Messages.Name(id) + " has no reply in game.proto: use Send", "message");
            var p = new Pending<TReply>(id, reply);
            if (!Post(id, Frame(id, message), p)) return p.Task;
            var wait = timeout ?? options.RequestTimeout;
            clock.Delay(wait, p.Timer.Token).ContinueWith(t =>
            {
                if (t.IsCanceled) return;
                Expire(p, new TimeoutException(Messages.Name(id) + " got no answer in " + wait.TotalSeconds + " s"));
            }, TaskContinuationOptions.ExecuteSynchronously);
            if (ct.CanBeCanceled) p.Registration = ct.Register(() => Expire(p, new OperationCanceledException(ct)));
            return p.Task;
        }

        /// <summary>
        /// Leaves the game: Logout{type 1} (the server saves the player and answers), then the
        /// socket stops (Closed). Offline, it only stops: the server ends the player after its
        /// reconnect grace. Revoke the tokens afterwards with <see cref="Client.LogoutAsync"/>.
        /// </summary>
        public async Task LogoutAsync()
        {
            if (Online)
            {
                try { await Request(new Logout { Type = (int)LogoutType.Quit }).ConfigureAwait(false); }
                catch (Exception e) when (e is TimeoutException || e is ConnectionException) { }
            }
            Finish(SocketStatus.Closed, "logged out");
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
                else if (status == SocketStatus.Online && conn != null && conn.LoggedIn)
                {
                    if (p != null) waiting.AddLast(p.Node);
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
            if (p != null) p.Fail(refused);
            return false;
        }

        void Expire(Pending p, Exception why)
        {
            lock (gate)
            {
                if (p.Done) return;
                // One still queued is forgotten. One already sent keeps its place in `waiting`:
                // its answer will still come, and must not be taken for the answer of the next
                // request of the same kind.
                queue.RemoveAll(o => o.Pending == p);
            }
            p.Fail(why);
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
                        Finish(SocketStatus.SessionEnded, "the session ended: log in again");
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
                    Finish(outcome.Final.Value, outcome.Detail);
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
                // A broken connection, or one aborted (Drop, silence, Stop's fallback).
                if (!token.IsCancellationRequested) outcome.Detail = "connection lost: " + e.Message;
            }
            c.Close();
            List<Pending> lost;
            lock (gate)
            {
                if (conn == c) conn = null;
                lost = new List<Pending>();
                foreach (var p in waiting) if (!p.Done) lost.Add(p);
                waiting.Clear();
            }
            foreach (var p in lost) p.Fail(new ConnectionException("the connection dropped before the answer", SocketStatus.Offline));

            outcome.CloseCode = transport.CloseCode;
            outcome.OnlineFor = c.OnlineSince.HasValue ? clock.UtcNow - c.OnlineSince.Value : TimeSpan.Zero;
            outcome.RejectedToken = c.RejectedToken;
            outcome.Final = c.Final;
            // docs/protocol.md "Closing": session_ended is a close that may come without a
            // LogoutResp (a node that ends the session as the connection opens).
            if (!outcome.Final.HasValue && (transport.CloseReason == "session_ended" || c.Notice == (int)Code.TokenExpired))
                outcome.Final = SocketStatus.SessionEnded;
            outcome.Detail = c.FinalDetail ?? c.Detail ?? outcome.Detail
                ?? (transport.CloseCode != 0 ? "closed by the server (" + transport.CloseCode + (transport.CloseReason != "" ? " " + transport.CloseReason : "") + ")" : "connection lost");
            transport.Dispose();
            return outcome;
        }

        // ---- receiving -------------------------------------------------------------------------

        void OnText(Conn c, string text)
        {
            c.LastInbound = clock.UtcNow;
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
                // One bad message is reported and skipped; the session goes on.
                ReportError(new JsonException("message " + (id >= 0 ? Messages.Name(id) : "?") + " did not decode: " + e.Message));
                return;
            }
            if (c.Closed) return; // the rest of a batch that arrived after a stop
            Handle(c, id, body);
            RaiseTyped(id, body);
            Emit(OnMessage, id, body);
        }

        void Handle(Conn c, int id, object body)
        {
            switch (id)
            {
                case MessageId.UserInfo:
                    if (!c.LoggedIn) GoOnline(c, (UserInfo)body);
                    else Resolve(id, body);
                    return;
                case MessageId.LogoutResp:
                    var type = ((LogoutResp)body).Type;
                    Resolve(id, body);
                    if (type == (int)LogoutType.Elsewhere) c.Stop(SocketStatus.TakenOver, "the account logged in elsewhere");
                    else if (type == (int)LogoutType.Ended) c.Stop(SocketStatus.SessionEnded, "the account's sessions were ended: log in again");
                    else if (type == (int)LogoutType.Quit) c.Stop(SocketStatus.Closed, "logged out");
                    return;
                case MessageId.ErrorResp:
                    HandleError(c, (ErrorResp)body);
                    return;
                case MessageId.PingResp:
                    var ping = FirstWaiting(id);
                    var beat = ping as Heartbeat;
                    if (beat != null) Interlocked.Exchange(ref rttTicks, (clock.UtcNow - beat.SentAt).Ticks);
                    if (ping != null) ping.Succeed(body);
                    return;
                default:
                    Resolve(id, body);
                    return;
            }
        }

        void HandleError(Conn c, ErrorResp e)
        {
            if (e.ReqId == MessageId.GameLogin && !c.LoggedIn)
            {
                // The login itself was refused. A bad or revoked token (400103): reconnect, and
                // the credentials are asked to refresh this one. A token of another account
                // (400501) will never work: stop.
                if (e.Code == (int)Code.Forbidden) c.Stop(SocketStatus.SessionEnded, "the token belongs to another account");
                else
                {
                    if (e.Code == (int)Code.TokenExpired) c.RejectedToken = c.Token;
                    c.Detail = "login refused: " + e.Code + " " + e.Msg;
                    c.CloseSoon(4001, "login refused");
                }
                return;
            }
            if (e.ReqId == 0)
            {
                // The server's last word before it closes the connection (docs/protocol.md).
                c.Notice = e.Code;
                c.Detail = "the server closes the connection: " + e.Code + " " + e.Msg;
                return;
            }
            // The refusal of the oldest request with that id (a no-op for one that timed out).
            Pending p = null;
            lock (gate)
            {
                for (var n = waiting.First; n != null; n = n.Next)
                {
                    if (n.Value.RequestId == (int)e.ReqId) { p = n.Value; waiting.Remove(n); break; }
                }
            }
            if (p != null) p.Fail(new RsgameException(e.Code, e.Msg, 0, (int)e.ReqId));
        }

        void Resolve(int replyId, object body)
        {
            var p = FirstWaiting(replyId);
            if (p != null) p.Succeed(body);
        }

        // The oldest request answered by `replyId`, taken off the list; null when none waits
        // (a push), or when the oldest one timed out (its late answer is dropped with it).
        Pending FirstWaiting(int replyId)
        {
            lock (gate)
            {
                for (var n = waiting.First; n != null; n = n.Next)
                {
                    var p = n.Value;
                    if (p.ReplyId != replyId) continue;
                    waiting.Remove(n);
                    return p.Done ? null : p;
                }
            }
            return null;
        }

        void GoOnline(Conn c, UserInfo info)
        {
            bool again;
            lock (gate)
            {
                if (IsStopped(status)) return;
                c.LoggedIn = true;
                c.OnlineSince = clock.UtcNow;
                status = SocketStatus.Online;
                again = everOnline;
                everOnline = true;
                foreach (var o in queue)
                {
                    if (o.Pending != null)
                    {
                        if (o.Pending.Done) continue;
                        waiting.AddLast(o.Pending.Node);
                    }
                    c.Enqueue(o.Text);
                }
                queue.Clear();
            }
            Emit(StatusChanged, SocketStatus.Online, (string)null);
            Emit(LoggedIn, info, again);
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
            }
            Emit(StatusChanged, s, detail);
        }

        void Finish(SocketStatus final, string detail)
        {
            List<Pending> failed = new List<Pending>();
            Conn c;
            lock (gate)
            {
                if (IsStopped(status)) return;
                status = final;
                if (life != null) life.Cancel();
                c = conn;
                conn = null;
                foreach (var p in waiting) if (!p.Done) failed.Add(p);
                waiting.Clear();
                foreach (var o in queue) if (o.Pending != null) failed.Add(o.Pending);
                queue.Clear();
            }
            if (c != null) c.Shutdown();
            foreach (var p in failed) p.Fail(new ConnectionException("the socket stopped: " + detail, final));
            Emit(StatusChanged, final, detail);
        }

        // ---- events ----------------------------------------------------------------------------

        void Emit<T>(Action<T> handler, T value)
        {
            if (handler == null) return;
            Run(() => handler(value));
        }

        void Emit<T1, T2>(Action<T1, T2> handler, T1 a, T2 b)
        {
            if (handler == null) return;
            Run(() => handler(a, b));
        }

        void Run(Action call)
        {
            Action guarded = () =>
            {
                try { call(); }
                catch (Exception e) { ReportError(e); }
            };
            var dispatch = options.Dispatch;
            if (dispatch != null) dispatch(guarded);
            else guarded();
        }

        void ReportError(Exception e)
        {
            var h = OnError;
            if (h == null) return;
            Action call = () =>
            {
                // An error handler that throws has nowhere left to report to.
                try { h(e); }
                catch (Exception) { }
            };
            var dispatch = options.Dispatch;
            if (dispatch != null) dispatch(call);
            else call();
        }

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

            public bool LoggedIn;
            public DateTimeOffset? OnlineSince;
            public DateTimeOffset LastInbound;
            public string RejectedToken;
            public int Notice;
            public string Detail;
            public SocketStatus? Final;
            public string FinalDetail;
            public volatile bool Closed;

            public Conn(Socket owner, ITransport transport, string token, CancellationToken life)
            {
                this.owner = owner;
                Transport = transport;
                Token = token;
                cts = CancellationTokenSource.CreateLinkedTokenSource(life);
                LastInbound = owner.clock.UtcNow;
            }

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
                        if (owner.clock.UtcNow - LastInbound > o.HeartbeatTimeout)
                        {
                            // A half-open connection (a phone that changed networks) never
                            // closes by itself: take silence for death.
                            Detail = Detail ?? "no message from the server in " + o.HeartbeatTimeout.TotalSeconds + " s";
                            Transport.Abort();
                            return;
                        }
                        var beat = new Heartbeat(owner.clock.UtcNow);
                        lock (owner.gate)
                        {
                            // In the lock, so that its place in `waiting` is its place on the wire.
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
            public CancellationTokenRegistration Registration;

            protected Pending(int requestId, int replyId)
            {
                RequestId = requestId;
                ReplyId = replyId;
                Node = new LinkedListNode<Pending>(this);
            }

            public abstract bool Done { get; }
            protected abstract bool Complete(object reply, Exception error);

            public void Succeed(object reply) { if (Complete(reply, null)) Settled(); }
            public void Fail(Exception error) { if (Complete(null, error)) Settled(); }

            void Settled()
            {
                Timer.Cancel();
                Registration.Dispose();
            }
        }

        sealed class Pending<T> : Pending
        {
            readonly TaskCompletionSource<T> tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);

            public Pending(int requestId, int replyId) : base(requestId, replyId) { }

            public Task<T> Task { get { return tcs.Task; } }
            public override bool Done { get { return tcs.Task.IsCompleted; } }

            protected override bool Complete(object reply, Exception error)
            {
                return error != null ? tcs.TrySetException(error) : tcs.TrySetResult((T)reply);
            }
        }

        /// <summary>A heartbeat Ping: it takes its place among the requests so that PingResps pair in order.</summary>
        sealed class Heartbeat : Pending
        {
            public readonly DateTimeOffset SentAt;
            bool done;

            public Heartbeat(DateTimeOffset sentAt) : base(MessageId.Ping, MessageId.PingResp) { SentAt = sentAt; }

            public override bool Done { get { return done; } }

            protected override bool Complete(object reply, Exception error)
            {
                if (done) return false;
                done = true;
                return true;
            }
        }
    }
}
