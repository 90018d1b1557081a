// Against a running rsgame monolith (RSGAME_SDK_SERVER=http://127.0.0.1:8888): two fresh
// players register, log in, see each other walk, chat, play a lockstep room, drop and resume,
// and log out. Without the variable these tests are ignored.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using NUnit.Framework;
using Rsgame.Rest;

namespace Rsgame.Tests
{
    [TestFixture]
    [Category("Integration")]
    public class IntegrationTests
    {
        const int Timeout = 10000;
        string server;

        [SetUp]
        public void SetUp()
        {
            server = Environment.GetEnvironmentVariable("RSGAME_SDK_SERVER");
            if (string.IsNullOrEmpty(server))
                Assert.Ignore("RSGAME_SDK_SERVER is not set: no rsgame server to test against (e.g. RSGAME_SDK_SERVER=http://127.0.0.1:8888)");
        }

        /// <summary>What one event delivered, to wait on from the test's thread.</summary>
        sealed class Seen<T>
        {
            readonly BlockingCollection<T> items = new BlockingCollection<T>();

            public void Add(T item) { items.Add(item); }

            /// <summary>The first item (from now on) that matches, or a failure naming what was awaited.</summary>
            public T Expect(Func<T, bool> match, string what, int timeoutMs = Timeout)
            {
                var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
                T item;
                while (items.TryTake(out item, Math.Max(0, (int)(until - DateTime.UtcNow).TotalMilliseconds)))
                    if (match(item)) return item;
                Assert.Fail("timed out waiting for " + what);
                return default(T);
            }
        }

        sealed class Player : IDisposable
        {
            public Client Client;
            public Socket Socket;
            public Session Session;
            public readonly Seen<MoveResp> Moves = new Seen<MoveResp>();
            public readonly Seen<ChatMsgResp> Chat = new Seen<ChatMsgResp>();
            public readonly Seen<LockstepFrames> Frames = new Seen<LockstepFrames>();
            public readonly Seen<KeyValuePair<SocketStatus, string>> Status = new Seen<KeyValuePair<SocketStatus, string>>();
            public readonly Seen<bool> LoggedIn = new Seen<bool>();
            public readonly List<Exception> Errors = new List<Exception>();
            public UserInfo Info;

            public void Connect()
            {
                Socket = new Socket(Client, new SocketOptions { Platform = "sdk-csharp-test" });
                Socket.OnMoveResp += Moves.Add;
                Socket.OnChatMsgResp += Chat.Add;
                Socket.OnLockstepFrames += Frames.Add;
                Socket.StatusChanged += (s, d) => Status.Add(new KeyValuePair<SocketStatus, string>(s, d));
                Socket.LoggedIn += (info, again) => { Info = info; LoggedIn.Add(again); };
                Socket.OnError += e => { lock (Errors) Errors.Add(e); };
                Socket.Start();
                LoggedIn.Expect(again => !again, "the game login of user " + Session.UserId);
            }

            public void Dispose()
            {
                if (Socket != null) Socket.Stop();
                Client.Dispose();
            }
        }

        Player NewPlayer(string name)
        {
            // Unique per run: usernames are 3 to 32 letters, digits or _.
            var username = name + "_" + Guid.NewGuid().ToString("N").Substring(0, 12);
            var password = "sdk-test-" + Guid.NewGuid().ToString("N").Substring(0, 8) + "9";
            long registered;
            using (var signup = new Client(server))
            {
                var task = signup.RegisterAsync(username, password, name);
                try { task.Wait(Timeout); }
                catch (AggregateException e) when (e.InnerException is RsgameException && ((RsgameException)e.InnerException).Code == Code.CaptchaRequired)
                {
                    // Each run registers three players; a server asks for a captcha after
                    // usercenter.register_captcha_after_per_ip (10) sign-ups from one address an hour.
                    Assert.Fail("the server wants a captcha for new accounts from this address: use a fresh server, or start it with RSGAME_USERCENTER__REGISTER_CAPTCHA_AFTER_PER_IP=0");
                }
                var s = Wait.Result(task, Timeout);
                Assert.Greater(s.UserId, 0);
                registered = s.UserId;
            }
            // Then log in with the password, as a returning player does.
            var p = new Player { Client = new Client(server) };
            p.Session = Wait.Result(p.Client.LoginAsync(username, password), Timeout);
            Assert.AreEqual(registered, p.Session.UserId);
            Assert.AreEqual(username, p.Session.Username);
            Assert.AreEqual(name, p.Session.Nickname);
            CollectionAssert.IsNotEmpty(p.Session.Servers);
            return p;
        }

        [Test]
        public void TwoPlayersWalkChatAndPlayLockstep()
        {
            using (var a = NewPlayer("ann"))
            using (var b = NewPlayer("bob"))
            {
                // REST with the session's token.
                var pack = Wait.Result(a.Client.GetPackAsync(), Timeout);
                Assert.AreEqual(a.Session.UserId, pack.Player.UserId);
                var names = Wait.Result(a.Client.ProfilesAsync(new[] { a.Session.UserId, b.Session.UserId }), Timeout);
                CollectionAssert.AreEquivalent(new[] { "ann", "bob" }, names.Select(n => n.Nickname).ToArray());
                Assert.IsNotNull(Wait.Result(a.Client.GetShopAsync(), Timeout));
                // An avatar: a multipart upload, then the profile names it; a file whose content
                // is not its extension's is refused.
                var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==");
                var file = Wait.Result(a.Client.UploadAsync(png, "me.png", "image/png"), Timeout);
                Assert.AreEqual(png.Length, file.Info.Bytes);
                var updated = Wait.Result(a.Client.UpdateAsync(new ProfileReq { Avatar = file.Info.Guid }), Timeout);
                Assert.AreEqual(file.Info.Guid, updated.UserInfo.Avatar);
                var notPng = Assert.Throws<AggregateException>(() => Wait.Result(a.Client.UploadAsync(new byte[] { 1, 2, 3 }, "me.png", "image/png"), Timeout));
                Assert.AreEqual(Code.BadParam, ((RsgameException)notPng.InnerException).Code);

                a.Connect();
                b.Connect();
                // Both start in the same scene (1000 by default); put B there explicitly so the
                // test does not depend on where a fresh player is placed.
                var scene = a.Info.RoomId;
                Assert.Greater(scene, 0);
                if (b.Info.RoomId != scene) Assert.AreEqual(scene, Wait.Result(b.Socket.Request(new EnterRoom { RoomId = scene }), Timeout).RoomId);

                // A walks to B (fresh players spawn at random near the respawn point, maybe out
                // of each other's view); B sees A's position in a MoveResp.
                Func<Player, Site> SpawnOf = p => p.Moves.Expect(m => m.SiteList.Any(s => s.UserId == p.Session.UserId && s.Action == "spawn"), "a spawn position")
                    .SiteList.First(s => s.UserId == p.Session.UserId).Site;
                var from = SpawnOf(a);
                var to = SpawnOf(b);
                float x = from.X, z = from.Z;
                int steps = 0;
                do
                {
                    // 5 units every 150 ms: 33 units/s, under world.max_speed (40), so no move is cut.
                    float dx = to.X + 2 - x, dz = to.Z - z, d = (float)Math.Sqrt(dx * dx + dz * dz);
                    float step = Math.Min(5f, d);
                    if (d > 0) { x += dx / d * step; z += dz / d * step; }
                    Thread.Sleep(150);
                    Assert.IsTrue(a.Socket.Send(new Move { Site = new Site { X = x, Z = z } }));
                } while (++steps < 3 || Math.Abs(to.X + 2 - x) + Math.Abs(to.Z - z) > 0.01f);
                b.Moves.Expect(m => m.SiteList.Any(s => s.UserId == a.Session.UserId && Math.Abs(s.Site.X - x) < 0.01 && Math.Abs(s.Site.Z - z) < 0.01),
                    "A at (" + x + ", " + z + ") in B's MoveResp");

                // World chat: B gets A's line, stamped by the server.
                var text = "hello from C# " + Guid.NewGuid().ToString("N").Substring(0, 6);
                Assert.IsTrue(a.Socket.Send(new ChatMsg { ChatType = (int)ChatType.World, MsgType = (int)ChatMsgType.Text, Msg = text }));
                var line = b.Chat.Expect(c => c.MsgList.Any(m => m.Msg == text), "A's chat line at B").MsgList.First(m => m.Msg == text);
                Assert.AreEqual(a.Session.UserId, line.UserId);
                Assert.Greater(line.SendTime, 0);

                // A lockstep room: A creates it (and is put in it), B enters, both send input.
                var created = Wait.Result(a.Socket.Request(new CreateRoom { Name = "sdk-lockstep", Type = (int)RoomType.Lockstep, MaxUser = 2 }), Timeout);
                Assert.AreEqual((int)ReplyStatus.Ok, created.Status, created.Msg);
                long room = long.Parse(created.Msg);
                var entered = Wait.Result(b.Socket.Request(new EnterRoom { RoomId = room }), Timeout);
                Assert.AreEqual(room, entered.RoomId);
                Assert.AreEqual((int)RoomType.Lockstep, entered.Type);
                // Frames with both members, then input from each.
                a.Frames.Expect(f => f.RoomId == room && f.Frames.Any(fr => fr.MembersChanged && fr.Members.Count == 2), "a frame with both members");
                Assert.IsTrue(a.Socket.Send(new LockstepInput { Data = new byte[] { 1, 2, 3 } }));
                Assert.IsTrue(b.Socket.Send(new LockstepInput { Data = new byte[] { 200, 0, 255 } }));
                var inputs = new Dictionary<long, byte[]>();
                b.Frames.Expect(f =>
                {
                    foreach (var fr in f.Frames)
                        foreach (var input in fr.Inputs)
                            foreach (var d in input.Data) inputs[input.UserId] = d;
                    return inputs.Count == 2;
                }, "both players' inputs in B's LockstepFrames");
                CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, inputs[a.Session.UserId]);
                CollectionAssert.AreEqual(new byte[] { 200, 0, 255 }, inputs[b.Session.UserId]);

                // A request the server refuses comes back as a typed error for that request.
                var refused = (RsgameException)Wait.Error(b.Socket.Request(new EnterRoom { RoomId = 987654321 }), Timeout);
                Assert.AreEqual(MessageId.EnterRoom, refused.RequestId);
                Assert.AreNotEqual(Code.Ok, refused.Code);

                // Log out of the game, then revoke the tokens.
                a.Socket.LogoutAsync().Wait(Timeout);
                b.Socket.LogoutAsync().Wait(Timeout);
                Assert.AreEqual(SocketStatus.Closed, a.Socket.Status);
                Wait.Result(System.Threading.Tasks.Task.Run(async () => { await a.Client.LogoutAsync(); return true; }), Timeout);
                Wait.Result(System.Threading.Tasks.Task.Run(async () => { await b.Client.LogoutAsync(); return true; }), Timeout);
                Assert.IsNull(a.Client.Session);
                lock (a.Errors) Assert.IsEmpty(a.Errors, string.Join("; ", a.Errors.Select(e => e.Message)));
                lock (b.Errors) Assert.IsEmpty(b.Errors, string.Join("; ", b.Errors.Select(e => e.Message)));
            }
        }

        [Test]
        public void ADroppedConnectionResumesAndASecondLoginTakesOver()
        {
            using (var a = NewPlayer("cat"))
            {
                a.Connect();
                // A network drop: the socket reconnects by itself and logs in again.
                a.Socket.Drop();
                a.Status.Expect(s => s.Key == SocketStatus.Offline, "offline after the drop");
                Assert.IsTrue(a.LoggedIn.Expect(again => true, "the login after the drop"), "the second login says it is a reconnect");
                Assert.AreEqual(SocketStatus.Online, a.Socket.Status);

                // The same account on a second connection takes the player over: the first stops
                // for good instead of taking it back.
                var second = new Socket(a.Client);
                var online = new Seen<bool>();
                second.LoggedIn += (info, again) => online.Add(true);
                second.Start();
                online.Expect(x => x, "the second connection's login");
                a.Status.Expect(s => s.Key == SocketStatus.TakenOver, "the first connection taken over");
                Thread.Sleep(1500); // longer than the first backoff: no reconnect happens
                Assert.AreEqual(SocketStatus.TakenOver, a.Socket.Status);
                Assert.AreEqual(SocketStatus.Online, second.Status);
                second.Stop();

                // Log out everywhere: the tokens stop working, and the session ends here.
                Wait.Result(System.Threading.Tasks.Task.Run(async () => { await a.Client.LogoutAllAsync(); return true; }), Timeout);
                Assert.IsNull(a.Client.Session);
            }
        }
    }
}
