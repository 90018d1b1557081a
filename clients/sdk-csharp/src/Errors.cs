// The SDK's exceptions and the interfaces the generated messages implement.

using System;

namespace Rsgame
{
    /// <summary>A message the client sends on the game connection (its id is generated from game.proto).</summary>
    public interface IOutbound : IJsonWritable
    {
        int MessageId { get; }
    }

    /// <summary>A message the server answers with one <typeparamref name="TReply"/> to its sender.</summary>
    public interface IRequest<TReply> : IOutbound
    {
    }

    /// <summary>
    /// The server refused something: a REST envelope with a code other than 200, or an
    /// ErrorResp on the game connection. Show the player a text chosen by <see cref="Code"/>
    /// (docs/errors.md); <see cref="Exception.Message"/> is the server's text, for developers.
    /// </summary>
    public sealed class RsgameException : Exception
    {
        /// <summary>The code as a number (also for codes newer than this SDK).</summary>
        public int RawCode { get; private set; }

        /// <summary>The HTTP status of a REST reply; 0 on the game connection or when no reply came.</summary>
        public int HttpStatus { get; private set; }

        /// <summary>The message id the server refused (ErrorResp's reqId); 0 for REST.</summary>
        public int RequestId { get; private set; }

        public RsgameException(int code, string message, int httpStatus = 0, int requestId = 0, Exception inner = null)
            : base(message, inner)
        {
            RawCode = code;
            HttpStatus = httpStatus;
            RequestId = requestId;
        }

        /// <summary>The code; <see cref="Rsgame.Code.Unreachable"/> when the server did not answer with an envelope.</summary>
        public Code Code { get { return (Rsgame.Code)RawCode; } }

        public override string ToString()
        {
            return "RsgameException " + RawCode + ": " + Message + (InnerException != null ? " (" + InnerException.Message + ")" : "");
        }
    }

    /// <summary>
    /// A request on the game connection that cannot be answered: the socket was stopped, the
    /// connection dropped after it was sent (it may or may not have been carried out), or it
    /// could not wait for the next connection (it goes stale, or the queue is full).
    /// </summary>
    public sealed class ConnectionException : Exception
    {
        public SocketStatus Status { get; private set; }

        public ConnectionException(string message, SocketStatus status) : base(message)
        {
            Status = status;
        }
    }
}
