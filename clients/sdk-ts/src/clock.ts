// Time and chance, injectable so that reconnect, heartbeat and refresh logic can be tested
// with a fake clock instead of waiting.

export interface Clock {
  /** Milliseconds for intervals (heartbeat, round trips): monotonic where the host allows, so a
   * player moving the device's clock neither kills a healthy link nor keeps a dead one. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** In [0, 1): the jitter of reconnect delays. */
  random(): number;
}

// Every JavaScript host has these, but the ES library types do not declare them.
interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
const timers = globalThis as unknown as Timers;
const perf = (globalThis as { performance?: { now(): number } }).performance;

export const systemClock: Clock = {
  now: perf ? () => perf.now() : () => Date.now(),
  setTimeout: (fn, ms) => timers.setTimeout(fn, ms),
  clearTimeout: (h) => timers.clearTimeout(h),
  random: () => Math.random(),
};
