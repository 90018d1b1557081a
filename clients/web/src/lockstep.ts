// The lockstep mini-game: every player steers a square. The server only orders inputs into
// numbered frames (LockstepFrames); each client steps the same deterministic simulation one
// frame at a time, so every screen shows the same squares at the same frame, including a
// late joiner's, which replays the kept frames first. Who is in the room is part of the
// frames too (membersChanged): a square appears and goes at the same frame on every screen.
import { MessageId as ID } from "@rsgame/client";
import type { Send } from "./world";

const SIZE = 400;
const SQUARE = 18;
const STEP = 3;
const COLORS = ["#e06c75", "#61afef", "#98c379", "#e5c07b", "#c678dd", "#56b6c2", "#d19a66", "#abb2bf"];

interface Square {
  x: number;
  y: number;
}

export class Lockstep {
  roomId = 0;
  /** The next frame number expected; frames arrive without gaps. */
  frame = 0;
  squares = new Map<number, Square>();
  /** The state after each recent frame, so two screens can be compared frame by frame. */
  history = new Map<number, string>();
  private keys = new Set<string>();
  /** When a LockstepSync was sent: one at a time, again after 2 s without an answer. */
  private syncSent = 0;
  /** A player's name for its square's label (the page knows more names than the frames). */
  nameOf: (id: number) => string = (id) => `#${id}`;

  constructor(
    private canvas: HTMLCanvasElement,
    private send: Send,
  ) {
    window.addEventListener("keydown", (ev) => {
      const t = ev.target as HTMLElement | null;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA")) return;
      this.keys.add(ev.key.toLowerCase());
    });
    window.addEventListener("keyup", (ev) => this.keys.delete(ev.key.toLowerCase()));
    window.addEventListener("blur", () => this.keys.clear());
  }

  enter(roomId: number): void {
    this.roomId = roomId;
    this.frame = 0;
    this.syncSent = 0;
    this.squares.clear();
    this.history.clear();
    this.draw();
  }

  /** A direction as one byte: up 1, down 2, left 4, right 8. */
  private input(): number {
    const k = this.keys;
    return (
      (k.has("w") || k.has("arrowup") ? 1 : 0) |
      (k.has("s") || k.has("arrowdown") ? 2 : 0) |
      (k.has("a") || k.has("arrowleft") ? 4 : 0) |
      (k.has("d") || k.has("arrowright") ? 8 : 0)
    );
  }

  /** Presses a direction for `ms` (for the on-screen buttons). */
  press(key: string, ms = 400): void {
    this.keys.add(key);
    window.setTimeout(() => this.keys.delete(key), ms);
  }

  handle(m: any): void {
    if (Number(m.roomId) !== this.roomId) return;
    for (const f of m.frames ?? []) {
      const n = Number(f.number);
      if (n < this.frame) continue; // already stepped (a sync overlapping what we had)
      if (n > this.frame) {
        // A gap (we were away, or joined after a reload): ask for what we missed, once,
        // and drop this bundle; the answer replays from where we are.
        if (performance.now() - this.syncSent > 2000) {
          this.syncSent = performance.now();
          this.send(ID.LockstepSync, { from: this.frame });
        }
        return;
      }
      this.syncSent = 0;
      this.apply(f);
      this.frame = n + 1;
      this.history.set(n, this.digest());
      this.history.delete(n - 600);
    }
    // One input per frame bundle while a direction is held: the server files it under the
    // frame being built.
    const dir = this.input();
    if (dir) this.send(ID.LockstepInput, { data: new Uint8Array([dir]) });
    this.draw();
  }

  /** A deterministic start from the id alone. */
  private static start(uid: number): Square {
    return { x: 20 + ((uid * 37) % (SIZE - 60)), y: 20 + ((uid * 91) % (SIZE - 60)) };
  }

  private apply(f: any): void {
    if (f.membersChanged) {
      // Everyone in the room at this frame: newcomers get their square, leavers lose theirs.
      const members = new Set<number>((f.members ?? []).map(Number));
      for (const id of [...this.squares.keys()]) if (!members.has(id)) this.squares.delete(id);
      for (const id of members) if (!this.squares.has(id)) this.squares.set(id, Lockstep.start(id));
    }
    // Inputs come grouped by player in ascending ids: the same order on every client.
    for (const pi of f.inputs ?? []) {
      const uid = Number(pi.userId);
      let sq = this.squares.get(uid);
      if (!sq) {
        // Joined before the kept frames began (a late joiner's replay starts after it).
        sq = Lockstep.start(uid);
        this.squares.set(uid, sq);
      }
      for (const d of pi.data ?? []) {
        const b = d.length ? d[0] : 0;
        if (b & 1) sq.y -= STEP;
        if (b & 2) sq.y += STEP;
        if (b & 4) sq.x -= STEP;
        if (b & 8) sq.x += STEP;
        sq.x = Math.max(0, Math.min(SIZE - SQUARE, sq.x));
        sq.y = Math.max(0, Math.min(SIZE - SQUARE, sq.y));
      }
    }
  }

  /** A digest of the state, so two screens can be compared at the same frame. */
  digest(): string {
    return [...this.squares.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([id, s]) => `${id}:${s.x},${s.y}`)
      .join(";");
  }

  draw(): void {
    const c = this.canvas;
    c.width = SIZE;
    c.height = SIZE;
    const g = c.getContext("2d");
    if (!g) return;
    g.fillStyle = "#202430";
    g.fillRect(0, 0, SIZE, SIZE);
    let i = 0;
    for (const [id, s] of [...this.squares.entries()].sort((a, b) => a[0] - b[0])) {
      g.fillStyle = COLORS[i++ % COLORS.length];
      g.fillRect(s.x, s.y, SQUARE, SQUARE);
      g.fillStyle = "#fff";
      g.font = "11px sans-serif";
      g.fillText(this.nameOf(id), s.x, s.y > 14 ? s.y - 3 : s.y + SQUARE + 11);
    }
    g.fillStyle = "#aaa";
    g.font = "12px monospace";
    g.fillText(`frame ${this.frame}`, 6, SIZE - 8);
  }
}
