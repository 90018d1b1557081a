//! Nine-grid area of interest, for sending to a scene's view: the scene's plane is cut into
//! square cells; an entity sees the entities in its own cell and the eight around it. Moving
//! to another cell yields who came into view and who left it, so a scene sends spawns and
//! despawns only for those.
//!
//! Plain data, no I/O: a scene (usually a [`Room`](crate::room::Room)) owns one grid and
//! drives it from its tick. To send to everyone who sees a point, look up the sessions of
//! [`Grid::around`]:
//!
//! ```
//! use std::collections::HashMap;
//! use rsgame_gate::aoi::{Bounds, Grid};
//! use rsgame_gate::{Session, send_many};
//! use rsgame_proto::pb;
//!
//! fn shout(grid: &Grid, sessions: &HashMap<u64, Session>, x: f32, z: f32, text: &str) -> usize {
//!     let near = grid.around(x, z).filter_map(|id| sessions.get(&id));
//!     let msg = pb::ChatMsg { msg: text.into(), ..Default::default() };
//!     send_many(near, 200_002, &pb::ChatMsgResp { msg_list: vec![msg] })
//! }
//!
//! let mut grid = Grid::new(Bounds { min_x: 0.0, min_z: 0.0, max_x: 1000.0, max_z: 1000.0 }, 50.0);
//! grid.insert(7, 10.0, 10.0); // in view of (60, 60): the next cell
//! grid.insert(8, 900.0, 900.0); // far away
//! let seen: Vec<u64> = grid.around(60.0, 60.0).collect();
//! assert_eq!(seen, [7]);
//! # let _ = shout;
//! ```

use std::collections::HashSet;

/// An entity in a scene: a player (say, its account id) or anything else the game places
/// (the demo gives monsters ids from 2^48 up).
pub type EntityId = u64;

/// A rectangle on the ground plane (x, z).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Smallest x.
    pub min_x: f32,
    /// Smallest z.
    pub min_z: f32,
    /// Largest x.
    pub max_x: f32,
    /// Largest z.
    pub max_z: f32,
}

impl Bounds {
    /// Whether (x, z) lies inside.
    pub fn contains(&self, x: f32, z: f32) -> bool {
        x >= self.min_x && x <= self.max_x && z >= self.min_z && z <= self.max_z
    }

    /// The nearest point inside.
    pub fn clamp(&self, x: f32, z: f32) -> (f32, f32) {
        (x.clamp(self.min_x, self.max_x), z.clamp(self.min_z, self.max_z))
    }
}

/// Who came into an entity's view and who left it after it changed cell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ViewChange {
    /// Now in view (not before).
    pub entered: Vec<EntityId>,
    /// No longer in view.
    pub left: Vec<EntityId>,
}

/// The grid.
#[derive(Debug, Clone)]
pub struct Grid {
    bounds: Bounds,
    /// Cell width (x) and depth (z).
    cell: (f32, f32),
    cols: usize,
    rows: usize,
    cells: Vec<HashSet<EntityId>>,
}

impl Grid {
    /// A grid over `bounds` with square cells of side `cell` (at least 1).
    pub fn new(bounds: Bounds, cell: f32) -> Grid {
        let cell = if cell.is_finite() && cell >= 1.0 { cell } else { 1.0 };
        let span = |a: f32, b: f32| (((b - a).max(0.0) / cell).floor() as usize + 1).min(4096);
        let (cols, rows) = (span(bounds.min_x, bounds.max_x), span(bounds.min_z, bounds.max_z));
        Grid { bounds, cell: (cell, cell), cols, rows, cells: vec![HashSet::new(); cols * rows] }
    }

    /// A grid over `bounds` cut into `cols` × `rows` cells (1 to 4096 each), as zinx's
    /// `NewAOIManager(minX, maxX, cntsX, minY, maxY, cntsY)` cuts go-game's scenes; a point on
    /// the far edge belongs to the last cell.
    pub fn with_cells(bounds: Bounds, cols: usize, rows: usize) -> Grid {
        let (cols, rows) = (cols.clamp(1, 4096), rows.clamp(1, 4096));
        let side = |a: f32, b: f32, n: usize| {
            let s = (b - a) / n as f32;
            if s.is_finite() && s > 0.0 { s } else { 1.0 }
        };
        let cell = (side(bounds.min_x, bounds.max_x, cols), side(bounds.min_z, bounds.max_z, rows));
        Grid { bounds, cell, cols, rows, cells: vec![HashSet::new(); cols * rows] }
    }

    /// Columns and rows.
    pub fn size(&self) -> (usize, usize) {
        (self.cols, self.rows)
    }

    /// The bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// (column, row) of a point, clamped into the grid (NaN counts as the minimum).
    pub fn cell_of(&self, x: f32, z: f32) -> (usize, usize) {
        let (x, z) = self
            .bounds
            .clamp(if x.is_nan() { self.bounds.min_x } else { x }, if z.is_nan() { self.bounds.min_z } else { z });
        let c = (((x - self.bounds.min_x) / self.cell.0) as usize).min(self.cols - 1);
        let r = (((z - self.bounds.min_z) / self.cell.1) as usize).min(self.rows - 1);
        (c, r)
    }

    /// The index of the cell holding (x, z): players with the same index see the same cells.
    pub fn index_of(&self, x: f32, z: f32) -> usize {
        self.idx(self.cell_of(x, z))
    }

    /// The cells in view from the cell at `index` (itself and up to eight around it).
    pub fn view_of(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.nine((index % self.cols, index / self.cols))
    }

    fn idx(&self, (c, r): (usize, usize)) -> usize {
        r * self.cols + c
    }

    /// The nine cells (fewer at the edges) around a cell.
    fn nine(&self, (c, r): (usize, usize)) -> impl Iterator<Item = usize> + '_ {
        let cs = c.saturating_sub(1)..=(c + 1).min(self.cols - 1);
        let rs = r.saturating_sub(1)..=(r + 1).min(self.rows - 1);
        rs.flat_map(move |r| cs.clone().map(move |c| r * self.cols + c))
    }

    /// Puts an entity at (x, z).
    pub fn insert(&mut self, id: EntityId, x: f32, z: f32) {
        let i = self.idx(self.cell_of(x, z));
        self.cells[i].insert(id);
    }

    /// Takes an entity away from (x, z).
    pub fn remove(&mut self, id: EntityId, x: f32, z: f32) {
        let i = self.idx(self.cell_of(x, z));
        self.cells[i].remove(&id);
    }

    /// Everything in view of (x, z), the entity there included.
    pub fn around(&self, x: f32, z: f32) -> impl Iterator<Item = EntityId> + '_ {
        self.nine(self.cell_of(x, z)).flat_map(move |i| self.cells[i].iter().copied())
    }

    /// Moves an entity; when it changes cell, who entered and who left its view (itself
    /// excluded). Sorted, so callers and tests see a stable order.
    pub fn moved(&mut self, id: EntityId, from: (f32, f32), to: (f32, f32)) -> ViewChange {
        let (a, b) = (self.cell_of(from.0, from.1), self.cell_of(to.0, to.1));
        if a == b {
            return ViewChange::default();
        }
        let (ia, ib) = (self.idx(a), self.idx(b));
        self.cells[ia].remove(&id);
        self.cells[ib].insert(id);
        let old: HashSet<usize> = self.nine(a).collect();
        let new: HashSet<usize> = self.nine(b).collect();
        let mut entered: Vec<EntityId> =
            new.difference(&old).flat_map(|&i| self.cells[i].iter().copied()).filter(|&e| e != id).collect();
        let mut left: Vec<EntityId> =
            old.difference(&new).flat_map(|&i| self.cells[i].iter().copied()).filter(|&e| e != id).collect();
        entered.sort_unstable();
        left.sort_unstable();
        ViewChange { entered, left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid::new(Bounds { min_x: 0.0, min_z: 0.0, max_x: 100.0, max_z: 100.0 }, 10.0)
    }

    fn seen(g: &Grid, x: f32, z: f32) -> Vec<EntityId> {
        let mut v: Vec<EntityId> = g.around(x, z).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn nine_cells_are_in_view() {
        let mut g = grid();
        g.insert(1, 55.0, 55.0);
        g.insert(2, 45.0, 45.0); // the diagonal neighbour cell
        g.insert(3, 75.0, 55.0); // two cells away
        assert_eq!(seen(&g, 55.0, 55.0), [1, 2]);
        assert_eq!(seen(&g, 0.0, 0.0), Vec::<EntityId>::new(), "a corner sees four cells");
        g.remove(2, 45.0, 45.0);
        assert_eq!(seen(&g, 55.0, 55.0), [1]);
    }

    #[test]
    fn crossing_cells_reports_who_entered_and_left() {
        let mut g = grid();
        g.insert(1, 15.0, 15.0);
        g.insert(2, 5.0, 5.0); // behind the mover
        g.insert(3, 35.0, 15.0); // ahead
        let c = g.moved(1, (15.0, 15.0), (25.0, 15.0));
        assert_eq!(c, ViewChange { entered: vec![3], left: vec![2] });
        assert_eq!(g.moved(1, (25.0, 15.0), (26.0, 16.0)), ViewChange::default(), "same cell: nothing");
        assert_eq!(seen(&g, 25.0, 15.0), [1, 3]);
    }

    #[test]
    fn go_game_cuts_its_scenes_into_ten_by_twenty() {
        // go-game's scene 1000: x 85..410 in 10 columns, z 75..400 in 20 rows.
        let mut g = Grid::with_cells(Bounds { min_x: 85.0, min_z: 75.0, max_x: 410.0, max_z: 400.0 }, 10, 20);
        assert_eq!(g.size(), (10, 20));
        assert_eq!(g.cell_of(85.0, 75.0), (0, 0));
        assert_eq!(g.cell_of(410.0, 400.0), (9, 19), "the far edge is in the last cell");
        assert_eq!(g.cell_of(120.0, 92.0), (1, 1), "cells of 32.5 by 16.25");
        g.insert(1, 100.0, 100.0);
        g.insert(2, 100.0, 125.0); // two rows away (16.25 deep): out of view
        g.insert(3, 140.0, 110.0); // the next column and row
        let mut seen: Vec<EntityId> = g.around(100.0, 100.0).collect();
        seen.sort_unstable();
        assert_eq!(seen, [1, 3]);
        let bad = Grid::with_cells(Bounds { min_x: 0.0, min_z: 0.0, max_x: 0.0, max_z: 0.0 }, 0, 100_000);
        assert_eq!(bad.size(), (1, 4096));
        assert_eq!(bad.cell_of(5.0, 5.0), (0, 0));
    }

    #[test]
    fn bad_positions_are_clamped_not_panics() {
        let mut g = grid();
        for (x, z) in [(-5.0, -5.0), (1e9, 1e9), (f32::NAN, 3.0), (f32::INFINITY, f32::NEG_INFINITY)] {
            g.insert(9, x, z);
            g.remove(9, x, z);
        }
        let tiny = Grid::new(Bounds { min_x: 0.0, min_z: 0.0, max_x: 0.0, max_z: 0.0 }, 0.0);
        assert_eq!(tiny.cell_of(5.0, 5.0), (0, 0));
    }
}
