// REST: go-game's envelope {code, msg, data} (code 200 on success), bearer tokens, and the
// session with its one-refresh-at-a-time rule. The routes themselves are generated from the
// server's OpenAPI document (src/Generated/Rest.cs); this file holds what they share.

using System;
using System.Collections.Generic;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Rsgame.Rest;

namespace Rsgame
{
    /// <summary>Whether a route is called with the session's access token.</summary>
    internal enum Auth
    {
        None,
        /// <summary>Sent when there is a session (a public route that says more to a known player).</summary>
        Optional,
        Required,
    }

    /// <summary>A captcha's key and the player's answer (after 400508).</summary>
    public sealed class Captcha
    {
        public string Key { get; set; }
        public string Code { get; set; }
    }

    /// <summary>
    /// A logged-in player: its tokens, its account id and where the game is. Keep it in the
    /// device's secure storage (<see cref="ToJson"/>, <see cref="FromJson"/>) so that a restart
    /// resumes it; it holds secrets, so never log it (ToString shows the account only).
    /// </summary>
    public sealed class Session : IJsonWritable
    {
        public string AccessToken { get; set; } = "";
        /// <summary>When the access token expires, unix seconds.</summary>
        public long AccessExpire { get; set; }
        /// <summary>When to refresh, unix seconds.</summary>
        public long RefreshAfter { get; set; }
        public string RefreshToken { get; set; } = "";
        /// <summary>The game nodes' WebSocket addresses: absolute, or a path on the REST host.</summary>
        public List<string> Servers { get; set; } = new List<string>();
        public long UserId { get; set; }
        public string Username { get; set; } = "";
        public string Nickname { get; set; } = "";

        /// <summary>
        /// Whether the tokens should be refreshed before use: after refreshAfter, or within
        /// 30 s of the access token's expiry (a request in flight must not arrive expired).
        /// </summary>
        public bool RefreshDue(DateTimeOffset now)
        {
            long t = now.ToUnixTimeSeconds();
            return t >= RefreshAfter || t >= AccessExpire - 30;
        }

        internal Session WithTokens(TokenReply t)
        {
            return new Session
            {
                AccessToken = t.AccessToken,
                AccessExpire = t.AccessExpire,
                RefreshAfter = t.RefreshAfter,
                RefreshToken = t.RefreshToken,
                Servers = t.Servers != null && t.Servers.Count > 0 ? new List<string>(t.Servers) : new List<string>(Servers),
                UserId = UserId,
                Username = Username,
                Nickname = Nickname,
            };
        }

        public void WriteJson(JsonWriter w)
        {
            w.BeginObject();
            w.Name("accessToken").Value(AccessToken);
            w.Name("accessExpire").Value(AccessExpire);
            w.Name("refreshAfter").Value(RefreshAfter);
            w.Name("refreshToken").Value(RefreshToken);
            w.Name("servers").BeginArray();
            foreach (var s in Servers ?? new List<string>()) w.Value(s);
            w.EndArray();
            w.Name("userId").Value(UserId);
            w.Name("username").Value(Username);
            w.Name("nickname").Value(Nickname);
            w.EndObject();
        }

        public string ToJson() { return JsonWriter.Serialize(this); }

        public static Session FromJson(string json)
        {
            var r = new JsonReader(json);
            var s = new Session();
            r.BeginObject();
            string name;
            while (r.NextProperty(out name))
            {
                switch (name)
                {
                    case "accessToken": s.AccessToken = r.ReadString(); break;
                    case "accessExpire": s.AccessExpire = r.ReadInt64(); break;
                    case "refreshAfter": s.RefreshAfter = r.ReadInt64(); break;
                    case "refreshToken": s.RefreshToken = r.ReadString(); break;
                    case "servers": s.Servers = r.ReadList<string>(JsonReader.Str); break;
                    case "userId": s.UserId = r.ReadInt64(); break;
                    case "username": s.Username = r.ReadString(); break;
                    case "nickname": s.Nickname = r.ReadString(); break;
                    default: r.Skip(); break;
                }
            }
            return s;
        }

        public override string ToString() { return "Session(user " + UserId + " " + Username + ")"; }
    }

    public sealed class ClientOptions
    {
        /// <summary>The HTTP stack (tests pass a fake; Unity may pass its own). Null: HttpClientHandler.</summary>
        public HttpMessageHandler Handler { get; set; }
        public IClock Clock { get; set; } = SystemClock.Instance;
        /// <summary>How long one REST call may take.</summary>
        public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);
        /// <summary>
        /// Runs each <see cref="Client.SessionChanged"/> and <see cref="Client.OnError"/>
        /// handler, in the order of the changes. Null: on the thread that made the change (a
        /// worker thread). Unity: <c>RsgameDispatcher.Post</c>, so that handlers run in Update
        /// on the main thread (where PlayerPrefs may be used).
        /// </summary>
        public Action<Action> Dispatch { get; set; }
    }

    /// <summary>
    /// The REST side of rsgame: accounts, the bag and shop, the inbox, guilds. Every method
    /// throws <see cref="RsgameException"/> for a refusal (and, with Code.Unreachable, when no
    /// answer came). Thread-safe.
    /// </summary>
    public sealed partial class Client : IDisposable
    {
        readonly HttpClient http;
        readonly IClock clock;
        readonly string root;
        readonly EventQueue events;
        // Guards the session and what goes with it. SessionChanged is queued under it, so that
        // handlers see the changes in the order they were made.
        readonly object gate = new object();
        Session session;
        RsgameException endedBy;
        Task<Session> refreshing;
        // Bumped whenever the session is replaced or ended, so a refresh that finishes
        // afterwards does not bring back tokens the player logged out of.
        int epoch;

        /// <summary>The server's REST address, e.g. http://127.0.0.1:8888 (a path prefix is kept).</summary>
        public Uri BaseUri { get; private set; }

        /// <summary>
        /// Raised with the new session after a login or a refresh (store it), and with null
        /// when it ended (a logout, or a refresh the server refused: show the login form, and
        /// <see cref="EndedBy"/> says why). One at a time, in the order of the changes, through
        /// <see cref="ClientOptions.Dispatch"/> (or on the thread that made the change). A
        /// handler that throws is reported to <see cref="OnError"/>; the call goes on.
        /// </summary>
        public event Action<Session> SessionChanged;

        /// <summary>A <see cref="SessionChanged"/> handler threw (the login or refresh it reported still succeeded).</summary>
        public event Action<Exception> OnError;

        /// <summary>
        /// The server's refusal that ended the last session: a refused refresh
        /// (<see cref="Code.TokenExpired"/>: revoked or expired; <see cref="Code.AccountBanned"/>:
        /// banned, its Message says until when and why; <see cref="Code.AccountClosed"/>: the
        /// account was closed). Null while a session is live, and after the app ended it (a logout).
        /// </summary>
        public RsgameException EndedBy { get { lock (gate) return endedBy; } }

        public Client(string baseUrl, ClientOptions options = null)
        {
            options = options ?? new ClientOptions();
            BaseUri = new Uri(baseUrl);
            if (BaseUri.Scheme != "http" && BaseUri.Scheme != "https") throw new ArgumentException("the REST address must be http:// or https://", "baseUrl");
            root = BaseUri.GetLeftPart(UriPartial.Path).TrimEnd('/');
            clock = options.Clock ?? SystemClock.Instance;
            events = new EventQueue(options.Dispatch);
            http = options.Handler != null ? new HttpClient(options.Handler, false) : new HttpClient();
            http.Timeout = options.Timeout;
        }

        public void Dispose() { http.Dispose(); }

        /// <summary>The current session; null when logged out.</summary>
        public Session Session { get { lock (gate) return session; } }

        /// <summary>Resumes a stored session (it is refreshed when due, at the first call that needs it).</summary>
        public void Restore(Session stored)
        {
            if (stored == null) throw new ArgumentNullException("stored");
            lock (gate) { session = stored; epoch++; refreshing = null; endedBy = null; }
        }

        // ---- accounts --------------------------------------------------------------------------

        public Task<Session> RegisterAsync(string username, string password, string nickname = null, Captcha captcha = null, CancellationToken ct = default(CancellationToken))
        {
            return RegisterAsync(new RegisterReq
            {
                Username = username, Password = password, Nickname = nickname,
                CaptchaKey = captcha != null ? captcha.Key : null, CaptchaCode = captcha != null ? captcha.Code : null,
            }, ct);
        }

        public Task<Session> LoginAsync(string username, string password, Captcha captcha = null, CancellationToken ct = default(CancellationToken))
        {
            return LoginAsync(new LoginReq
            {
                Username = username, Password = password,
                CaptchaKey = captcha != null ? captcha.Key : null, CaptchaCode = captcha != null ? captcha.Code : null,
            }, ct);
        }

        /// <summary>
        /// Logs in as the guest of this install; the first call makes the account. Keep the
        /// device id (<see cref="NewDeviceId"/>) in the device's storage like a password.
        /// </summary>
        public Task<Session> LoginDeviceAsync(string deviceId, Captcha captcha = null, CancellationToken ct = default(CancellationToken))
        {
            return LoginDeviceAsync(new DeviceLoginReq
            {
                DeviceId = deviceId,
                CaptchaKey = captcha != null ? captcha.Key : null, CaptchaCode = captcha != null ? captcha.Code : null,
            }, ct);
        }

        public Task<Session> LoginCodeAsync(string target, string code, string key, CancellationToken ct = default(CancellationToken))
        {
            return LoginCodeAsync(new CodeLoginReq { Target = target, Code = code, Key = key }, ct);
        }

        /// <summary>A fresh random device id (16 random bytes as hex, with a prefix), for <see cref="LoginDeviceAsync(string, Captcha, CancellationToken)"/>.</summary>
        public static string NewDeviceId()
        {
            var bytes = new byte[16];
            using (var rng = System.Security.Cryptography.RandomNumberGenerator.Create()) rng.GetBytes(bytes);
            var sb = new StringBuilder("cs-");
            foreach (var b in bytes) sb.Append(b.ToString("x2"));
            return sb.ToString();
        }

        /// <summary>Names and avatars of up to 100 accounts.</summary>
        public Task<List<PublicProfile>> ProfilesAsync(IEnumerable<long> userIds, CancellationToken ct = default(CancellationToken))
        {
            return ProfilesAsync(new ProfilesReq { UserIds = new List<long>(userIds) }, ct);
        }

        /// <summary>Forces a refresh of the tokens now (they rotate); null when the server refused it (<see cref="EndedBy"/> says why).</summary>
        public Task<Session> RefreshAsync(CancellationToken ct = default(CancellationToken))
        {
            var s = Session;
            return s == null ? Task.FromResult<Session>(null) : FreshTokenAsync(s.AccessToken, ct);
        }

        /// <summary>
        /// Revokes this session's tokens on the server and forgets them here. The tokens are
        /// forgotten even when the server cannot be reached (the call then throws).
        /// </summary>
        public async Task LogoutAsync(CancellationToken ct = default(CancellationToken))
        {
            var s = Session;
            if (s == null) return;
            try
            {
                // A live access token, or the revocation is refused and the tokens stay valid.
                var live = await FreshTokenAsync(null, ct).ConfigureAwait(false) ?? s;
                await LogoutRouteAsync(new LogoutReq { RefreshToken = live.RefreshToken }, ct).ConfigureAwait(false);
            }
            finally
            {
                EndSession(null);
            }
        }

        /// <summary>
        /// Ends every session of the account, on every device and game node (they get
        /// LogoutResp type 4), and this one.
        /// </summary>
        public async Task LogoutAllAsync(CancellationToken ct = default(CancellationToken))
        {
            var s = Session;
            await LogoutAllRouteAsync(ct).ConfigureAwait(false);
            EndSession(s);
        }

        /// <summary>Closes the account (needs a recent login: 400519 otherwise) and ends the session.</summary>
        public async Task DeleteAccountAsync(CancellationToken ct = default(CancellationToken))
        {
            var s = Session;
            await DeleteRouteAsync(ct).ConfigureAwait(false);
            EndSession(s);
        }

        // ---- files ------------------------------------------------------------------------------

        /// <summary>
        /// Uploads a file for the player (an avatar: then <c>UpdateAsync(new ProfileReq { Avatar =
        /// detail.Info.Guid })</c>) as the multipart form <c>/basic/v1/basic/upload</c> takes (the
        /// field <c>file</c>). The server checks the size (<c>basic.upload_max_bytes</c>) and that the
        /// content matches the name's extension (400102 otherwise).
        /// </summary>
        public Task<FileDetail> UploadAsync(byte[] bytes, string fileName, string contentType = "application/octet-stream", CancellationToken ct = default(CancellationToken))
        {
            if (bytes == null) throw new ArgumentNullException("bytes");
            if (string.IsNullOrEmpty(fileName)) throw new ArgumentException("a file name (its extension is checked)", "fileName");
            // A new form for every send: a call refused for its token is sent again after a refresh.
            var body = new RawBody(() =>
            {
                var file = new ByteArrayContent(bytes);
                file.Headers.ContentType = new MediaTypeHeaderValue(contentType);
                var form = new MultipartFormDataContent();
                form.Add(file, "file", fileName);
                return form;
            });
            return CallAsync("POST", "/basic/v1/basic/upload", body, Auth.Required, FileDetail.ReadJson, ct);
        }

        /// <summary>A request body that is not JSON (a multipart form), made anew for each send.</summary>
        sealed class RawBody : IJsonWritable
        {
            public readonly Func<HttpContent> Make;
            public RawBody(Func<HttpContent> make) { Make = make; }
            public void WriteJson(JsonWriter w) { throw new NotSupportedException("not a JSON body"); }
        }

        // ---- the game ---------------------------------------------------------------------------

        /// <summary>Buys <paramref name="count"/> of shop listing <paramref name="listingId"/>; the new pack.</summary>
        public Task<Pack> BuyGoodsAsync(long listingId, long count = 1, CancellationToken ct = default(CancellationToken))
        {
            return BuyGoodsAsync(new IdReq { Id = listingId, Count = count }, ct);
        }

        /// <summary>Uses a consumable or equips equipment; the new pack.</summary>
        public Task<Pack> UseGoodsAsync(long goodsId, CancellationToken ct = default(CancellationToken))
        {
            return UseGoodsAsync(new IdReq { Id = goodsId }, ct);
        }

        /// <summary>A leaderboard page, by <see cref="RankBy"/>.Score or .Level.</summary>
        public Task<Ranking> GetRankAsync(string by, long page = 1, long pageSize = 20, CancellationToken ct = default(CancellationToken))
        {
            return GetRankAsync(new RankReq { By = by, Page = page, PageSize = pageSize }, ct);
        }

        /// <summary>A page of the inbox, newest first; pass the page's Next as <paramref name="before"/> for the next.</summary>
        public Task<InboxPage> InboxListAsync(long before = 0, long limit = 20, CancellationToken ct = default(CancellationToken))
        {
            return InboxListAsync(new InboxReq { Before = before, Limit = limit }, ct);
        }

        public Task<JsonValue> InboxReadAsync(IEnumerable<long> ids, CancellationToken ct = default(CancellationToken))
        {
            return InboxReadAsync(new IdsReq { Ids = new List<long>(ids) }, ct);
        }

        /// <summary>Claims a message's attachment; the player's profile after it.</summary>
        public Task<Player> InboxClaimAsync(long id, CancellationToken ct = default(CancellationToken))
        {
            return InboxClaimAsync(new ClaimReq { Id = id }, ct);
        }

        /// <summary>The player's own guild (<paramref name="guildId"/> 0) or any other.</summary>
        public Task<GuildDetail> GuildDetailAsync(long guildId = 0, CancellationToken ct = default(CancellationToken))
        {
            return GuildDetailAsync(new GuildReq { GuildId = guildId }, ct);
        }

        // ---- game servers ------------------------------------------------------------------------

        /// <summary>The session's game servers as WebSocket URLs (a path is resolved on the REST host).</summary>
        public IList<Uri> GameServerUris()
        {
            var s = Session;
            var list = new List<Uri>();
            if (s == null) return list;
            var servers = s.Servers != null && s.Servers.Count > 0 ? s.Servers : new List<string> { "/ws" };
            foreach (var server in servers) list.Add(ResolveGameServer(BaseUri, server));
            return list;
        }

        /// <summary>A login reply's server entry as a WebSocket URL: absolute, or a path on <paramref name="restBase"/>.</summary>
        public static Uri ResolveGameServer(Uri restBase, string server)
        {
            if (server.StartsWith("ws://", StringComparison.OrdinalIgnoreCase) || server.StartsWith("wss://", StringComparison.OrdinalIgnoreCase))
                return new Uri(server);
            if (server.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) return new Uri("ws://" + server.Substring(7));
            if (server.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) return new Uri("wss://" + server.Substring(8));
            // A page served over HTTPS may only open wss:// sockets; the same holds for us.
            var scheme = restBase.Scheme == "https" ? "wss" : "ws";
            var b = new UriBuilder(scheme, restBase.Host, restBase.IsDefaultPort ? -1 : restBase.Port);
            var path = server.StartsWith("/") ? server : "/" + server;
            int q = path.IndexOf('?');
            if (q >= 0) { b.Path = path.Substring(0, q); b.Query = path.Substring(q + 1); }
            else b.Path = path;
            return b.Uri;
        }

        // ---- tokens ------------------------------------------------------------------------------

        /// <summary>
        /// A session with a usable access token: the current one, or one refreshed when it is
        /// due or when <paramref name="rejectedAccessToken"/> (a token the server just refused)
        /// is still the current one. Null: the session is over (log in again; <see cref="EndedBy"/>
        /// says why). Only one refresh runs at a time, shared by every caller: refresh tokens
        /// rotate and a reused one revokes the whole family, so the socket's reconnect and a
        /// REST call must never both spend the same one. A refresh refused for the token
        /// (400103) or the account (400515 banned, 400516 closed) ends the session; one that
        /// fails for any other reason (no network, a proxy, a rate limit) throws and leaves the
        /// session in place.
        /// </summary>
        public Task<Session> FreshTokenAsync(string rejectedAccessToken = null, CancellationToken ct = default(CancellationToken))
        {
            Task<Session> task;
            lock (gate)
            {
                var s = session;
                if (s == null) return Task.FromResult<Session>(null);
                bool due = rejectedAccessToken != null ? s.AccessToken == rejectedAccessToken : s.RefreshDue(clock.UtcNow);
                if (!due && refreshing == null) return Task.FromResult(s);
                if (refreshing == null) refreshing = RefreshOnceAsync(s, epoch);
                task = refreshing;
            }
            return WaitAsync(task, ct);
        }

        async Task<Session> RefreshOnceAsync(Session s, int started)
        {
            // Yield first, so that the caller's lock is released before any work starts.
            await Task.Yield();
            Session next = null;
            try
            {
                var t = await RefreshRouteAsync(new RefreshReq { RefreshToken = s.RefreshToken }, CancellationToken.None).ConfigureAwait(false);
                lock (gate)
                {
                    // Logged out (or in as someone else) meanwhile: these tokens are not wanted,
                    // and `refreshing` (reset by that change) may already be another refresh.
                    if (epoch != started) return session;
                    refreshing = null;
                    next = s.WithTokens(t);
                    session = next;
                    RaiseSessionChanged(next);
                }
            }
            catch (RsgameException e) when (EndsSession(e.Code))
            {
                // Only a refusal of the refresh token or of the account ends the session.
                lock (gate)
                {
                    if (epoch != started) return session;
                    refreshing = null;
                    session = null;
                    epoch++;
                    endedBy = e;
                    RaiseSessionChanged(null);
                }
            }
            catch
            {
                lock (gate) { if (epoch == started) refreshing = null; }
                throw;
            }
            finally
            {
                events.Drain();
            }
            return next;
        }

        /// <summary>Whether a refused refresh means the session is over: a refused token, a banned or a closed account.</summary>
        static bool EndsSession(Code code)
        {
            return code == Code.TokenExpired || code == Code.AccountBanned || code == Code.AccountClosed;
        }

        internal async Task<Session> StartSessionAsync(TokenReply t, CancellationToken ct)
        {
            var s = new Session
            {
                AccessToken = t.AccessToken,
                AccessExpire = t.AccessExpire,
                RefreshAfter = t.RefreshAfter,
                RefreshToken = t.RefreshToken,
                Servers = t.Servers != null && t.Servers.Count > 0 ? new List<string>(t.Servers) : new List<string> { "/ws" },
            };
            int mine;
            lock (gate) { session = s; refreshing = null; mine = ++epoch; endedBy = null; }
            Detail d;
            try
            {
                // The game login needs the account id, which only `detail` gives.
                d = await DetailAsync(ct).ConfigureAwait(false);
            }
            catch
            {
                // Without the account id the session is of no use: make the caller log in again.
                lock (gate) { if (epoch == mine) { session = null; refreshing = null; epoch++; } }
                throw;
            }
            lock (gate)
            {
                if (epoch != mine || session == null) throw new RsgameException((int)Code.TokenExpired, "the session ended while logging in");
                // `session` rather than `s`: a refresh may have replaced it meanwhile.
                session.UserId = d.UserInfo.Id;
                session.Username = d.UserInfo.Username;
                session.Nickname = d.UserInfo.Nickname;
                s = session;
                RaiseSessionChanged(s);
            }
            events.Drain();
            return s;
        }

        void EndSession(Session only)
        {
            lock (gate)
            {
                // Already over (a refused refresh meanwhile): it was said then.
                if (session == null || (only != null && session != only)) return;
                session = null;
                refreshing = null;
                epoch++;
                endedBy = null;
                RaiseSessionChanged(null);
            }
            events.Drain();
        }

        // Under `gate`, where the session changed; the caller drains the events after.
        void RaiseSessionChanged(Session s)
        {
            var h = SessionChanged;
            if (h == null) return;
            events.Add(() =>
            {
                // A handler's bug (PlayerPrefs off the main thread…) must not fail a login or
                // a refresh that succeeded.
                try { h(s); }
                catch (Exception e)
                {
                    var report = OnError;
                    if (report == null) return;
                    try { report(e); }
                    catch (Exception) { }
                }
            });
        }

        static async Task<T> WaitAsync<T>(Task<T> task, CancellationToken ct)
        {
            if (!ct.CanBeCanceled || task.IsCompleted) return await task.ConfigureAwait(false);
            var cancelled = new TaskCompletionSource<bool>();
            using (ct.Register(() => cancelled.TrySetResult(true)))
            {
                if (await Task.WhenAny(task, cancelled.Task).ConfigureAwait(false) != task) throw new OperationCanceledException(ct);
            }
            return await task.ConfigureAwait(false);
        }

        // ---- the envelope ------------------------------------------------------------------------

        internal async Task<T> CallAsync<T>(string method, string path, IJsonWritable body, Auth auth, Func<JsonReader, T> read, CancellationToken ct)
        {
            Session s = null;
            if (auth != Auth.None)
            {
                s = await FreshTokenAsync(null, ct).ConfigureAwait(false);
                if (s == null && auth == Auth.Required) throw NotLoggedIn(null);
            }
            try
            {
                return await SendAsync(method, path, body, s != null ? s.AccessToken : null, read, ct).ConfigureAwait(false);
            }
            catch (RsgameException e) when (e.Code == Code.TokenExpired && s != null)
            {
                // Refused before its expiry (revoked by a logout elsewhere, new signing keys):
                // refresh once and call again. A refused token means the call did nothing.
                var fresh = await FreshTokenAsync(s.AccessToken, ct).ConfigureAwait(false);
                if (fresh == null) throw NotLoggedIn(e);
                if (fresh.AccessToken == s.AccessToken) throw;
                return await SendAsync(method, path, body, fresh.AccessToken, read, ct).ConfigureAwait(false);
            }
        }

        // No session for a call that needs one: why, when the server said (a ban rather than a bare 400103).
        RsgameException NotLoggedIn(RsgameException refused)
        {
            var why = EndedBy;
            if (why != null) return new RsgameException(why.RawCode, why.Message, why.HttpStatus, 0, refused);
            return refused ?? new RsgameException((int)Code.TokenExpired, "not logged in");
        }

        async Task<T> SendAsync<T>(string method, string path, IJsonWritable body, string token, Func<JsonReader, T> read, CancellationToken ct)
        {
            var req = new HttpRequestMessage(new HttpMethod(method), root + path);
            var raw = body as RawBody;
            if (raw != null) req.Content = raw.Make();
            else if (method != "GET") req.Content = new StringContent(JsonWriter.Serialize(body), Encoding.UTF8, "application/json");
            if (token != null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            HttpResponseMessage res;
            string text;
            try
            {
                res = await http.SendAsync(req, ct).ConfigureAwait(false);
                text = await res.Content.ReadAsStringAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception e) when (e is HttpRequestException || e is OperationCanceledException || e is System.IO.IOException)
            {
                // OperationCanceledException without our token: HttpClient's own time-out.
                throw new RsgameException((int)Code.Unreachable, "the server cannot be reached (" + path + ")", 0, 0, e);
            }
            int status = (int)res.StatusCode;
            int code = -1;
            string msg = "", data = null;
            try
            {
                var r = new JsonReader(text);
                r.BeginObject();
                string name;
                while (r.NextProperty(out name))
                {
                    switch (name)
                    {
                        case "code": code = r.ReadInt32(); break;
                        case "msg": msg = r.ReadString(); break;
                        case "data": data = r.ReadRawValue(); break;
                        default: r.Skip(); break;
                    }
                }
                r.ExpectEnd();
            }
            catch (JsonException)
            {
                code = -1;
            }
            if (code == -1) throw new RsgameException((int)Code.Unreachable, "HTTP " + status + " without an rsgame reply (" + path + ")", status);
            if (code != 200) throw new RsgameException(code, msg, status);
            try
            {
                return read(new JsonReader(data ?? "null"));
            }
            catch (JsonException e)
            {
                throw new RsgameException((int)Code.Unreachable, "the reply of " + path + " did not read: " + e.Message, status, 0, e);
            }
        }
    }
}
