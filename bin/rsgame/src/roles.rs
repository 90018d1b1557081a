//! The roles a process can take. The monolith takes them all; the distributed deployment
//! runs one or a few per process (`rsgame serve --role usercenter-rpc,basic-rpc`).

use std::fmt;
use std::str::FromStr;

/// One role. Each names a service and a face of it: `api` (REST), `rpc` (gRPC), or the game
/// node (gate + world).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// usercenter's REST API.
    UsercenterApi,
    /// usercenter's gRPC service.
    UsercenterRpc,
    /// basic's REST API (captcha, codes, files).
    BasicApi,
    /// basic's gRPC service.
    BasicRpc,
    /// game's REST API (economy, shop, ranks…).
    GameApi,
    /// A game node: the gate (TCP, WebSocket, KCP) and the real-time world.
    GameNode,
    /// The operator console's API, on its own listener (`console.*`).
    Console,
}

impl Role {
    /// Every role, in start-up order.
    pub const ALL: [Role; 7] = [
        Role::UsercenterRpc,
        Role::UsercenterApi,
        Role::BasicRpc,
        Role::BasicApi,
        Role::GameApi,
        Role::GameNode,
        Role::Console,
    ];

    /// The name used on the command line and in logs.
    pub const fn name(self) -> &'static str {
        match self {
            Role::UsercenterApi => "usercenter-api",
            Role::UsercenterRpc => "usercenter-rpc",
            Role::BasicApi => "basic-api",
            Role::BasicRpc => "basic-rpc",
            Role::GameApi => "game-api",
            Role::GameNode => "game-node",
            Role::Console => "console",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Role::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            format!("unknown role {s:?}; roles are: {}, or `all`", names.join(", "))
        })
    }
}

/// Parses `--role` values: comma-separated role names, or `all` (the monolith). Duplicates
/// are folded; the result is in start-up order.
pub fn parse_roles(list: &[String]) -> Result<Vec<Role>, String> {
    let mut roles = Vec::new();
    for item in list.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            roles.extend(Role::ALL);
        } else {
            roles.push(item.parse()?);
        }
    }
    if roles.is_empty() {
        roles.extend(Role::ALL);
    }
    roles.sort_by_key(|r| Role::ALL.iter().position(|a| a == r));
    roles.dedup();
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_monolith() {
        assert_eq!(parse_roles(&[]).expect("ok"), Role::ALL);
        assert_eq!(parse_roles(&["all".into()]).expect("ok"), Role::ALL);
    }

    #[test]
    fn lists_are_split_ordered_and_deduplicated() {
        let r = parse_roles(&["game-node,usercenter-api".into(), "game-node".into()]).expect("ok");
        assert_eq!(r, [Role::UsercenterApi, Role::GameNode]);
    }

    #[test]
    fn unknown_role_names_the_valid_ones() {
        let e = parse_roles(&["usercenter-api,chat".into()]).expect_err("must fail");
        assert!(e.contains("\"chat\"") && e.contains("game-node"), "{e}");
    }
}
