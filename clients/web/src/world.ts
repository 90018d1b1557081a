// The world view: what the server says is in view (SpawnResp, MoveResp, DespawnResp,
// AttackResp, PlayerStats), drawn on a canvas around the player; WASD, the on-screen stick or
// a click/tap moves, a click on a monster (or on a player in a PvP scene) attacks it. The
// camera shows what the server lets the player see (SceneInfo's viewDistance), no more.
import { pb } from "@rsgame/client";
import { MessageId as ID } from "@rsgame/client";

/** Client-side pace: under the server's world.max_speed (40/s), so no move is cut. */
const SPEED = 34;
/** Within the server's world.attack_range (20). */
const REACH = 17;
/** The server's world.attack_cooldown_ms (800), with a margin. */
const COOLDOWN_MS = 850;
const STEP_MS = 100;
/** Pixels per world unit before the scene says how far the player sees. */
const SCALE = 2.2;
/** How far an attack button press looks for something to hit. */
const PICK_RANGE = 60;
/** Monster ids start at 2^48 (docs/protocol.md). */
const MONSTER_BASE = 2 ** 48;

export interface Entity {
  id: number;
  kind: number; // 1 player, 2 monster
  name: string;
  x: number;
  z: number;
  /** Where the server last put it; drawn positions glide towards it. */
  tx: number;
  tz: number;
  hp: number;
  maxHp: number;
  dead: boolean;
}

interface Floater {
  x: number;
  z: number;
  text: string;
  color: string;
  born: number;
}

export interface Me {
  id: number;
  name: string;
  x: number;
  z: number;
  hp: number;
  maxHp: number;
  level: number;
  exp: number;
  coins: number;
  attack: number;
  defence: number;
  dead: boolean;
}

export type Send = (id: number, msg: object) => void;

export class World {
  me: Me = { id: 0, name: "", x: 0, z: 0, hp: 0, maxHp: 0, level: 1, exp: 0, coins: 0, attack: 0, defence: 0, dead: false };
  entities = new Map<number, Entity>();
  private floaters: Floater[] = [];
  private keys = new Set<string>();
  private moveTo: { x: number; z: number } | null = null;
  target: number | null = null;
  private lastAttack = 0;
  private lastSent = { x: NaN, z: NaN };
  private lastStep = performance.now();
  /** The player stands in a scene (not a lockstep room): the view is live. */
  active = true;
  /** Whether players may hit players here (the scene says so: SceneInfo). */
  pvp = false;
  /** Who killed the player last (a name; empty when not known). */
  killedBy = "";
  /** The scene's walkable rectangle, drawn as the world's edge (SceneInfo). */
  bounds: { minX: number; minZ: number; maxX: number; maxZ: number } | null = null;
  /** How far along each axis others are always in view (SceneInfo); 0 before it says. */
  viewDistance = 0;
  /** The on-screen stick's direction (each axis -1..1), or null when it is let go. */
  stick: { x: number; z: number } | null = null;
  private scale = SCALE;
  /** Whether the player's level is known yet this session (false again at each login). */
  levelKnown = false;
  /** Called when a kill's reward arrives (so the inventory can refresh). */
  onReward: (exp: number, coins: number) => void = () => {};
  onStats: () => void = () => {};
  onPick: (e: Entity) => void = () => {};
  /** The player reached a higher level. */
  onLevelUp: (level: number) => void = () => {};

  constructor(
    private canvas: HTMLCanvasElement,
    private send: Send,
  ) {
    // Pointer events: a mouse click and a finger's tap alike.
    canvas.addEventListener("pointerdown", (ev) => this.click(ev));
    window.addEventListener("keydown", (ev) => {
      if (isTyping(ev)) return;
      const k = ev.key.toLowerCase();
      if ("wasd".includes(k) && k.length === 1) {
        this.keys.add(k);
        this.moveTo = null;
        this.target = null;
      }
    });
    window.addEventListener("keyup", (ev) => this.keys.delete(ev.key.toLowerCase()));
    window.addEventListener("blur", () => this.keys.clear());
    window.setInterval(() => this.step(), STEP_MS);
    const frame = () => {
      this.draw();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  /** A new scene or room: forget what was in view. */
  reset(): void {
    this.entities.clear();
    this.floaters = [];
    this.moveTo = null;
    this.target = null;
    this.lastSent = { x: NaN, z: NaN };
  }

  handle(id: number, m: any): void {
    switch (id) {
      case ID.UserInfo: {
        this.me.id = Number(m.userId);
        this.me.name = m.nickname || m.username;
        if (m.position) this.place(m.position.X, m.position.Z);
        break;
      }
      case ID.SpawnResp:
        for (const e of m.list ?? []) {
          const eid = Number(e.id);
          const x = e.site?.X ?? 0;
          const z = e.site?.Z ?? 0;
          if (eid === this.me.id) {
            this.me.hp = Number(e.hp);
            this.me.maxHp = Number(e.maxHp);
            continue;
          }
          this.entities.set(eid, {
            id: eid,
            kind: e.kind,
            name: e.name,
            x,
            z,
            tx: x,
            tz: z,
            hp: Number(e.hp),
            maxHp: Number(e.maxHp),
            dead: Number(e.hp) <= 0,
          });
        }
        break;
      case ID.DespawnResp:
        for (const raw of m.ids ?? []) {
          const eid = Number(raw);
          this.entities.delete(eid);
          if (this.target === eid) this.target = null;
        }
        break;
      case ID.MoveResp:
        for (const us of m.siteList ?? []) {
          const uid = Number(us.userId);
          const x = us.site?.X ?? 0;
          const z = us.site?.Z ?? 0;
          if (uid === this.me.id) {
            // Our own entry in the cell's batch is an echo, unless the server overrules us.
            if (us.action === "correct" || us.action === "spawn") {
              this.place(x, z);
              if (us.action === "correct") this.moveTo = null;
            }
            continue;
          }
          const e = this.entities.get(uid);
          if (e) {
            e.tx = x;
            e.tz = z;
          }
        }
        break;
      case ID.AttackResp:
        this.attackResp(m);
        break;
      case ID.PlayerStats: {
        const level = Number(m.level);
        // The first numbers of a session are not news; a higher level after them is.
        if (this.levelKnown && level > this.me.level) this.onLevelUp(level);
        this.levelKnown = true;
        this.me.hp = Number(m.hp);
        this.me.maxHp = Number(m.maxHp);
        this.me.level = level;
        this.me.exp = Number(m.exp);
        this.me.coins = Number(m.coins);
        this.me.attack = Number(m.attack);
        this.me.defence = Number(m.defence);
        if (this.me.hp > 0) this.me.dead = false;
        this.onStats();
        break;
      }
    }
  }

  private attackResp(m: any): void {
    const obj = Number(m.objId);
    const isMe = obj === this.me.id;
    const e = this.entities.get(obj);
    const at = isMe ? this.me : e;
    switch (m.status) {
      case pb.AttackStatus.ATTACK_STATUS_HIT: {
        const hp = Number(m.objHp);
        if (isMe) this.me.hp = hp;
        else if (e) e.hp = hp;
        if (at) this.float(at.x, at.z, `-${Number(m.hurt)}`, isMe ? "#ff5050" : "#ffd24a");
        this.onStats();
        break;
      }
      case pb.AttackStatus.ATTACK_STATUS_DIED:
        if (isMe) {
          // userId: who killed it (a monster's name is known from its spawn).
          const by = this.entities.get(Number(m.userId));
          this.killedBy = by?.name ?? "";
          this.me.hp = 0;
          this.me.dead = true;
          this.moveTo = null;
          this.target = null;
          this.onStats();
        } else if (e) {
          e.hp = 0;
          e.dead = true;
          if (this.target === obj) this.target = null;
        }
        if (at) this.float(at.x, at.z, "✖", "#ff5050");
        break;
      case pb.AttackStatus.ATTACK_STATUS_REWARD:
        this.float(this.me.x, this.me.z, `+${Number(m.exp)} exp  +${Number(m.coin)} coins`, "#7dff7d");
        this.onReward(Number(m.exp), Number(m.coin));
        break;
    }
  }

  respawn(): void {
    this.send(ID.Respawn, {});
  }

  private place(x: number, z: number): void {
    this.me.x = x;
    this.me.z = z;
    this.lastSent = { x, z };
  }

  private float(x: number, z: number, text: string, color: string): void {
    this.floaters.push({ x, z, text, color, born: performance.now() });
    // Drawn (and expired) only while the tab is visible: keep a hidden tab's list short.
    if (this.floaters.length > 40) this.floaters.shift();
  }

  private toWorld(px: number, py: number): { x: number; z: number } {
    const r = this.canvas.getBoundingClientRect();
    const sx = (px - r.left) * (this.canvas.width / r.width);
    const sy = (py - r.top) * (this.canvas.height / r.height);
    const k = this.scale;
    return { x: this.me.x + (sx - this.canvas.width / 2) / k, z: this.me.z + (sy - this.canvas.height / 2) / k };
  }

  /** Screen position of a world point, for tests and tools. */
  toScreen(x: number, z: number): { x: number; y: number } {
    const k = this.scale;
    return { x: this.canvas.width / 2 + (x - this.me.x) * k, y: this.canvas.height / 2 + (z - this.me.z) * k };
  }

  /** Pixels per unit: the shorter side of the view spans the farthest the player can see
   * (its AOI cell and the eight around it: up to twice viewDistance), so what comes into
   * view enters near the edge, not from nothing in the middle of the screen. */
  private fitScale(): void {
    if (this.viewDistance <= 0) return;
    const side = Math.min(this.canvas.width, this.canvas.height);
    this.scale = Math.max(0.5, Math.min(8, side / (4 * this.viewDistance * 1.04)));
  }

  /** The attack button: the target if it is alive, else the nearest thing that can be hit. */
  attackNearest(): void {
    if (!this.active || this.me.dead) return;
    const current = this.target === null ? undefined : this.entities.get(this.target);
    if (current && !current.dead) return;
    let best: Entity | null = null;
    let bestD = PICK_RANGE;
    for (const e of this.entities.values()) {
      if (e.dead || !(e.kind === pb.EntityKind.ENTITY_KIND_MONSTER || this.pvp)) continue;
      const d = Math.hypot(e.x - this.me.x, e.z - this.me.z);
      if (d < bestD) {
        best = e;
        bestD = d;
      }
    }
    if (best) this.attack(best.id);
  }

  private click(ev: PointerEvent): void {
    if (!this.active || this.me.dead) return;
    const p = this.toWorld(ev.clientX, ev.clientY);
    let best: Entity | null = null;
    // A finger is less precise than a mouse: a wider catch.
    let bestD = (ev.pointerType === "touch" ? 22 : 12) / this.scale + 4;
    for (const e of this.entities.values()) {
      if (e.dead) continue;
      const d = Math.hypot(e.x - p.x, e.z - p.z);
      if (d < bestD) {
        best = e;
        bestD = d;
      }
    }
    if (best && (best.kind === pb.EntityKind.ENTITY_KIND_MONSTER || this.pvp)) {
      this.target = best.id;
      this.moveTo = null;
    } else if (best) {
      this.onPick(best);
    } else {
      this.target = null;
      this.moveTo = p;
    }
  }

  /** Attacks `id`: walks into reach, then strikes on every cooldown until it dies. */
  attack(id: number): void {
    this.target = id;
    this.moveTo = null;
  }

  walkTo(x: number, z: number): void {
    this.target = null;
    this.moveTo = { x, z };
  }

  /** One movement step: SPEED × the time since the last step, then the position goes to the
   * server. Timers drift and stall (a background tab runs them once a second): the distance
   * follows the clock, not the count of steps, so the server's speed check always agrees. */
  private step(): void {
    const now = performance.now();
    const dt = Math.min(now - this.lastStep, 500) / 1000;
    this.lastStep = now;
    if (!this.active || this.me.dead || this.me.id === 0) return;
    let dx = 0;
    let dz = 0;
    let pace = 1;
    if (this.stick) {
      dx = this.stick.x;
      dz = this.stick.z;
      pace = Math.min(1, Math.hypot(dx, dz));
      this.moveTo = null;
      this.target = null;
    } else if (this.keys.size) {
      dx = (this.keys.has("d") ? 1 : 0) - (this.keys.has("a") ? 1 : 0);
      dz = (this.keys.has("s") ? 1 : 0) - (this.keys.has("w") ? 1 : 0);
    } else if (this.target !== null) {
      const t = this.entities.get(this.target);
      if (!t || t.dead) {
        this.target = null;
      } else {
        const d = Math.hypot(t.x - this.me.x, t.z - this.me.z);
        if (d <= REACH) {
          const now = performance.now();
          if (now - this.lastAttack >= COOLDOWN_MS) {
            this.lastAttack = now;
            this.send(ID.Attack, { objId: t.id });
          }
        } else {
          dx = t.x - this.me.x;
          dz = t.z - this.me.z;
        }
      }
    } else if (this.moveTo) {
      dx = this.moveTo.x - this.me.x;
      dz = this.moveTo.z - this.me.z;
      if (Math.hypot(dx, dz) < 0.5) {
        this.moveTo = null;
        dx = dz = 0;
      }
    }
    const len = Math.hypot(dx, dz);
    if (len > 0) {
      let step = SPEED * dt * pace;
      if (this.moveTo && !this.keys.size && this.target === null) step = Math.min(step, len);
      this.me.x += (dx / len) * step;
      this.me.z += (dz / len) * step;
    }
    if (this.me.x !== this.lastSent.x || this.me.z !== this.lastSent.z) {
      this.lastSent = { x: this.me.x, z: this.me.z };
      this.send(ID.Move, { site: { X: this.me.x, Y: 0, Z: this.me.z } });
    }
  }

  private draw(): void {
    const c = this.canvas;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w && h && (c.width !== w || c.height !== h)) {
      c.width = w;
      c.height = h;
    }
    const g = c.getContext("2d");
    if (!g || !this.active) return;
    this.fitScale();
    const k = this.scale;
    g.fillStyle = "#1d2b1f";
    g.fillRect(0, 0, c.width, c.height);
    // A grid every 25 units, so movement shows.
    g.strokeStyle = "#27392a";
    g.lineWidth = 1;
    const grid = 25;
    const left = this.me.x - c.width / 2 / k;
    const top = this.me.z - c.height / 2 / k;
    for (let gx = Math.floor(left / grid) * grid; gx < left + c.width / k; gx += grid) {
      const sx = this.toScreen(gx, 0).x;
      g.beginPath();
      g.moveTo(sx, 0);
      g.lineTo(sx, c.height);
      g.stroke();
    }
    for (let gz = Math.floor(top / grid) * grid; gz < top + c.height / k; gz += grid) {
      const sy = this.toScreen(0, gz).y;
      g.beginPath();
      g.moveTo(0, sy);
      g.lineTo(c.width, sy);
      g.stroke();
    }
    if (this.bounds) {
      // The world's edge: beyond it nothing can stand.
      const a = this.toScreen(this.bounds.minX, this.bounds.minZ);
      const b = this.toScreen(this.bounds.maxX, this.bounds.maxZ);
      g.strokeStyle = this.pvp ? "#c0504d" : "#8aa57a";
      g.lineWidth = 3;
      g.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
    }
    if (this.moveTo && this.target === null) {
      // Where a click or tap sends the player.
      const t = this.toScreen(this.moveTo.x, this.moveTo.z);
      g.strokeStyle = "#ffffffa0";
      g.lineWidth = 2;
      g.beginPath();
      g.arc(t.x, t.y, 6, 0, Math.PI * 2);
      g.moveTo(t.x - 10, t.y);
      g.lineTo(t.x + 10, t.y);
      g.moveTo(t.x, t.y - 10);
      g.lineTo(t.x, t.y + 10);
      g.stroke();
    }
    // Labels that would overlap are stacked upwards instead.
    const placed: Array<{ x: number; y: number; w: number }> = [];
    const labelAt = (x: number, y: number, text: string): number => {
      g.font = "12px sans-serif";
      const w = g.measureText(text).width + 4;
      let ly = y - 16;
      for (let i = 0; i < 4 && placed.some((o) => Math.abs(o.x - x) < (o.w + w) / 2 && Math.abs(o.y - ly) < 13); i++) ly -= 13;
      placed.push({ x, y: ly, w });
      return ly;
    };
    const me0 = this.toScreen(this.me.x, this.me.z);
    labelAt(me0.x, me0.y, this.me.name);
    for (const e of this.entities.values()) {
      e.x += (e.tx - e.x) * 0.25;
      e.z += (e.tz - e.z) * 0.25;
      const p = this.toScreen(e.x, e.z);
      const monster = e.kind === pb.EntityKind.ENTITY_KIND_MONSTER || e.id >= MONSTER_BASE;
      g.globalAlpha = e.dead ? 0.35 : 1;
      g.fillStyle = monster ? "#c0504d" : "#4f81bd";
      g.beginPath();
      g.arc(p.x, p.y, monster ? 9 : 8, 0, Math.PI * 2);
      g.fill();
      if (this.target === e.id) {
        g.strokeStyle = "#ffd24a";
        g.lineWidth = 2;
        g.stroke();
      }
      this.label(g, p.x, p.y, e.name, e.hp, e.maxHp, labelAt(p.x, p.y, e.name));
      g.globalAlpha = 1;
    }
    const me = me0;
    g.globalAlpha = this.me.dead ? 0.35 : 1;
    g.fillStyle = "#f2f2f2";
    g.beginPath();
    g.arc(me.x, me.y, 8, 0, Math.PI * 2);
    g.fill();
    this.label(g, me.x, me.y, this.me.name, this.me.hp, this.me.maxHp, me.y - 16);
    g.globalAlpha = 1;
    if (this.viewDistance > 0) {
      // Within viewDistance everything is in view (a faint square); beyond twice it nothing
      // ever is (dimmed, on the long side of a wide screen).
      const v = this.viewDistance;
      const n = this.toScreen(this.me.x - v, this.me.z - v);
      g.strokeStyle = "#ffffff22";
      g.lineWidth = 1;
      g.setLineDash([6, 6]);
      g.strokeRect(n.x, n.y, 2 * v * k, 2 * v * k);
      g.setLineDash([]);
      const a = this.toScreen(this.me.x - 2 * v, this.me.z - 2 * v);
      const b = this.toScreen(this.me.x + 2 * v, this.me.z + 2 * v);
      g.fillStyle = "#00000066";
      g.fillRect(0, 0, c.width, Math.max(0, a.y));
      g.fillRect(0, b.y, c.width, Math.max(0, c.height - b.y));
      g.fillRect(0, a.y, Math.max(0, a.x), b.y - a.y);
      g.fillRect(b.x, a.y, Math.max(0, c.width - b.x), b.y - a.y);
    }
    const now = performance.now();
    this.floaters = this.floaters.filter((f) => now - f.born < 1200);
    g.font = "bold 13px sans-serif";
    g.textAlign = "center";
    for (const f of this.floaters) {
      const p = this.toScreen(f.x, f.z);
      const age = (now - f.born) / 1200;
      g.globalAlpha = 1 - age;
      g.fillStyle = f.color;
      g.fillText(f.text, p.x, p.y - 24 - age * 30);
    }
    g.globalAlpha = 1;
  }

  private label(g: CanvasRenderingContext2D, x: number, y: number, name: string, hp: number, maxHp: number, ly: number): void {
    g.font = "12px sans-serif";
    g.textAlign = "center";
    g.fillStyle = "#e8e8e8";
    g.fillText(name, x, ly);
    if (maxHp > 0) {
      g.fillStyle = "#400";
      g.fillRect(x - 15, y + 11, 30, 4);
      g.fillStyle = "#3fbf3f";
      g.fillRect(x - 15, y + 11, (30 * Math.max(0, hp)) / maxHp, 4);
    }
  }
}

function isTyping(ev: KeyboardEvent): boolean {
  const t = ev.target as HTMLElement | null;
  return !!t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
}
