// The REST client: the envelope, the error codes, the session and its one refresh at a time.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Net;
using System.Net.Http;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Rsgame.Rest;

namespace Rsgame.Tests
{
    [TestFixture]
    public class ClientTests
    {
        const string Tokens = "{\"accessToken\":\"A1\",\"accessExpire\":1893459600,\"refreshAfter\":1893457000,\"refreshToken\":\"R1\",\"servers\":[\"/ws\"]}";
        const string DetailJson = "{\"userInfo\":{\"id\":42,\"username\":\"ann\",\"nickname\":\"Ann\",\"mobile\":\"\",\"email\":\"\",\"realname\":\"\",\"sex\":0,\"avatar\":\"\",\"status\":0},\"identities\":[]}";

        static Client NewClient(FakeHttp http, FakeClock clock = null)
        {
            return new Client("http://game.test:8888/", new ClientOptions { Handler = http, Clock = clock ?? new FakeClock() });
        }

        // A session whose refresh is due (refreshAfter in the fake clock's past).
        static Session DueSession()
        {
            return new Session { AccessToken = "OLD", RefreshToken = "R0", AccessExpire = 1893459600, RefreshAfter = 1000, UserId = 42, Servers = { "/ws" } };
        }

        [Test]
        public void LoginStartsASessionWithTheAccountId()
        {
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/login" ? FakeHttp.Ok(Tokens)
                : path == "/usercenter/v1/user/detail" && token == "A1" ? FakeHttp.Ok(DetailJson)
                : FakeHttp.Error(400505, "route not found"));
            var client = NewClient(http);
            Session changed = null;
            client.SessionChanged += s => changed = s;
            var session = Wait.Result(client.LoginAsync("ann", "secret-99"));
            Assert.AreEqual(42, session.UserId);
            Assert.AreEqual("A1", session.AccessToken);
            Assert.AreSame(session, changed);
            Assert.AreEqual("{\"password\":\"secret-99\",\"username\":\"ann\"}", http.Bodies[0], "absent captcha fields are left out");
            Assert.IsNull(http.Tokens[0], "no token on a login");
            StringAssert.DoesNotContain("A1", session.ToString(), "ToString shows no secret");
            Assert.AreEqual(new Uri("ws://game.test:8888/ws"), client.GameServerUris()[0]);
        }

        [Test]
        public void ACodeOtherThan200IsATypedError()
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Error(400507, "wrong username or password"));
            var e = (RsgameException)Wait.Error(NewClient(http).LoginAsync("ann", "nope-1234"));
            Assert.AreEqual(Code.LoginFailed, e.Code);
            Assert.AreEqual(400507, e.RawCode);
            Assert.AreEqual("wrong username or password", e.Message);
            Assert.AreEqual(200, e.HttpStatus);
        }

        [Test]
        public void NoEnvelopeOrNoServerIsUnreachable()
        {
            var proxy = new FakeHttp((path, body, token) => FakeHttp.Json("<html>bad gateway</html>", HttpStatusCode.BadGateway));
            var e = (RsgameException)Wait.Error(NewClient(proxy).GetShopAsync());
            Assert.AreEqual(Code.Unreachable, e.Code);
            Assert.AreEqual(502, e.HttpStatus);

            var down = new FakeHttp((Func<string, string, string, Task<HttpResponseMessage>>)((path, body, token) =>
            {
                throw new HttpRequestException("connection refused");
            }));
            e = (RsgameException)Wait.Error(NewClient(down).GetShopAsync());
            Assert.AreEqual(Code.Unreachable, e.Code);
            Assert.IsInstanceOf<HttpRequestException>(e.InnerException);
        }

        [Test]
        public void RepliesReadTheirTypes()
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Ok(
                "[{\"id\":1,\"price\":50,\"goods\":{\"id\":7,\"name\":\"Potion\",\"kind\":\"consumable\",\"effect\":{\"heal\":50},\"attack\":0,\"defence\":0}}]"));
            var shop = Wait.Result(NewClient(http).GetShopAsync());
            Assert.AreEqual(1, shop.Count);
            Assert.AreEqual(50, shop[0].Price);
            Assert.AreEqual(Kind.Consumable, shop[0].Goods.Kind);
            Assert.AreEqual(50, shop[0].Goods.Effect.Heal);
            Assert.IsNull(shop[0].Goods.Effect.Buff);
            Assert.AreEqual("POST /game/v1/game/getShop", http.Calls[0]);
        }

        [Test]
        public void AProtectedRouteWithoutASessionIsRefusedLocally()
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Ok("{}"));
            var e = (RsgameException)Wait.Error(NewClient(http).GetPackAsync());
            Assert.AreEqual(Code.TokenExpired, e.Code);
            Assert.AreEqual(0, http.Calls.Count);
        }

        [Test]
        public void ConcurrentCallsShareOneRefresh()
        {
            var release = new TaskCompletionSource<bool>();
            var http = new FakeHttp(async (path, body, token) =>
            {
                if (path == "/usercenter/v1/user/refresh")
                {
                    await release.Task;
                    return FakeHttp.Ok(Tokens);
                }
                return token == "A1" ? FakeHttp.Ok("{\"list\":[]}") : FakeHttp.Error(400103, "token expired");
            });
            var client = NewClient(http);
            client.Restore(DueSession());
            var calls = new Task[5];
            for (int i = 0; i < calls.Length; i++) calls[i] = client.GetRankAsync(RankBy.Score);
            var socketSide = client.FreshTokenAsync();
            Thread.Sleep(50);
            release.SetResult(true);
            Assert.IsTrue(Task.WaitAll(calls, 5000));
            Assert.AreEqual("A1", Wait.Result(socketSide).AccessToken);
            Assert.AreEqual(1, http.Count("/usercenter/v1/user/refresh"), "one refresh for all");
            StringAssert.Contains("\"refreshToken\":\"R0\"", http.Bodies[http.Calls.IndexOf("POST /usercenter/v1/user/refresh")]);
            Assert.AreEqual("R1", client.Session.RefreshToken, "the rotated refresh token is kept");
            Assert.AreEqual(42, client.Session.UserId, "the account stays");
        }

        [Test]
        public void ARevokedTokenIsRefreshedOnceAndTheCallRetried()
        {
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/refresh" ? FakeHttp.Ok(Tokens)
                : token == "A1" ? FakeHttp.Ok("{\"player\":{\"userId\":42,\"level\":3},\"items\":[],\"totalAttack\":1,\"totalDefence\":2,\"levelExp\":0,\"nextLevelExp\":10}")
                : FakeHttp.Json("{\"code\":400103,\"msg\":\"token expired or invalid\"}", HttpStatusCode.Unauthorized));
            var client = NewClient(http);
            var s = DueSession();
            s.RefreshAfter = 1893457000; // not due: the server refuses it anyway (revoked)
            client.Restore(s);
            var pack = Wait.Result(client.GetPackAsync());
            Assert.AreEqual(3, pack.Player.Level);
            CollectionAssert.AreEqual(new[] { "POST /game/v1/game/getPack", "POST /usercenter/v1/user/refresh", "POST /game/v1/game/getPack" }, http.Calls);
        }

        [Test]
        public void ARefusedRefreshEndsTheSession()
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Error(400103, "token expired or invalid"));
            var client = NewClient(http);
            client.Restore(DueSession());
            bool ended = false;
            client.SessionChanged += s => ended = s == null;
            Assert.IsNull(Wait.Result(client.FreshTokenAsync()));
            Assert.IsTrue(ended);
            Assert.IsNull(client.Session);
            Assert.AreEqual(Code.TokenExpired, ((RsgameException)Wait.Error(client.GetPackAsync())).Code);
        }

        [TestCase(400515, "this account is banned until 1900000000000 (unix ms): cheating")]
        [TestCase(400516, "this account was closed")]
        public void ARefreshRefusedForTheAccountEndsTheSessionAndSaysWhy(int code, string msg)
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Error(code, msg));
            var client = NewClient(http);
            client.Restore(DueSession());
            var changes = new List<Session>();
            client.SessionChanged += s => changes.Add(s);
            Assert.IsNull(Wait.Result(client.FreshTokenAsync()));
            Assert.IsNull(client.Session);
            CollectionAssert.AreEqual(new Session[] { null }, changes);
            Assert.AreEqual(code, client.EndedBy.RawCode);
            Assert.AreEqual(msg, client.EndedBy.Message);
            // What needs the session says why it is gone.
            var e = (RsgameException)Wait.Error(client.GetPackAsync());
            Assert.AreEqual(code, e.RawCode);
            Assert.AreEqual(1, http.Count("/usercenter/v1/user/refresh"), "a refresh once, not a loop");
        }

        [Test]
        public void ATokenRefusedThenARefreshRefusedForABanThrowsTheBan()
        {
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/refresh" ? FakeHttp.Error(400515, "this account is banned: cheating")
                : FakeHttp.Json("{\"code\":400103,\"msg\":\"token expired or invalid\"}", HttpStatusCode.Unauthorized));
            var client = NewClient(http);
            var s = DueSession();
            s.RefreshAfter = 1893457000; // not due: refused anyway (the ban revoked it)
            client.Restore(s);
            var e = (RsgameException)Wait.Error(client.GetPackAsync());
            Assert.AreEqual(Code.AccountBanned, e.Code);
            Assert.AreEqual(Code.AccountBanned, client.EndedBy.Code);
        }

        [Test]
        public void ANewSessionForgetsWhyTheLastOneEnded()
        {
            bool banned = true;
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/refresh" && banned ? FakeHttp.Error(400515, "banned")
                : path == "/usercenter/v1/user/login" ? FakeHttp.Ok(Tokens)
                : FakeHttp.Ok(DetailJson));
            var client = NewClient(http);
            client.Restore(DueSession());
            Assert.IsNull(Wait.Result(client.FreshTokenAsync()));
            Assert.IsNotNull(client.EndedBy);
            banned = false;
            Wait.Result(client.LoginAsync("ann", "secret-99"));
            Assert.IsNull(client.EndedBy);
        }

        [Test]
        public void AThrowingSessionChangedHandlerFailsNeitherLoginNorRefresh()
        {
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/detail" ? FakeHttp.Ok(DetailJson) : FakeHttp.Ok(Tokens));
            var client = NewClient(http);
            var reported = new List<Exception>();
            client.OnError += reported.Add;
            client.SessionChanged += s => { throw new InvalidOperationException("PlayerPrefs off the main thread"); };
            Assert.AreEqual(42, Wait.Result(client.LoginAsync("ann", "secret-99")).UserId);
            client.Restore(DueSession());
            Assert.AreEqual("A1", Wait.Result(client.FreshTokenAsync()).AccessToken);
            Assert.AreEqual("A1", client.Session.AccessToken);
            Assert.AreEqual(2, reported.Count);
            Assert.AreEqual("PlayerPrefs off the main thread", reported[0].Message);
        }

        [Test]
        public void SessionChangedGoesThroughTheDispatcherInOrder()
        {
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/detail" ? FakeHttp.Ok(DetailJson)
                : path == "/usercenter/v1/user/logout" ? FakeHttp.Ok("null")
                : FakeHttp.Ok(Tokens));
            var posted = new BlockingCollection<Action>();
            var client = new Client("http://game.test:8888/", new ClientOptions { Handler = http, Clock = new FakeClock(), Dispatch = posted.Add });
            var seen = new List<string>();
            client.SessionChanged += s => seen.Add(s == null ? "ended" : s.AccessToken);
            Wait.Result(client.LoginAsync("ann", "secret-99"));
            Wait.Result(Task.Run(async () => { await client.LogoutAsync(); return true; }));
            Assert.IsEmpty(seen, "nothing runs on the caller's thread");
            Action a;
            while (posted.TryTake(out a)) a();
            CollectionAssert.AreEqual(new[] { "A1", "ended" }, seen);
        }

        [Test]
        public void SessionRoutesAreReachableOnlyThroughTheClientsOwnMethods()
        {
            // refresh, logout, logoutAll and delete: private, called by FreshTokenAsync,
            // LogoutAsync, LogoutAllAsync and DeleteAccountAsync, which keep the session right.
            foreach (var name in new[] { "RefreshRouteAsync", "LogoutRouteAsync", "LogoutAllRouteAsync", "DeleteRouteAsync" })
            {
                var m = typeof(Client).GetMethod(name, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
                Assert.IsNotNull(m, name);
                Assert.IsTrue(m.IsPrivate, name + " is private");
            }
            foreach (var name in new[] { "RefreshAsync", "LogoutAsync", "LogoutAllAsync", "DeleteAccountAsync" })
                Assert.IsNotNull(typeof(Client).GetMethod(name, BindingFlags.Instance | BindingFlags.Public), name);
            // changePassword (like every route that answers tokens) starts the session it answers.
            Assert.AreEqual(typeof(Task<Session>), typeof(Client).GetMethod("ChangePasswordAsync").ReturnType);
        }

        [Test]
        public void ChangingThePasswordStartsTheSessionItAnswers()
        {
            var http = new FakeHttp((path, body, token) =>
                path == "/usercenter/v1/user/changePassword" && token == "OLD" ? FakeHttp.Ok(Tokens)
                : path == "/usercenter/v1/user/detail" && token == "A1" ? FakeHttp.Ok(DetailJson)
                : FakeHttp.Error(400103, "token expired or invalid"));
            var client = NewClient(http);
            var s = DueSession();
            s.RefreshAfter = 1893457000;
            client.Restore(s);
            Session changed = null;
            client.SessionChanged += x => changed = x;
            var fresh = Wait.Result(client.ChangePasswordAsync(new ChangePasswordReq { Old = "secret-99", New = "secret-100" }));
            Assert.AreEqual("A1", fresh.AccessToken);
            Assert.AreEqual("R1", client.Session.RefreshToken);
            Assert.AreSame(fresh, changed);
        }

        [Test]
        public void ARefreshThatCannotReachTheServerKeepsTheSession()
        {
            var http = new FakeHttp((path, body, token) => FakeHttp.Error(400502, "too many requests"));
            var client = NewClient(http);
            client.Restore(DueSession());
            var e = (RsgameException)Wait.Error(client.FreshTokenAsync());
            Assert.AreEqual(Code.TooManyRequests, e.Code);
            Assert.AreEqual("R0", client.Session.RefreshToken);
        }

        [Test]
        public void ARefreshFinishingAfterALogoutIsNotKept()
        {
            var release = new TaskCompletionSource<bool>();
            var http = new FakeHttp(async (path, body, token) =>
            {
                if (path == "/usercenter/v1/user/refresh") { await release.Task; return FakeHttp.Ok(Tokens); }
                return FakeHttp.Ok("null");
            });
            var client = NewClient(http);
            client.Restore(DueSession());
            var refresh = client.FreshTokenAsync();
            Wait.Until(() => http.Count("/usercenter/v1/user/refresh") == 1, "the refresh to start");
            var logout = client.LogoutAsync(); // waits for the same refresh, then revokes
            release.SetResult(true);
            Wait.Result(refresh);
            logout.Wait(5000);
            Assert.IsNull(client.Session);
            StringAssert.Contains("\"refreshToken\":\"R1\"", http.Bodies[http.Calls.IndexOf("POST /usercenter/v1/user/logout")], "the newest token is revoked");
        }

        [Test]
        public void GameServersResolveAgainstTheRestHost()
        {
            var b = new Uri("https://play.example.com/api/");
            Assert.AreEqual(new Uri("wss://play.example.com/ws"), Client.ResolveGameServer(b, "/ws"));
            Assert.AreEqual(new Uri("ws://10.0.0.2:8888/ws"), Client.ResolveGameServer(b, "ws://10.0.0.2:8888/ws"));
            Assert.AreEqual(new Uri("ws://127.0.0.1:9000/ws?codec=json"), Client.ResolveGameServer(new Uri("http://127.0.0.1:9000"), "/ws?codec=json"));
        }

        [Test]
        public void ASessionSurvivesStorage()
        {
            var s = DueSession();
            s.Username = "ann";
            var back = Session.FromJson(s.ToJson());
            Assert.AreEqual(s.ToJson(), back.ToJson());
            Assert.AreEqual(42, back.UserId);
        }
    }
}
