// The game connection against a fake server: login, pairing, refusals, the offline queue,
// heartbeat, reconnection with backoff, refreshing a refused token, and the stops.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace Rsgame.Tests
{
    [TestFixture]
    public class SocketTests
    {
        FakeClock clock;
        List<FakeTransport> made;
        List<string> rejectedSeen;
        List<string> tokens;
        BlockingCollection<SocketStatus> statuses;
        List<Exception> errors;
        Socket socket;

        [SetUp]
        public void SetUp()
        {
            clock = new FakeClock();
            made = new List<FakeTransport>();
            rejectedSeen = new List<string>();
            tokens = new List<string> { "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9" };
            statuses = new BlockingCollection<SocketStatus>();
            errors = new List<Exception>();
        }

        [TearDown]
        public void TearDown()
        {
            if (socket != null) socket.Stop();
        }

        // A socket whose credentials hand out T1, then a new token each time one is refused.
        Socket NewSocket(Action<FakeTransport> prepare = null)
        {
            int current = 0;
            var options = new SocketOptions
            {
                Clock = clock,
                Random = () => 0.5, // no jitter: delays are exactly the backoff
                Transport = () =>
                {
                    var t = new FakeTransport();
                    if (prepare != null) prepare(t);
                    lock (made) made.Add(t);
                    return t;
                },
            };
            socket = new Socket(() => new List<Uri> { new Uri("ws://game.test/ws"), new Uri("ws://game2.test/ws") }, (rejected, ct) =>
            {
                lock (rejectedSeen)
                {
                    rejectedSeen.Add(rejected);
                    if (rejected != null && rejected == tokens[current]) current++;
                    if (tokens[current] == "END") return Task.FromResult<Session>(null);
                    return Task.FromResult(new Session { UserId = 7, AccessToken = tokens[current] });
                }
            }, options);
            socket.StatusChanged += (s, d) => statuses.Add(s);
            socket.OnError += e => { lock (errors) errors.Add(e); };
            return socket;
        }

        FakeTransport Connection(int n)
        {
            Wait.Until(() => { lock (made) return made.Count > n; }, "connection " + n);
            lock (made) return made[n];
        }

        // Waits for the reconnect timer (any but the 5 s heartbeat) and lets it fire; its length.
        double AdvanceBackoff()
        {
            TimeSpan d = TimeSpan.Zero;
            Wait.Until(() =>
            {
                var w = clock.Waiting().Where(x => x != TimeSpan.FromSeconds(5)).ToList();
                if (w.Count == 0) return false;
                d = w[0];
                return true;
            }, "the backoff timer");
            clock.Advance(d);
            return d.TotalSeconds;
        }

        void ExpectStatus(SocketStatus want)
        {
            SocketStatus s;
            var until = DateTime.UtcNow.AddSeconds(5);
            while (statuses.TryTake(out s, Math.Max(1, (int)(until - DateTime.UtcNow).TotalMilliseconds)))
                if (s == want) return;
            Assert.Fail("status " + want + " never came");
        }

        // Starts the socket and answers its login; returns the connection.
        FakeTransport Online()
        {
            NewSocket().Start();
            var t = Connection(0);
            LogIn(t);
            return t;
        }

        void LogIn(FakeTransport t, string token = null)
        {
            var login = t.NextNotPing();
            Assert.AreEqual(MessageId.GameLogin, login.Key);
            Assert.AreEqual(7, login.Value["userId"].AsLong());
            Assert.AreEqual("caps=all", login.Value["param"].AsString());
            if (token != null) Assert.AreEqual(token, login.Value["token"].AsString());
            t.Push(MessageId.UserInfo, new UserInfo { UserId = 7, RoomId = 1000 });
            ExpectStatus(SocketStatus.Online);
        }

        [Test]
        public void LogsInAndRaisesTypedEvents()
        {
            NewSocket();
            var moves = new BlockingCollection<MoveResp>();
            var all = new BlockingCollection<int>();
            bool? reconnected = null;
            socket.OnMoveResp += m => moves.Add(m);
            socket.OnMessage += (mid, body) => all.Add(mid);
            socket.LoggedIn += (info, again) => reconnected = again;
            socket.Start();
            var t = Connection(0);
            LogIn(t, "T1");
            Wait.Until(() => reconnected.HasValue, "LoggedIn");
            Assert.AreEqual(false, reconnected);
            var resp = new MoveResp();
            resp.SiteList.Add(new UserSite { UserId = 8, Site = new Site { X = 3, Z = 4 }, Action = "move" });
            t.Push(MessageId.MoveResp, resp);
            MoveResp got;
            Assert.IsTrue(moves.TryTake(out got, 5000));
            Assert.AreEqual(3f, got.SiteList[0].Site.X);
            // An id this SDK does not know arrives as a JsonValue; the session goes on.
            t.PushText("{\"id\":299999,\"data\":{\"new\":1}}");
            int id;
            Assert.IsTrue(all.TryTake(out id, 5000)); // UserInfo
            Assert.IsTrue(all.TryTake(out id, 5000)); // MoveResp
            Assert.IsTrue(all.TryTake(out id, 5000));
            Assert.AreEqual(299999, id);
        }

        [Test]
        public void RequestsPairWithTheirRepliesInOrder()
        {
            var t = Online();
            var first = socket.Request(new EnterRoom { RoomId = 1001 });
            var second = socket.Request(new EnterRoom { RoomId = 1002 });
            var list = socket.Request(new RoomList());
            Assert.AreEqual(MessageId.EnterRoom, t.NextNotPing().Key);
            Assert.AreEqual(MessageId.EnterRoom, t.NextNotPing().Key);
            Assert.AreEqual(MessageId.RoomList, t.NextNotPing().Key);
            t.Push(MessageId.RoomListResp, new RoomListResp());
            t.Push(MessageId.EnterRoomResp, new EnterRoomResp { RoomId = 1001 });
            t.Push(MessageId.EnterRoomResp, new EnterRoomResp { RoomId = 1002 });
            Assert.AreEqual(1001, Wait.Result(first).RoomId);
            Assert.AreEqual(1002, Wait.Result(second).RoomId);
            Assert.IsNotNull(Wait.Result(list));
        }

        [Test]
        public void AnErrorRespRejectsTheRequestItNames()
        {
            var t = Online();
            var create = socket.Request(new CreateRoom { Name = "x", Type = 3 });
            var enter = socket.Request(new EnterRoom { RoomId = 5 });
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.EnterRoom, Code = 400501, Msg = "wrong password" });
            var e = (RsgameException)Wait.Error(enter);
            Assert.AreEqual(Code.Forbidden, e.Code);
            Assert.AreEqual(MessageId.EnterRoom, e.RequestId);
            Assert.IsFalse(create.IsCompleted, "another request is not touched");
            t.Push(MessageId.CreateRoomResp, new CreateRoomResp { Status = 200, Msg = "77" });
            Assert.AreEqual("77", Wait.Result(create).Msg);
        }

        [Test]
        public void ASentRequestThatTimesOutReplacesTheConnection()
        {
            var t = Online();
            var late = socket.Request(new RoomList(), TimeSpan.FromSeconds(3));
            var other = socket.Request(new EnterRoom { RoomId = 5 });
            Assert.AreEqual(MessageId.RoomList, t.NextNotPing().Key);
            Assert.AreEqual(MessageId.EnterRoom, t.NextNotPing().Key);
            clock.Advance(TimeSpan.FromSeconds(3));
            Assert.IsInstanceOf<TimeoutException>(Wait.Error(late));
            // Answers come in order: after one that may come late or never, none can be paired.
            Assert.IsInstanceOf<ConnectionException>(Wait.Error(other), "the other request sent on that connection fails");
            ExpectStatus(SocketStatus.Offline);
            t.Push(MessageId.RoomListResp, new RoomListResp()); // the late answer: nobody reads it
            AdvanceBackoff();
            var t2 = Connection(1);
            LogIn(t2);
            var next = socket.Request(new RoomList { Type = 3 });
            Assert.AreEqual(MessageId.RoomList, t2.NextNotPing().Key);
            var answer = new RoomListResp();
            answer.RoomList.Add(new EnterRoomResp { RoomId = 9 });
            t2.Push(MessageId.RoomListResp, answer);
            Assert.AreEqual(9, Wait.Result(next).RoomList[0].RoomId);
        }

        [Test]
        public void AQueuedRequestThatTimesOutIsForgotten()
        {
            NewSocket();
            var queued = socket.Request(new RoomList(), TimeSpan.FromSeconds(3));
            clock.Advance(TimeSpan.FromSeconds(3));
            Assert.IsInstanceOf<TimeoutException>(Wait.Error(queued));
            socket.Start();
            var t = Connection(0);
            LogIn(t);
            Assert.IsTrue(t.Quiet(), "it is not sent after the login");
        }

        [Test]
        public void ACancelledRequestKeepsItsPlace()
        {
            var t = Online();
            var cts = new CancellationTokenSource();
            var first = socket.Request(new RoomList(), null, cts.Token);
            t.NextNotPing();
            cts.Cancel();
            Assert.IsInstanceOf<OperationCanceledException>(Wait.Error(first));
            var second = socket.Request(new RoomList { Type = 3 });
            t.NextNotPing();
            t.Push(MessageId.RoomListResp, new RoomListResp()); // the first one's answer: dropped
            var answer = new RoomListResp();
            answer.RoomList.Add(new EnterRoomResp { RoomId = 9 });
            t.Push(MessageId.RoomListResp, answer);
            Assert.AreEqual(9, Wait.Result(second).RoomList[0].RoomId);
            Assert.AreEqual(SocketStatus.Online, socket.Status);
        }

        [Test]
        public void AReplyThatDoesNotDecodeFailsItsRequestAndTheNextOnePairs()
        {
            var t = Online();
            var first = socket.Request(new EnterRoom { RoomId = 1 });
            var second = socket.Request(new EnterRoom { RoomId = 2 });
            var third = socket.Request(new EnterRoom { RoomId = 3 });
            var fourth = socket.Request(new EnterRoom { RoomId = 4 });
            for (int i = 0; i < 4; i++) Assert.AreEqual(MessageId.EnterRoom, t.NextNotPing().Key);
            t.PushText("{\"id\":200001,\"data\":{\"roomId\":[1]}}");
            // An ErrorResp that does not decode still names the request it refuses.
            t.PushText("{\"id\":9000,\"data\":{\"reqId\":100001,\"code\":[400501]}}");
            t.Push(MessageId.EnterRoomResp, new EnterRoomResp { RoomId = 3 });
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.EnterRoom, Code = 400501, Msg = "wrong password" });
            StringAssert.Contains("EnterRoomResp", Wait.Error(first).Message);
            Assert.IsInstanceOf<JsonException>(Wait.Error(first));
            Assert.IsInstanceOf<JsonException>(Wait.Error(second));
            Assert.AreEqual(3, Wait.Result(third).RoomId);
            Assert.AreEqual(Code.Forbidden, ((RsgameException)Wait.Error(fourth)).Code);
            Assert.AreEqual(SocketStatus.Online, socket.Status);
            lock (errors) Assert.IsEmpty(errors, "each failure went to its request");
        }

        [Test]
        public void AnErrorRespNoRequestTookIsAnErrorAndTheRawEventHasThemAll()
        {
            var t = Online();
            var raw = new BlockingCollection<ErrorResp>();
            socket.OnErrorResp += raw.Add;
            var enter = socket.Request(new EnterRoom { RoomId = 5 });
            t.NextNotPing();
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.EnterRoom, Code = 400501, Msg = "wrong password" });
            Assert.AreEqual(Code.Forbidden, ((RsgameException)Wait.Error(enter)).Code);
            Assert.IsTrue(socket.Send(new ChatMsg { ChatType = 1, Msg = "hi" }));
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.ChatMsg, Code = 400500, Msg = "muted" });
            Wait.Until(() => { lock (errors) return errors.Count == 1; }, "the refused chat on OnError");
            lock (errors)
            {
                var e = (RsgameException)errors[0];
                Assert.AreEqual(MessageId.ChatMsg, e.RequestId);
                Assert.AreEqual(400500, e.RawCode);
                Assert.AreEqual("muted", e.Message);
            }
            ErrorResp r;
            Assert.IsTrue(raw.TryTake(out r, 5000));
            Assert.AreEqual(MessageId.EnterRoom, (int)r.ReqId);
            Assert.IsTrue(raw.TryTake(out r, 5000));
            Assert.AreEqual(MessageId.ChatMsg, (int)r.ReqId);
        }

        [Test]
        public void TheServersNoticeIsTheReasonOfTheCloseNotAnError()
        {
            var t = Online();
            var why = new BlockingCollection<string>();
            socket.StatusChanged += (s, d) => { if (s == SocketStatus.Offline) why.Add(d); };
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = 0, Code = 400502, Msg = "too many messages" });
            t.ServerClose(1008, "flood");
            string detail;
            Assert.IsTrue(why.TryTake(out detail, 5000));
            StringAssert.Contains("400502 too many messages", detail);
            lock (errors) Assert.IsEmpty(errors);
        }

        [Test]
        public void ALogoutRespType1StopsTheSocket()
        {
            var t = Online();
            t.Push(MessageId.LogoutResp, new LogoutResp { Type = (int)LogoutType.Quit });
            ExpectStatus(SocketStatus.Closed);
            clock.Advance(TimeSpan.FromSeconds(60));
            Thread.Sleep(100);
            lock (made) Assert.AreEqual(1, made.Count, "no reconnect after a logout");
        }

        [TestCase(400515, "this account is banned until 1900000000000 (unix ms): cheating")]
        [TestCase(400516, "this account was closed")]
        [TestCase(400501, "the token belongs to another account")]
        public void ALoginRefusedForGoodEndsTheSessionAndSaysWhy(int code, string msg)
        {
            NewSocket().Start();
            var t = Connection(0);
            t.NextNotPing();
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.GameLogin, Code = code, Msg = msg });
            ExpectStatus(SocketStatus.SessionEnded);
            Assert.AreEqual(code, socket.EndedBy.RawCode);
            Assert.AreEqual(msg, socket.EndedBy.Message);
            clock.Advance(TimeSpan.FromSeconds(60));
            Thread.Sleep(100);
            lock (made) Assert.AreEqual(1, made.Count, "no retry");
        }

        [Test]
        public void ARefreshRefusedForABanEndsTheSocketWithTheReason()
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Error(400515, "this account is banned: cheating"));
            var client = new Client("http://game.test/", new ClientOptions { Handler = http, Clock = clock });
            client.Restore(new Session { AccessToken = "OLD", RefreshToken = "R0", AccessExpire = 1000, RefreshAfter = 1000, UserId = 7 });
            socket = new Socket(client, new SocketOptions
            {
                Clock = clock,
                Transport = () => { var t = new FakeTransport(); lock (made) made.Add(t); return t; },
            });
            socket.StatusChanged += (s, d) => statuses.Add(s);
            socket.Start();
            ExpectStatus(SocketStatus.SessionEnded);
            Assert.AreEqual(Code.AccountBanned, socket.EndedBy.Code);
            StringAssert.Contains("cheating", socket.EndedBy.Message);
            Assert.AreEqual(Code.AccountBanned, client.EndedBy.Code);
            Assert.IsNull(client.Session);
            lock (made) Assert.AreEqual(0, made.Count);
        }

        [Test]
        public void AWallClockJumpNeitherDropsTheConnectionNorSkewsTheRoundTrip()
        {
            var t = Online();
            // The player sets the device's clock an hour ahead: no silence is measured from it.
            clock.Jump(TimeSpan.FromHours(1));
            clock.Advance(TimeSpan.FromSeconds(5));
            var ping = t.Next();
            Assert.AreEqual(MessageId.Ping, ping.Key, "the heartbeat goes on");
            clock.Jump(TimeSpan.FromHours(-2));
            clock.Advance(TimeSpan.FromMilliseconds(40));
            t.Push(MessageId.PingResp, new PingResp { Sn = ping.Value["sn"].AsLong() });
            Wait.Until(() => socket.Rtt == TimeSpan.FromMilliseconds(40), "the round trip");
            Assert.AreEqual(SocketStatus.Online, socket.Status);
            lock (made) Assert.AreEqual(1, made.Count);
        }

        [Test]
        public void EventsAreRaisedOneAtATimeInTheOrderOfTheChanges()
        {
            NewSocket();
            var inOnline = new ManualResetEventSlim();
            var release = new ManualResetEventSlim();
            var seen = new List<SocketStatus>();
            int running = 0;
            bool overlapped = false;
            socket.StatusChanged += (s, d) =>
            {
                if (Interlocked.Increment(ref running) > 1) overlapped = true;
                lock (seen) seen.Add(s);
                if (s == SocketStatus.Online)
                {
                    inOnline.Set();
                    release.Wait(5000);
                }
                Interlocked.Decrement(ref running);
            };
            socket.Start();
            var t = Connection(0);
            t.NextNotPing();
            t.Push(MessageId.UserInfo, new UserInfo { UserId = 7 });
            Assert.IsTrue(inOnline.Wait(5000));
            // Stopped while the Online handler still runs: Closed waits for it, and comes last.
            socket.Stop();
            Assert.AreEqual(SocketStatus.Closed, socket.Status);
            lock (seen) CollectionAssert.AreEqual(new[] { SocketStatus.Connecting, SocketStatus.Online }, seen);
            release.Set();
            Wait.Until(() => { lock (seen) return seen.Count == 3; }, "Closed");
            lock (seen) CollectionAssert.AreEqual(new[] { SocketStatus.Connecting, SocketStatus.Online, SocketStatus.Closed }, seen);
            Assert.IsFalse(overlapped, "two handlers ran at once");
        }

        [Test]
        public void WithADispatcherAnAwaitedRequestContinuesInOrderWithTheEvents()
        {
            using (var main = new MainLoop())
            {
                var options = new SocketOptions { Clock = clock, Random = () => 0.5, Dispatch = main.Dispatch };
                var t = new FakeTransport();
                options.Transport = () => t;
                socket = new Socket(() => new List<Uri> { new Uri("ws://game.test/ws") },
                    (r, ct) => Task.FromResult(new Session { UserId = 7, AccessToken = "T" }), options);
                var log = new List<string>();
                socket.OnEnterRoomResp += r => log.Add("EnterRoomResp event");
                socket.OnSpawnResp += r => log.Add("SpawnResp event");
                socket.StatusChanged += (s, d) => statuses.Add(s);
                socket.Start();
                LogIn(t);
                main.Invoke(async () =>
                {
                    var room = await socket.Request(new EnterRoom { RoomId = 7 });
                    log.Add("after await " + room.RoomId + (SynchronizationContext.Current == main ? " on the main thread" : ""));
                });
                Assert.AreEqual(MessageId.EnterRoom, t.NextNotPing().Key);
                // The reply and the push after it arrive within one frame.
                main.Hold();
                int before = main.DispatchedCount;
                t.Push(MessageId.EnterRoomResp, new EnterRoomResp { RoomId = 7 });
                t.Push(MessageId.SpawnResp, new SpawnResp());
                Wait.Until(() => main.DispatchedCount >= before + 3, "the reply's event, its completion and the push's event");
                main.Release();
                Wait.Until(() => log.Count == 3, "the three steps");
                CollectionAssert.AreEqual(new[] { "EnterRoomResp event", "after await 7 on the main thread", "SpawnResp event" }, log);
                lock (main.Errors) Assert.IsEmpty(main.Errors);
            }
        }

        [Test]
        public void LogoutStopsEvenWhenTheServerRefusesIt()
        {
            var t = Online();
            var done = socket.LogoutAsync();
            Assert.AreEqual(MessageId.Logout, t.NextNotPing().Key);
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.Logout, Code = 400500, Msg = "not now" });
            Assert.AreEqual(400500, ((RsgameException)Wait.Error(done)).RawCode);
            Assert.AreEqual(SocketStatus.Closed, socket.Status);
            ExpectStatus(SocketStatus.Closed);
        }

        [Test]
        public void OfflineRequestsWaitForTheLoginAndStaleOnesAreDropped()
        {
            NewSocket();
            Assert.IsTrue(socket.Send(new ChatMsg { ChatType = 1, Msg = "queued" }));
            Assert.IsFalse(socket.Send(new Move { Site = new Site { X = 1 } }), "a move goes stale");
            Assert.IsFalse(socket.Send(new Respawn()), "so does a respawn");
            // A request that goes stale (Ping, paired with PingResp) fails at once.
            var stale = socket.Request(new Ping { Sn = 1 });
            Assert.IsInstanceOf<ConnectionException>(Wait.Error(stale));
            var list = socket.Request(new RoomList());
            socket.Start();
            var t = Connection(0);
            Assert.AreEqual(MessageId.GameLogin, t.NextNotPing().Key, "the login goes first");
            Assert.IsTrue(t.Quiet(), "nothing before the login is answered");
            t.Push(MessageId.UserInfo, new UserInfo { UserId = 7 });
            var chat = t.NextNotPing();
            Assert.AreEqual(MessageId.ChatMsg, chat.Key);
            Assert.AreEqual("queued", chat.Value["msg"].AsString());
            Assert.AreEqual(MessageId.RoomList, t.NextNotPing().Key);
            t.Push(MessageId.RoomListResp, new RoomListResp());
            Wait.Result(list);
        }

        [Test]
        public void TheOfflineQueueIsBounded()
        {
            NewSocket();
            for (int i = 0; i < 32; i++) Assert.IsTrue(socket.Send(new ChatMsg { Msg = "m" + i }));
            Assert.IsFalse(socket.Send(new ChatMsg { Msg = "one too many" }));
        }

        [Test]
        public void HeartbeatPingsAndMeasuresTheRoundTrip()
        {
            var t = Online();
            clock.Advance(TimeSpan.FromSeconds(5));
            var ping = t.Next();
            Assert.AreEqual(MessageId.Ping, ping.Key);
            clock.Advance(TimeSpan.FromMilliseconds(40));
            t.Push(MessageId.PingResp, new PingResp { Sn = ping.Value["sn"].AsLong() });
            Wait.Until(() => socket.Rtt == TimeSpan.FromMilliseconds(40), "the round trip");
        }

        [Test]
        public void SilenceDropsTheConnectionAndItReconnects()
        {
            Online();
            // Pings go out every 5 s and nothing answers them: past 20 s the connection is dead.
            Wait.Until(() =>
            {
                clock.Advance(TimeSpan.FromSeconds(5));
                Thread.Sleep(20);
                return socket.Status == SocketStatus.Offline;
            }, "the silent connection to be dropped");
            AdvanceBackoff();
            LogIn(Connection(1));
        }

        [Test]
        public void ReconnectsWithBackoffAndSaysItReconnected()
        {
            var t = Online();
            bool again = false;
            socket.LoggedIn += (info, r) => again = r;
            var sent = socket.Request(new RoomList());
            t.NextNotPing();
            t.ServerClose(1011, "handler_panic");
            ExpectStatus(SocketStatus.Offline);
            Assert.IsInstanceOf<ConnectionException>(Wait.Error(sent), "a sent request cannot be answered on the next connection");
            var delays = new List<double>();
            for (int attempt = 0; attempt < 7; attempt++)
            {
                delays.Add(AdvanceBackoff());
                var next = Connection(attempt + 1);
                if (attempt < 6)
                {
                    Assert.AreEqual(MessageId.GameLogin, next.NextNotPing().Key);
                    next.ServerClose(1006, "");
                }
            }
            CollectionAssert.AreEqual(new[] { 0.5, 1, 2, 4, 8, 10, 10 }, delays);
            LogIn(Connection(7));
            Wait.Until(() => again, "LoggedIn with reconnected = true");
        }

        [Test]
        public void BackoffHasTwentyPercentJitter()
        {
            Assert.AreEqual(400, Socket.Backoff(0, 0).TotalMilliseconds, 1e-9);
            Assert.AreEqual(600, Socket.Backoff(0, 1).TotalMilliseconds, 1e-9);
            Assert.AreEqual(8000, Socket.Backoff(10, 0).TotalMilliseconds, 1e-9);
            Assert.AreEqual(12000, Socket.Backoff(10, 1).TotalMilliseconds, 1e-9);
            Assert.AreEqual(2000, Socket.Backoff(2, 0.5).TotalMilliseconds, 1e-9);
        }

        [Test]
        public void ARefusedLoginRefreshesTheTokenOnceAndRetries()
        {
            NewSocket().Start();
            var t = Connection(0);
            Assert.AreEqual("T1", t.NextNotPing().Value["token"].AsString());
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.GameLogin, Code = 400103, Msg = "token expired or invalid" });
            ExpectStatus(SocketStatus.Offline);
            AdvanceBackoff();
            LogIn(Connection(1), "T2");
            lock (rejectedSeen) CollectionAssert.AreEqual(new string[] { null, "T1" }, rejectedSeen);
        }

        [Test]
        public void ARefusedRefreshEndsTheSocket()
        {
            tokens = new List<string> { "T1", "END" };
            NewSocket().Start();
            var t = Connection(0);
            t.NextNotPing();
            t.Push(MessageId.ErrorResp, new ErrorResp { ReqId = MessageId.GameLogin, Code = 400103 });
            AdvanceBackoff();
            ExpectStatus(SocketStatus.SessionEnded);
        }

        [Test]
        public void ATakeoverStopsForGood()
        {
            var t = Online();
            var waiting = socket.Request(new RoomList());
            t.Push(MessageId.LogoutResp, new LogoutResp { Type = (int)LogoutType.Elsewhere, UserId = 7 });
            ExpectStatus(SocketStatus.TakenOver);
            Assert.AreEqual(SocketStatus.TakenOver, socket.Status);
            Assert.IsInstanceOf<ConnectionException>(Wait.Error(waiting));
            clock.Advance(TimeSpan.FromSeconds(60));
            Thread.Sleep(100);
            lock (made) Assert.AreEqual(1, made.Count, "no reconnect after a takeover");
            Assert.IsFalse(socket.Send(new ChatMsg { Msg = "after" }));
        }

        [Test]
        public void EndedSessionsStop()
        {
            var t = Online();
            t.Push(MessageId.LogoutResp, new LogoutResp { Type = (int)LogoutType.Ended });
            ExpectStatus(SocketStatus.SessionEnded);
            clock.Advance(TimeSpan.FromSeconds(60));
            Thread.Sleep(100);
            lock (made) Assert.AreEqual(1, made.Count);
        }

        [Test]
        public void ASessionEndedCloseStopsEvenWithoutLogoutResp()
        {
            var t = Online();
            t.ServerClose(1008, "session_ended");
            ExpectStatus(SocketStatus.SessionEnded);
        }

        [Test]
        public void AFailedConnectTriesTheNextServer()
        {
            int n = 0;
            NewSocket(t => t.FailConnect = n++ == 0).Start();
            ExpectStatus(SocketStatus.Offline);
            AdvanceBackoff();
            var second = Connection(1);
            LogIn(second);
            Assert.AreEqual("game2.test", second.Uri.Host);
        }

        [Test]
        public void AThrowingHandlerIsReportedAndTheSessionGoesOn()
        {
            NewSocket();
            var stats = new BlockingCollection<PlayerStats>();
            socket.OnPlayerStats += s => { throw new InvalidOperationException("handler bug"); };
            socket.OnPlayerStats += s => stats.Add(s);
            socket.Start();
            var t = Connection(0);
            LogIn(t);
            t.Push(MessageId.PlayerStats, new PlayerStats { Hp = 5 });
            t.PushText("{\"id\":200212,\"data\":{\"hp\":\"not a number\"}}");
            t.Push(MessageId.PlayerStats, new PlayerStats { Hp = 6 });
            Wait.Until(() => { lock (errors) return errors.Count >= 2; }, "both errors");
            lock (errors)
            {
                Assert.IsTrue(errors.Any(e => e.Message == "handler bug"));
                Assert.IsTrue(errors.Any(e => e is JsonException));
            }
            Assert.AreEqual(SocketStatus.Online, socket.Status);
        }

        [Test]
        public void EventsGoThroughTheDispatcher()
        {
            var posted = new BlockingCollection<Action>();
            var options = new SocketOptions { Clock = clock, Random = () => 0.5, Dispatch = posted.Add };
            var t = new FakeTransport();
            options.Transport = () => t;
            socket = new Socket(() => new List<Uri> { new Uri("ws://game.test/ws") },
                (r, ct) => Task.FromResult(new Session { UserId = 7, AccessToken = "T" }), options);
            int seen = 0;
            var status = new List<SocketStatus>();
            socket.OnSceneInfo += s => seen++;
            socket.StatusChanged += (s, d) => status.Add(s);
            socket.Start();
            t.NextNotPing();
            t.Push(MessageId.UserInfo, new UserInfo());
            t.Push(MessageId.SceneInfo, new SceneInfo { TickHz = 20 });
            Wait.Until(() => posted.Count >= 3, "the events to be posted");
            Assert.AreEqual(0, seen, "nothing runs on the socket's thread");
            Assert.AreEqual(0, status.Count);
            Action a;
            while (posted.TryTake(out a)) a();
            Assert.AreEqual(1, seen);
            CollectionAssert.AreEqual(new[] { SocketStatus.Connecting, SocketStatus.Online }, status);
        }

        [Test]
        public void LogoutSendsLogoutAndStops()
        {
            var t = Online();
            var done = socket.LogoutAsync();
            var logout = t.NextNotPing();
            Assert.AreEqual(MessageId.Logout, logout.Key);
            Assert.AreEqual(1, logout.Value["type"].AsLong());
            t.Push(MessageId.LogoutResp, new LogoutResp { Type = 1 });
            Assert.IsTrue(done.Wait(5000));
            Assert.AreEqual(SocketStatus.Closed, socket.Status);
        }
    }
}
