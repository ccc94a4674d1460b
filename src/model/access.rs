//! Who may do what: a member's role in a team, an instance user's role, an API token's scope.

use super::text::text_enum;

text_enum! {
    /// A member's role in a team, weakest first.
    #[derive(PartialOrd, Ord)]
    pub enum Role ("team role") {
        Viewer = "viewer",
        Member = "member",
        Admin = "admin",
        Owner = "owner",
    }
}

text_enum! {
    /// What an API token may do at most, narrowest first.
    #[derive(PartialOrd, Ord)]
    pub enum Scope ("token scope") {
        Read = "read",
        Deploy = "deploy",
        Admin = "admin",
    }
}

text_enum! {
    /// A user's role on the instance: admins manage users and instance settings.
    pub enum UserRole ("user role") {
        Member = "member",
        Admin = "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_weakest_first_and_read_back_from_their_text() {
        assert!(Role::Viewer < Role::Member && Role::Admin < Role::Owner);
        assert!(Scope::Read < Scope::Deploy && Scope::Deploy < Scope::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "unknown team role 'root'");
        assert_eq!(serde_json::to_string(&Scope::Deploy).unwrap(), "\"deploy\"");
    }
}
