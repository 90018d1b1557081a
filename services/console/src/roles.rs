//! Operator roles and what each may do: one table, checked by every route.
//!
//! | permission | viewer | gm | admin |
//! |---|---|---|---|
//! | `View`: dashboards, players, ledgers, the audit log | ✓ | ✓ | ✓ |
//! | `Moderate`: ban, unban, kick, mute, remove chat lines, mail, close a room | | ✓ | ✓ |
//! | `Grant`: give or take coins and goods | | ✓ | ✓ |
//! | `Operators`: create operators, change roles, disable | | | ✓ |
//! | `Data`: game data, notices, draining servers | | | ✓ |

use serde::{Deserialize, Serialize};

/// An operator's role (stored as 1, 2, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Looks, changes nothing.
    Viewer,
    /// A game master: acts on players.
    Gm,
    /// Everything, operators and game data included.
    Admin,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read anything.
    View,
    /// Act on a player's account: ban, kick, mute, mail, password reset.
    Moderate,
    /// Move coins and goods.
    Grant,
    /// Manage operators.
    Operators,
    /// Change game data, notices, servers.
    Data,
}

impl Role {
    /// Whether this role holds `p`.
    pub fn may(self, p: Permission) -> bool {
        match p {
            Permission::View => true,
            Permission::Moderate | Permission::Grant => self >= Role::Gm,
            Permission::Operators | Permission::Data => self == Role::Admin,
        }
    }

    /// The stored number.
    pub fn code(self) -> i64 {
        match self {
            Role::Viewer => 1,
            Role::Gm => 2,
            Role::Admin => 3,
        }
    }

    /// From the stored number (an unknown one is the least: a viewer).
    pub fn from_code(n: i64) -> Role {
        match n {
            3 => Role::Admin,
            2 => Role::Gm,
            _ => Role::Viewer,
        }
    }

    /// From its name (`viewer`, `gm`, `admin`).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "gm" => Some(Role::Gm),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Gm => "gm",
            Role::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_table() {
        use Permission::*;
        let may = |r: Role| [View, Moderate, Grant, Operators, Data].map(|p| r.may(p));
        assert_eq!(may(Role::Viewer), [true, false, false, false, false]);
        assert_eq!(may(Role::Gm), [true, true, true, false, false]);
        assert_eq!(may(Role::Admin), [true, true, true, true, true]);
        for r in [Role::Viewer, Role::Gm, Role::Admin] {
            assert_eq!(Role::from_code(r.code()), r);
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
