//! `DeploymentStatus`: the lifecycle of a deployment as a type, with the moves it allows.
//! The database stores the `as_str` form; every status change goes through
//! `db::deployments::transition`, which refuses a move this table does not allow.

use super::text::text_enum;

text_enum! {
    /// Stored as its text (a stored value outside the set is a database error that names it).
    pub enum DeploymentStatus ("deployment status") {
        Queued = "queued",
        Fetching = "fetching",
        Building = "building",
        Starting = "starting",
        HealthChecking = "health_checking",
        Live = "live",
        Superseded = "superseded",
        Stopped = "stopped",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

use DeploymentStatus::*;

impl DeploymentStatus {
    /// The steps a worker moves a deployment through before it can go live.
    pub const IN_PROGRESS: [DeploymentStatus; 4] = [Fetching, Building, Starting, HealthChecking];
    /// Not yet live and not yet ended: what a cancel or a failure may end.
    pub const UNFINISHED: [DeploymentStatus; 5] =
        [Queued, Fetching, Building, Starting, HealthChecking];
    /// The deployment that serves the project (running or stopped by its owner).
    pub const CURRENT: [DeploymentStatus; 2] = [Live, Stopped];

    pub fn is_in_progress(self) -> bool {
        Self::IN_PROGRESS.contains(&self)
    }

    /// No move leads out of it.
    pub fn is_final(self) -> bool {
        matches!(self, Superseded | Failed | Cancelled)
    }

    /// Whether a deployment may move from `self` to `to`.
    pub fn can_move_to(self, to: DeploymentStatus) -> bool {
        match (self, to) {
            // Forward through the pipeline; a rollback skips fetch and build.
            (Queued, Fetching | Starting) => true,
            (Fetching, Building) | (Building, Starting) => true,
            (Starting, HealthChecking) | (HealthChecking, Live) => true,
            // Any step before live may fail or be cancelled.
            (Queued | Fetching | Building | Starting | HealthChecking, Failed | Cancelled) => true,
            // Runtime control, and the switch that replaces the serving deployment.
            (Live, Stopped) | (Stopped, Live) => true,
            (Live | Stopped, Superseded) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_api() {
        for &s in DeploymentStatus::ALL {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(HealthChecking.as_str(), "health_checking");
        assert_eq!(DeploymentStatus::parse("running"), None);
    }

    #[test]
    fn final_statuses_have_no_way_out_and_live_is_reached_only_after_the_health_gate() {
        for &from in DeploymentStatus::ALL {
            for &to in DeploymentStatus::ALL {
                if from.is_final() {
                    assert!(!from.can_move_to(to), "{from} -> {to}");
                }
                if to == Live {
                    assert_eq!(
                        from.can_move_to(to),
                        matches!(from, HealthChecking | Stopped)
                    );
                }
            }
        }
        assert!(Queued.can_move_to(Starting), "rollback skips the build");
        assert!(!Building.can_move_to(Live));
        assert!(
            !Live.can_move_to(Failed),
            "a live deployment is never failed"
        );
        assert!(!Superseded.can_move_to(Live));
    }
}
