//! A turn-based board game (go-game's "战旗" shape) as a custom room: tic-tac-toe. A client
//! sends 500 to sit down, then Place (501) in turn; both players get each Board (200500).
use rsgame_gate::room::{self, Room, RoomCtx};
use rsgame_gate::{Gate, Router};
use rsgame_kit::Error;
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Place {
    #[prost(uint32, tag = "1")]
    cell: u32,
}
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Board {
    #[prost(int64, repeated, tag = "1")]
    cells: Vec<i64>, // 0 empty, else the player id
    #[prost(int64, tag = "2")]
    turn: i64,
    #[prost(int64, tag = "3")]
    winner: i64,
}
#[derive(Default)]
struct TicTacToe(Board, Vec<i64>); // the board; the players in joining order, the first plays first
fn check(ok: bool, why: &str) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(Error::bad_param(why)) }
}
impl Room for TicTacToe {
    type Input = Place;
    type Join = ();
    fn join(&mut self, ctx: &mut RoomCtx, player: i64, (): ()) -> Result<(), Error> {
        check(self.1.len() < 2, "the board is full")?;
        self.1.push(player);
        self.0.cells.resize(9, 0);
        self.0.turn = self.1[0];
        ctx.broadcast(200_500, &self.0); // the newcomer included
        Ok(())
    }
    fn input(&mut self, ctx: &mut RoomCtx, player: i64, p: Place) -> Result<(), Error> {
        let (b, cell) = (&mut self.0, p.cell as usize);
        check(b.winner == 0 && self.1.len() == 2 && b.turn == player, "not your turn")?;
        check(cell < 9 && b.cells[cell] == 0, "pick an empty cell 0-8")?;
        b.cells[cell] = player;
        let won = |at: &dyn Fn(usize) -> usize| (0..3).all(|i| b.cells[at(i)] == player); // a row, column or diagonal
        let line = (0..3).any(|k| won(&|i| 3 * k + i) || won(&|i| 3 * i + k)) || won(&|i| 4 * i) || won(&|i| 2 + 2 * i);
        b.winner = if line { player } else { 0 };
        b.turn = if self.1[0] == player { self.1[1] } else { self.1[0] };
        ctx.broadcast(200_500, b);
        Ok(())
    }
}
rsgame_kit::config_root! {
    /// What this server reads: `gate.*` and `tls.*`, from defaults, the file `RSGAME_CONFIG`
    /// names, then `RSGAME_*` variables.
    struct Settings {
        gate: rsgame_gate::config::GateConfig,
        tls: rsgame_kit::config::TlsConfig,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg: Settings = rsgame_kit::config::from_process(None)?;
    cfg.gate.login_timeout_secs = 0; // players join a table, nothing logs them in
    let (board, mut routes) = (room::spawn(TicTacToe::default(), 64), Router::builder());
    board.join_on::<Place>(&mut routes, 500, room::by_session)?; // any connection may sit down
    board.input_on(&mut routes, 501, room::by_session)?;
    let shutdown = rsgame_kit::Shutdown::new();
    let gate = Gate::builder(&cfg.gate, &cfg.tls, routes.build()).start(&shutdown).await?;
    println!("tic-tac-toe on {}", gate.tcp_addr().map(|a| a.to_string()).unwrap_or_default());
    rsgame_kit::shutdown::signal().await;
    shutdown.trigger();
    Ok(())
}
