// Test doubles: a clock the test moves, a transport the test plays the server on, and an
// HTTP handler that answers from a function.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace Rsgame.Tests
{
    /// <summary>
    /// Time stands still until Advance; Delay completes when the time passes its due. Jump moves
    /// only the wall clock, as a player who sets the device's clock does.
    /// </summary>
    public sealed class FakeClock : IClock
    {
        readonly object gate = new object();
        DateTimeOffset now = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        TimeSpan monotonic = TimeSpan.FromHours(5);
        readonly List<Timer> timers = new List<Timer>();

        sealed class Timer
        {
            public TimeSpan Due;
            public TimeSpan Length;
            public TaskCompletionSource<bool> Tcs;
        }

        public DateTimeOffset UtcNow { get { lock (gate) return now; } }

        public TimeSpan Monotonic { get { lock (gate) return monotonic; } }

        /// <summary>The wall clock is set by <paramref name="by"/>; timers and the monotonic clock do not move.</summary>
        public void Jump(TimeSpan by)
        {
            lock (gate) now += by;
        }

        public Task Delay(TimeSpan delay, CancellationToken ct)
        {
            var t = new Timer { Length = delay, Tcs = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously) };
            lock (gate)
            {
                t.Due = monotonic + delay;
                timers.Add(t);
            }
            if (ct.CanBeCanceled)
                ct.Register(() =>
                {
                    lock (gate) timers.Remove(t);
                    t.Tcs.TrySetCanceled();
                });
            return t.Tcs.Task;
        }

        /// <summary>The lengths of the timers waiting now.</summary>
        public List<TimeSpan> Waiting()
        {
            lock (gate) return timers.Select(t => t.Length).ToList();
        }

        public void Advance(TimeSpan by)
        {
            List<Timer> due;
            lock (gate)
            {
                now += by;
                monotonic += by;
                due = timers.Where(t => t.Due <= monotonic).ToList();
                foreach (var t in due) timers.Remove(t);
            }
            foreach (var t in due) t.Tcs.TrySetResult(true);
        }
    }

    /// <summary>A transport whose other end is the test.</summary>
    public sealed class FakeTransport : ITransport
    {
        readonly BlockingCollection<string> inbox = new BlockingCollection<string>();
        public readonly BlockingCollection<string> Sent = new BlockingCollection<string>();
        public Uri Uri;
        public bool FailConnect;
        public int ClientCloseCode = -1;
        volatile bool closed;

        public int CloseCode { get; private set; }
        public string CloseReason { get; private set; } = "";

        public Task ConnectAsync(Uri uri, CancellationToken ct)
        {
            Uri = uri;
            if (FailConnect) throw new System.Net.WebSockets.WebSocketException("refused");
            return Task.FromResult(true);
        }

        public Task SendAsync(string text, CancellationToken ct)
        {
            if (closed) throw new System.Net.WebSockets.WebSocketException("closed");
            Sent.Add(text);
            return Task.FromResult(true);
        }

        public Task<string> ReceiveAsync(CancellationToken ct)
        {
            return Task.Run(() =>
            {
                try
                {
                    var s = inbox.Take(ct);
                    return s == "\u0000close" ? null : s;
                }
                catch (InvalidOperationException) { return null; }
            });
        }

        public Task CloseAsync(int code, string reason)
        {
            ClientCloseCode = code;
            ServerClose(code, reason);
            return Task.FromResult(true);
        }

        public void Abort() { ServerClose(0, ""); }

        public void Dispose() { }

        /// <summary>The server sends a message.</summary>
        public void Push(int id, IJsonWritable body)
        {
            var w = new JsonWriter();
            w.BeginObject().Name("id").Value(id).Name("data");
            body.WriteJson(w);
            inbox.Add(w.EndObject().ToString());
        }

        public void PushText(string text) { inbox.Add(text); }

        /// <summary>The server closes the connection.</summary>
        public void ServerClose(int code, string reason)
        {
            if (closed) return;
            closed = true;
            CloseCode = code;
            CloseReason = reason;
            inbox.Add("\u0000close");
        }

        /// <summary>The next message the client sent: its id and data.</summary>
        public KeyValuePair<int, JsonValue> Next(int timeoutMs = 5000)
        {
            string text;
            if (!Sent.TryTake(out text, timeoutMs)) Assert.Fail("the client sent nothing in " + timeoutMs + " ms");
            var v = JsonValue.Parse(text);
            return new KeyValuePair<int, JsonValue>((int)v["id"].AsLong(), v["data"]);
        }

        /// <summary>The next message the client sent other than heartbeat pings.</summary>
        public KeyValuePair<int, JsonValue> NextNotPing(int timeoutMs = 5000)
        {
            while (true)
            {
                var m = Next(timeoutMs);
                if (m.Key != MessageId.Ping) return m;
            }
        }

        /// <summary>Whether the client sent nothing (but pings) for a while.</summary>
        public bool Quiet(int ms = 200)
        {
            string text;
            var until = DateTime.UtcNow.AddMilliseconds(ms);
            while (DateTime.UtcNow < until)
            {
                if (Sent.TryTake(out text, 20) && !text.Contains("\"id\":1000,")) return false;
            }
            return true;
        }
    }

    /// <summary>An HTTP handler answering from a function; it records every request.</summary>
    public sealed class FakeHttp : HttpMessageHandler
    {
        public readonly List<string> Calls = new List<string>();
        public readonly List<string> Bodies = new List<string>();
        public readonly List<string> Tokens = new List<string>();
        readonly Func<string, string, string, Task<HttpResponseMessage>> answer;

        public FakeHttp(Func<string, string, string, Task<HttpResponseMessage>> answer) { this.answer = answer; }

        public FakeHttp(Func<string, string, string, HttpResponseMessage> answer)
            : this((p, b, t) => Task.FromResult(answer(p, b, t))) { }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            var body = request.Content != null ? await request.Content.ReadAsStringAsync() : "";
            var token = request.Headers.Authorization != null ? request.Headers.Authorization.Parameter : null;
            lock (Calls)
            {
                Calls.Add(request.Method + " " + request.RequestUri.AbsolutePath);
                Bodies.Add(body);
                Tokens.Add(token);
            }
            return await answer(request.RequestUri.AbsolutePath, body, token);
        }

        public static HttpResponseMessage Json(string json, HttpStatusCode status = HttpStatusCode.OK)
        {
            return new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        }

        public static HttpResponseMessage Ok(string data) { return Json("{\"code\":200,\"msg\":\"ok\",\"data\":" + data + "}"); }

        public static HttpResponseMessage Error(int code, string msg) { return Json("{\"code\":" + code + ",\"msg\":\"" + msg + "\"}"); }

        public int Count(string path)
        {
            lock (Calls) return Calls.Count(c => c.EndsWith(" " + path));
        }
    }

    /// <summary>
    /// A stand-in for Unity's main thread. Each frame first runs what was dispatched to it
    /// (RsgameDispatcher.Update), then what awaits posted to its SynchronizationContext (Unity
    /// runs those in another part of the frame). Hold stops it between frames.
    /// </summary>
    public sealed class MainLoop : SynchronizationContext, IDisposable
    {
        readonly ConcurrentQueue<Action> dispatched = new ConcurrentQueue<Action>();
        readonly ConcurrentQueue<Action> posted = new ConcurrentQueue<Action>();
        readonly ManualResetEventSlim running = new ManualResetEventSlim(true);
        readonly ManualResetEventSlim paused = new ManualResetEventSlim(false);
        public readonly List<Exception> Errors = new List<Exception>();
        volatile bool done;
        int dispatchedCount;

        public MainLoop()
        {
            var thread = new Thread(Run) { IsBackground = true, Name = "main loop" };
            thread.Start();
        }

        /// <summary>RsgameDispatcher.Post: runs in the next frame's Update.</summary>
        public void Dispatch(Action action)
        {
            Interlocked.Increment(ref dispatchedCount);
            dispatched.Enqueue(action);
        }

        /// <summary>How many actions were dispatched so far.</summary>
        public int DispatchedCount { get { return Volatile.Read(ref dispatchedCount); } }

        /// <summary>Runs <paramref name="action"/> on the main thread (as a posted continuation).</summary>
        public void Invoke(Action action) { posted.Enqueue(action); }

        public override void Post(SendOrPostCallback d, object state) { posted.Enqueue(() => d(state)); }

        public override void Send(SendOrPostCallback d, object state) { throw new NotSupportedException(); }

        /// <summary>Stops the loop between two frames.</summary>
        public void Hold()
        {
            running.Reset();
            Assert.IsTrue(paused.Wait(5000), "the main loop did not pause");
        }

        public void Release()
        {
            paused.Reset();
            running.Set();
        }

        void Run()
        {
            SetSynchronizationContext(this);
            while (!done)
            {
                if (!running.IsSet)
                {
                    paused.Set();
                    running.Wait();
                    continue;
                }
                Drain(dispatched);
                Drain(posted);
                Thread.Sleep(1);
            }
        }

        void Drain(ConcurrentQueue<Action> queue)
        {
            Action a;
            for (int n = queue.Count; n > 0 && queue.TryDequeue(out a); n--)
            {
                try { a(); }
                catch (Exception e) { lock (Errors) Errors.Add(e); }
            }
        }

        public void Dispose()
        {
            done = true;
            running.Set();
        }
    }

    public static class Wait
    {
        /// <summary>Polls until <paramref name="condition"/> holds, or fails the test.</summary>
        public static void Until(Func<bool> condition, string what, int timeoutMs = 5000)
        {
            var until = DateTime.UtcNow.AddMilliseconds(timeoutMs);
            while (!condition())
            {
                if (DateTime.UtcNow > until) Assert.Fail("timed out waiting for " + what);
                Thread.Sleep(5);
            }
        }

        /// <summary>The task's result, or a test failure after the time-out.</summary>
        public static T Result<T>(Task<T> task, int timeoutMs = 5000)
        {
            if (!task.Wait(timeoutMs)) Assert.Fail("the task did not finish in " + timeoutMs + " ms");
            return task.Result;
        }

        /// <summary>The exception the task failed with (unwrapped), or a test failure.</summary>
        public static Exception Error(Task task, int timeoutMs = 5000)
        {
            try
            {
                if (!task.Wait(timeoutMs)) Assert.Fail("the task did not finish in " + timeoutMs + " ms");
            }
            catch (AggregateException e)
            {
                return e.InnerException;
            }
            Assert.Fail("the task succeeded");
            return null;
        }
    }
}
