// How the SDK raises its events: one at a time, in the order of the changes they report, on
// the thread that caused them or through the app's dispatcher (Unity's main thread).

using System;
using System.Collections.Generic;

namespace Rsgame
{
    /// <summary>
    /// A queue of handler calls run in the order they were added, never two at once. Its owner
    /// adds a call while holding the lock under which it made the change the call reports, so
    /// the calls come in the order of the changes even when they happen on several threads;
    /// then, with that lock released, it drains the queue. With a dispatcher the drain only
    /// hands the calls to it, in the same order.
    /// </summary>
    internal sealed class EventQueue
    {
        readonly Action<Action> dispatch;
        readonly Queue<Action> queue = new Queue<Action>();
        bool draining;

        public EventQueue(Action<Action> dispatch) { this.dispatch = dispatch; }

        /// <summary>Whether the calls go through a dispatcher (they then run later, elsewhere).</summary>
        public bool Dispatched { get { return dispatch != null; } }

        /// <summary>Queues a call (one that catches what it throws); runs nothing.</summary>
        public void Add(Action call)
        {
            lock (queue) queue.Enqueue(call);
        }

        /// <summary>
        /// Runs, or dispatches, what is queued. A thread that finds another draining leaves the
        /// calls to it. Never called under the owner's lock: the calls run user code.
        /// </summary>
        public void Drain()
        {
            lock (queue)
            {
                if (draining) return;
                draining = true;
            }
            while (true)
            {
                Action next;
                lock (queue)
                {
                    if (queue.Count == 0)
                    {
                        draining = false;
                        return;
                    }
                    next = queue.Dequeue();
                }
                try
                {
                    if (dispatch != null) dispatch(next);
                    else next();
                }
                catch (Exception)
                {
                    // The calls guard themselves; a dispatcher that throws must not stop the queue.
                }
            }
        }
    }
}
