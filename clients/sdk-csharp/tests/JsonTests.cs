// The JSON reader and writer, and the generated messages on the wire as the server's serde
// reads and writes them.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using NUnit.Framework;
using Rsgame.Rest;

namespace Rsgame.Tests
{
    [TestFixture]
    public class JsonTests
    {
        static string Write(IJsonWritable m) { return JsonWriter.Serialize(m); }

        [Test]
        public void SiteKeepsItsCapitalNames()
        {
            var json = Write(new Move { Site = new Site { X = 12.5f, Z = -3f } });
            Assert.AreEqual("{\"userId\":0,\"site\":{\"X\":12.5,\"Y\":0,\"Z\":-3,\"V\":0}}", json);
            var back = Move.ReadJson(new JsonReader("{\"site\":{\"X\":1.25,\"Z\":7}}"));
            Assert.AreEqual(1.25f, back.Site.X);
            Assert.AreEqual(7f, back.Site.Z);
        }

        [Test]
        public void BytesAreArraysOfNumbers()
        {
            var json = Write(new LockstepInput { Data = new byte[] { 0, 7, 255 } });
            Assert.AreEqual("{\"data\":[0,7,255]}", json);
            var frames = LockstepFrames.ReadJson(new JsonReader(
                "{\"roomId\":9,\"frames\":[{\"number\":4,\"inputs\":[{\"userId\":3,\"data\":[[1,2],[255]]}],\"membersChanged\":true,\"members\":[3,4]}]}"));
            var input = frames.Frames[0].Inputs[0];
            Assert.AreEqual(3, input.UserId);
            CollectionAssert.AreEqual(new byte[] { 1, 2 }, input.Data[0]);
            CollectionAssert.AreEqual(new byte[] { 255 }, input.Data[1]);
            CollectionAssert.AreEqual(new long[] { 3, 4 }, frames.Frames[0].Members);
            // Protobuf's canonical JSON (base64) reads too.
            CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, LockstepInput.ReadJson(new JsonReader("{\"data\":\"AQID\"}")).Data);
            Assert.Throws<JsonException>(() => LockstepInput.ReadJson(new JsonReader("{\"data\":[256]}")));
        }

        [Test]
        public void UnknownFieldsAreIgnoredAndMissingOnesTakeDefaults()
        {
            var m = ChatMsg.ReadJson(new JsonReader(
                "{\"future\":{\"a\":[1,{\"b\":null}],\"c\":\"x\\\"y\"},\"msg\":\"hi\",\"more\":[[]],\"n\":-1.5e3,\"t\":true}"));
            Assert.AreEqual("hi", m.Msg);
            Assert.AreEqual(0, m.ChatType);
            Assert.AreEqual("", m.Url);
            var empty = UserInfo.ReadJson(new JsonReader("{}"));
            Assert.IsNull(empty.Position);
            Assert.AreEqual("", empty.Nickname);
            // null is the default too, and int64 may come quoted (protobuf's canonical JSON).
            var p = PlayerStats.ReadJson(new JsonReader("{\"hp\":null,\"userId\":\"281474976710656\"}"));
            Assert.AreEqual(0, p.Hp);
            Assert.AreEqual(281474976710656L, p.UserId);
        }

        [Test]
        public void Int64KeepsEveryBit()
        {
            var json = Write(new Attack { ObjId = long.MaxValue, UserId = long.MinValue });
            var back = Attack.ReadJson(new JsonReader(json));
            Assert.AreEqual(long.MaxValue, back.ObjId);
            Assert.AreEqual(long.MinValue, back.UserId);
        }

        [Test]
        public void StringsEscapeAndUnescape()
        {
            const string text = "quote \" backslash \\ tab \t newline \n bell \u0007 unicode 世界 😀";
            var json = Write(new ChatMsg { Msg = text });
            StringAssert.Contains("\\u0007", json);
            Assert.AreEqual(text, ChatMsg.ReadJson(new JsonReader(json)).Msg);
            Assert.AreEqual("é/", ChatMsg.ReadJson(new JsonReader("{\"msg\":\"\\u00e9\\/\"}")).Msg);
        }

        [Test]
        public void FloatsAreShortestAndNaNIsRefused()
        {
            Assert.AreEqual("{\"userId\":0,\"site\":{\"X\":0.1,\"Y\":0,\"Z\":0,\"V\":0}}", Write(new Move { Site = new Site { X = 0.1f } }));
            Assert.Throws<ArgumentException>(() => Write(new Site { X = float.NaN }));
        }

        [Test]
        public void MapsAndOptionalNumbers()
        {
            var add = new MatchAdd { Mode = "duel" };
            add.StringProps["region"] = "eu";
            add.NumericProps["rating"] = 1500.5;
            add.Query.Add(new MatchTerm { Key = "rating", Min = 1400 });
            var json = Write(add);
            StringAssert.Contains("\"stringProps\":{\"region\":\"eu\"}", json);
            StringAssert.Contains("{\"key\":\"rating\",\"anyOf\":[],\"min\":1400}", json); // max left out: None
            var back = MatchAdd.ReadJson(new JsonReader(json));
            Assert.AreEqual(1500.5, back.NumericProps["rating"]);
            Assert.AreEqual(1400.0, back.Query[0].Min);
            Assert.IsNull(back.Query[0].Max);
        }

        [Test]
        public void MalformedJsonIsAnError()
        {
            Assert.Throws<JsonException>(() => Ping.ReadJson(new JsonReader("{\"sn\":1")));
            Assert.Throws<JsonException>(() => Ping.ReadJson(new JsonReader("{\"sn\":\"x\"}")));
            Assert.Throws<JsonException>(() => JsonValue.Parse("[1,2] 3"));
            Assert.Throws<JsonException>(() => JsonValue.Parse(new string('[', 1000)));
            Assert.Throws<JsonException>(() => CreateRoom.ReadJson(new JsonReader("{\"type\":4294967296}")));
        }

        [Test]
        public void JsonValueReadsAnything()
        {
            var v = JsonValue.Parse("{\"joined\":true,\"ids\":[1,9007199254740993],\"n\":null,\"s\":\"x\"}");
            Assert.IsTrue(v["joined"].AsBool());
            Assert.AreEqual(9007199254740993L, v["ids"][1].AsLong());
            Assert.IsTrue(v["n"].IsNull);
            Assert.IsTrue(v["absent"].IsNull);
            Assert.AreEqual("x", v["s"].AsString());
            Assert.AreEqual("{\"joined\":true,\"ids\":[1,9007199254740993],\"n\":null,\"s\":\"x\"}", v.ToString());
        }

        [Test]
        public void TheTablesPairRequestsAndReplies()
        {
            Assert.AreEqual(MessageId.PingResp, Messages.ReplyOf(MessageId.Ping));
            Assert.AreEqual(MessageId.ChatHistoryResp, Messages.ReplyOf(MessageId.ChatHistory));
            Assert.AreEqual(typeof(ChatMsgResp), Messages.BodyType(MessageId.ChatHistoryResp));
            Assert.AreEqual(typeof(UserInfo), Messages.BodyType(MessageId.FriendStatus));
            Assert.AreEqual(0, Messages.ReplyOf(MessageId.Move));
            Assert.AreEqual(0, Messages.ReplyOf(MessageId.LockstepInput));
            Assert.IsTrue(Messages.IsRequest(MessageId.GameLogin));
            Assert.IsFalse(Messages.IsRequest(MessageId.ErrorResp));
            Assert.IsNull(Messages.Read(123456, new JsonReader("{}")));
            Assert.AreEqual(MessageId.EnterRoom, ((IOutbound)new EnterRoom()).MessageId);
            Assert.IsInstanceOf<IRequest<EnterRoomResp>>(new EnterRoom());
            Assert.IsInstanceOf<IRequest<RoomListResp>>(new RoomList());
            // Answered by what is also pushed unasked (PlayerStats, PartyUpdate): not paired.
            Assert.AreEqual(0, Messages.ReplyOf(MessageId.Respawn));
            Assert.AreEqual(0, Messages.ReplyOf(MessageId.PartyKick));
            Assert.IsNotInstanceOf<IRequest<PlayerStats>>(new Respawn());
            Assert.IsNotInstanceOf<IRequest<PartyUpdate>>(new PartyKick());
        }

        [Test]
        public void EveryGeneratedTypeRoundTrips()
        {
            // Every class the generator wrote (game messages and REST types), filled with
            // non-default values: written, read back and written again, the JSON is the same,
            // and it names every property.
            var types = typeof(Socket).Assembly.GetTypes()
                .Where(t => t.IsClass && !t.IsAbstract && typeof(IJsonWritable).IsAssignableFrom(t) && t.GetMethod("ReadJson", BindingFlags.Public | BindingFlags.Static) != null)
                .OrderBy(t => t.FullName).ToList();
            Assert.Greater(types.Count, 100, "the generated classes");
            foreach (var t in types)
            {
                var m = (IJsonWritable)Fill(t, 0);
                var json = Write(m);
                var back = (IJsonWritable)t.GetMethod("ReadJson").Invoke(null, new object[] { new JsonReader(json) });
                Assert.AreEqual(json, Write(back), t.FullName);
                var keys = JsonValue.Parse(json).Keys.ToList();
                Assert.AreEqual(t.GetProperties().Count(p => p.CanWrite), keys.Count, t.FullName + ": " + json);
            }
        }

        // A value for every settable property, different per property.
        static object Fill(Type t, int depth)
        {
            var m = Activator.CreateInstance(t);
            int seed = 1;
            foreach (var p in t.GetProperties().Where(p => p.CanWrite))
            {
                seed++;
                p.SetValue(m, Sample(p.PropertyType, seed, depth), null);
            }
            return m;
        }

        static object Sample(Type t, int seed, int depth)
        {
            var inner = Nullable.GetUnderlyingType(t);
            if (inner != null) return Sample(inner, seed, depth);
            if (t == typeof(long)) return 281474976710656L + seed;
            if (t == typeof(int)) return 100 + seed;
            if (t == typeof(uint)) return (uint)(4000000000u + seed);
            if (t == typeof(bool)) return true;
            if (t == typeof(float)) return 1.5f + seed;
            if (t == typeof(double)) return 0.25 + seed;
            if (t == typeof(string)) return "s\"" + seed + "\u00e9";
            if (t == typeof(byte[])) return new byte[] { 0, (byte)seed, 255 };
            if (t == typeof(JsonValue)) return JsonValue.Parse("{\"any\":[1,\"two\",null]}");
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>))
            {
                var list = (IList)Activator.CreateInstance(t);
                list.Add(Sample(t.GetGenericArguments()[0], seed, depth));
                list.Add(Sample(t.GetGenericArguments()[0], seed + 1, depth));
                return list;
            }
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Dictionary<,>))
            {
                var map = (IDictionary)Activator.CreateInstance(t);
                map["k" + seed] = Sample(t.GetGenericArguments()[1], seed, depth);
                return map;
            }
            if (t.IsClass) return depth > 3 ? Activator.CreateInstance(t) : Fill(t, depth + 1);
            throw new NotSupportedException(t.FullName);
        }
    }
}
