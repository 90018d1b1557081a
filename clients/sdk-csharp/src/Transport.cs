// What the Socket runs on: a text-message transport and a clock, both replaceable (tests use
// fakes; a Unity WebGL build can plug in a transport over the browser's WebSocket).

using System;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Rsgame
{
    /// <summary>The time and timers the SDK uses, injectable so that tests control them.</summary>
    public interface IClock
    {
        /// <summary>
        /// The wall clock, for what the server stamps in unix seconds (token expiry) and only
        /// that: players move their device's clock, so it may jump either way.
        /// </summary>
        DateTimeOffset UtcNow { get; }

        /// <summary>
        /// Time since an arbitrary start that never jumps (a <see cref="System.Diagnostics.Stopwatch"/>),
        /// for every interval the SDK measures: the heartbeat's silence, the round trip, how long a
        /// connection lasted.
        /// </summary>
        TimeSpan Monotonic { get; }

        /// <summary>Completes after <paramref name="delay"/>; cancelled with <paramref name="ct"/>.</summary>
        Task Delay(TimeSpan delay, CancellationToken ct);
    }

    public sealed class SystemClock : IClock
    {
        public static readonly SystemClock Instance = new SystemClock();

        static readonly System.Diagnostics.Stopwatch Since = System.Diagnostics.Stopwatch.StartNew();

        public DateTimeOffset UtcNow { get { return DateTimeOffset.UtcNow; } }

        public TimeSpan Monotonic { get { return Since.Elapsed; } }

        public Task Delay(TimeSpan delay, CancellationToken ct) { return Task.Delay(delay, ct); }
    }

    /// <summary>
    /// One connection that carries whole text messages. One send and one receive may run at
    /// the same time (as with ClientWebSocket); the Socket never starts two of either.
    /// </summary>
    public interface ITransport : IDisposable
    {
        Task ConnectAsync(Uri uri, CancellationToken ct);

        Task SendAsync(string text, CancellationToken ct);

        /// <summary>The next text message; null once the connection is closed (see <see cref="CloseCode"/>).</summary>
        Task<string> ReceiveAsync(CancellationToken ct);

        /// <summary>Starts a polite close; a pending receive then returns null.</summary>
        Task CloseAsync(int code, string reason);

        /// <summary>Drops the connection at once; a pending receive ends.</summary>
        void Abort();

        /// <summary>The close code the server sent (1000, 1008…); 0 when the connection broke without one.</summary>
        int CloseCode { get; }

        /// <summary>The close reason the server sent (<c>session_ended</c>, <c>kicked</c>…); "" when none.</summary>
        string CloseReason { get; }
    }

    /// <summary>The transport over System.Net.WebSockets (.NET, Mono, Unity except WebGL).</summary>
    public sealed class WebSocketTransport : ITransport
    {
        readonly ClientWebSocket ws = new ClientWebSocket();
        readonly byte[] buffer = new byte[16 * 1024];

        /// <summary>
        /// The largest message accepted. A late joiner's lockstep history comes in bundles of up
        /// to 300 frames, so this is generous; it only guards against a runaway peer.
        /// </summary>
        public int MaxMessageBytes { get; set; } = 16 * 1024 * 1024;

        public int CloseCode { get; private set; }
        public string CloseReason { get; private set; } = "";

        public Task ConnectAsync(Uri uri, CancellationToken ct)
        {
            return ws.ConnectAsync(uri, ct);
        }

        public Task SendAsync(string text, CancellationToken ct)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            return ws.SendAsync(new ArraySegment<byte>(bytes), WebSocketMessageType.Text, true, ct);
        }

        public async Task<string> ReceiveAsync(CancellationToken ct)
        {
            var message = new MemoryStream();
            while (true)
            {
                if (ws.State != WebSocketState.Open && ws.State != WebSocketState.CloseSent) return null;
                var r = await ws.ReceiveAsync(new ArraySegment<byte>(buffer), ct).ConfigureAwait(false);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    CloseCode = r.CloseStatus.HasValue ? (int)r.CloseStatus.Value : 0;
                    CloseReason = r.CloseStatusDescription ?? "";
                    // Answer the server's close so that both ends finish the handshake.
                    if (ws.State == WebSocketState.CloseReceived)
                    {
                        try { await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).ConfigureAwait(false); }
                        catch (WebSocketException) { }
                    }
                    return null;
                }
                if (message.Length + r.Count > MaxMessageBytes)
                    throw new InvalidDataException("a message over " + MaxMessageBytes + " bytes");
                message.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage) continue;
                // A session that speaks text is answered in text; a binary message is not for us.
                if (r.MessageType == WebSocketMessageType.Text)
                    return Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length);
                message.SetLength(0);
            }
        }

        public async Task CloseAsync(int code, string reason)
        {
            if (ws.State != WebSocketState.Open) return;
            // CloseOutputAsync, not CloseAsync: a receive is pending, and it is the receive that
            // sees the server's answering close.
            try { await ws.CloseOutputAsync((WebSocketCloseStatus)code, reason, CancellationToken.None).ConfigureAwait(false); }
            catch (WebSocketException) { ws.Abort(); }
        }

        public void Abort() { ws.Abort(); }

        public void Dispose() { ws.Dispose(); }
    }
}
