// Unity adapter: runs the SDK's events on Unity's main thread. The core (src/) raises them on
// its own threads, where no Unity API may be called; this queue hands them to Update.
// Not compiled by build.sh (it needs UnityEngine): copy it into the project beside src/.

using System;
using System.Collections.Concurrent;
using UnityEngine;

namespace Rsgame.Unity
{
    /// <summary>
    /// Give <see cref="Post"/> to the client and the socket as their dispatcher:
    /// <c>new Client(url, new ClientOptions { Dispatch = RsgameDispatcher.Post })</c> and
    /// <c>new Socket(client, new SocketOptions { Dispatch = RsgameDispatcher.Post, Platform = "unity" })</c>.
    /// Every handler then runs in Update, in the order the messages arrived, and a request
    /// awaited on the main thread completes here too: the code after
    /// <c>await socket.Request(…)</c> runs right after its reply's handlers, before those of
    /// the messages that followed it.
    /// </summary>
    public sealed class RsgameDispatcher : MonoBehaviour
    {
        // Static, so that the socket's thread may post before the behaviour exists (it is
        // made on the main thread at start-up, below); nothing is lost in between.
        static readonly ConcurrentQueue<Action> Queue = new ConcurrentQueue<Action>();
        static RsgameDispatcher instance;

        /// <summary>
        /// The most handlers run in one frame; the rest wait for the next, in order. A burst
        /// (a late joiner's lockstep history, a crowded view after a reconnect) then costs a few
        /// frames instead of one long stall.
        /// </summary>
        public static int MaxPerFrame = 2000;

        /// <summary>Queues <paramref name="action"/> for the main thread. Safe from any thread.</summary>
        public static void Post(Action action)
        {
            if (action == null) throw new ArgumentNullException("action");
            Queue.Enqueue(action);
        }

        [RuntimeInitializeOnLoadMethod(RuntimeInitializeLoadType.BeforeSceneLoad)]
        static void Install()
        {
            if (instance != null) return;
            var go = new GameObject("RsgameDispatcher");
            go.hideFlags = HideFlags.HideInHierarchy;
            DontDestroyOnLoad(go);
            instance = go.AddComponent<RsgameDispatcher>();
        }

        void Update()
        {
            Action action;
            for (int i = 0; i < MaxPerFrame && Queue.TryDequeue(out action); i++)
            {
                // The client and the socket already report a throwing handler to their OnError;
                // this guard only keeps a bug in a posted action from stopping the queue.
                try { action(); }
                catch (Exception e) { Debug.LogException(e); }
            }
        }

        void OnDestroy()
        {
            if (instance == this) instance = null;
        }
    }
}
