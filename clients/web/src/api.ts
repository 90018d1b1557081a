// The demo's account glue on @rsgame/client: one Client for the page (the session kept in this
// tab, so a reload resumes it), this browser's guest device id, and goods in words.
import { Client, deviceId as makeDeviceId, webStore, type Goods } from "@rsgame/client";

export const client = new Client({ baseUrl: location.origin, store: webStore(sessionStorage) });

/**
 * This browser's device id: made once and kept in localStorage, so "Play as guest" finds the
 * same account on every visit. Whoever knows it plays as the guest.
 */
export function deviceId(): string {
  return makeDeviceId(localStorage, "rsgame.device");
}

/** What a goods does, in a few words (shown in the shop and the bag). */
export function describe(g: Goods): string {
  const e = g.effect;
  if (e && "heal" in e) return `heals ${e.heal} hp`;
  if (e && "exp" in e) return `+${e.exp} exp`;
  if (e && "buff" in e) return `+${e.buff.attack} attack for ${e.buff.secs} s`;
  const parts = [];
  if (g.attack) parts.push(`+${g.attack} attack`);
  if (g.defence) parts.push(`+${g.defence} defence`);
  if (g.slot) parts.push(g.slot);
  return parts.join(", ") || g.kind;
}
