//! Authentication and authorisation, as plain types: tokens, roles and
//! their permissions, the workspace secret, revocations, hybrid locality
//! and the rate-limit ledger. The HTTP edge (`http::auth`) and the CLI
//! drive these; nothing here knows about warp.

pub mod ledger;
pub mod locality;
pub mod secret;
pub mod token;

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

pub use token::{Claims, TokenError};

/// A role a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Agent,
    Readonly,
}

impl Role {
    /// Every role, for tests and validation messages.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Agent, Role::Readonly];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Agent => "agent",
            Role::Readonly => "readonly",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role → permission matrix.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(
                p,
                Remember
                    | Recall
                    | Modify
                    | Forget
                    | Recover
                    | Documents
                    | Connectors
                    | Diagnostics
                    | Analytics
            ),
            Role::Agent => matches!(p, Remember | Recall | Modify | Forget | Recover | Documents),
            Role::Readonly => matches!(p, Recall),
        }
    }
}

/// What a route needs the caller to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Remember,
    Recall,
    Modify,
    Forget,
    Recover,
    Documents,
    Connectors,
    Diagnostics,
    Analytics,
    Admin,
}

impl Permission {
    /// Every permission, in the order the API lists them.
    pub const ALL: [Permission; 10] = [
        Permission::Remember,
        Permission::Recall,
        Permission::Modify,
        Permission::Forget,
        Permission::Recover,
        Permission::Documents,
        Permission::Connectors,
        Permission::Diagnostics,
        Permission::Analytics,
        Permission::Admin,
    ];

    /// The wire name used in permission errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Remember => "remember",
            Permission::Recall => "recall",
            Permission::Modify => "modify",
            Permission::Forget => "forget",
            Permission::Recover => "recover",
            Permission::Documents => "documents",
            Permission::Connectors => "connectors",
            Permission::Diagnostics => "diagnostics",
            Permission::Analytics => "analytics",
            Permission::Admin => "admin",
        }
    }
}

/// Revoked token ids and subjects, mirrored from the `revoked_tokens`
/// table (the store writer persists; this answers every request).
#[derive(Debug, Default)]
pub struct Revocations {
    jtis: RwLock<std::collections::HashSet<String>>,
    /// Subject → Unix second of revocation: tokens of that subject issued
    /// at or before it are void; tokens minted later are not.
    subs: RwLock<HashMap<String, i64>>,
}

impl Revocations {
    /// Record a revoked token id.
    pub fn revoke_jti(&self, jti: &str) {
        if let Ok(mut s) = self.jtis.write() {
            s.insert(jti.to_string());
        }
    }

    /// Record a revoked subject as of `at`.
    pub fn revoke_sub(&self, sub: &str, at: i64) {
        if let Ok(mut s) = self.subs.write() {
            let e = s.entry(sub.to_string()).or_insert(at);
            *e = (*e).max(at);
        }
    }

    /// Whether these claims were revoked.
    pub fn is_revoked(&self, c: &Claims) -> bool {
        let jti = c
            .jti
            .as_ref()
            .is_some_and(|j| self.jtis.read().map(|s| s.contains(j)).unwrap_or(true));
        let sub = self
            .subs
            .read()
            .map(|s| s.get(&c.sub).is_some_and(|at| c.iat <= *at))
            .unwrap_or(true);
        jti || sub
    }

    /// Load the persisted list.
    pub fn load(conn: &rusqlite::Connection) -> Result<Self, crate::store::StoreError> {
        let r = Revocations::default();
        let mut stmt = conn.prepare("SELECT kind, value, revoked_at FROM revoked_tokens")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (kind, value, at) = row?;
            match kind.as_str() {
                "jti" => r.revoke_jti(&value),
                _ => r.revoke_sub(&value, at),
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_matrix_matches_the_contract() {
        use Permission::*;
        let all = [
            Remember,
            Recall,
            Modify,
            Forget,
            Recover,
            Documents,
            Connectors,
            Diagnostics,
            Analytics,
            Admin,
        ];
        assert!(all.iter().all(|p| Role::Admin.allows(*p)));
        let op: Vec<_> = all.iter().filter(|p| Role::Operator.allows(**p)).collect();
        assert_eq!(op.len(), 9);
        assert!(!Role::Operator.allows(Admin));
        let ag: Vec<_> = all
            .iter()
            .filter(|p| Role::Agent.allows(**p))
            .copied()
            .collect();
        assert_eq!(
            ag,
            vec![Remember, Recall, Modify, Forget, Recover, Documents]
        );
        let ro: Vec<_> = all
            .iter()
            .filter(|p| Role::Readonly.allows(**p))
            .copied()
            .collect();
        assert_eq!(ro, vec![Recall]);
    }

    #[test]
    fn revoking_a_subject_voids_older_tokens_only() {
        let r = Revocations::default();
        let c = |iat, jti: Option<&str>| Claims {
            sub: "bob".into(),
            role: Role::Agent,
            scope: Default::default(),
            iat,
            exp: iat + 100,
            jti: jti.map(str::to_string),
        };
        r.revoke_sub("bob", 100);
        assert!(r.is_revoked(&c(50, None)));
        assert!(r.is_revoked(&c(100, None)));
        assert!(!r.is_revoked(&c(101, None)));
        r.revoke_jti("x");
        assert!(r.is_revoked(&c(500, Some("x"))));
        assert!(!r.is_revoked(&c(500, Some("y"))));
    }
}
