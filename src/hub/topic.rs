use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// What a WebSocket client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Build log lines and status changes of one deployment (persisted, replayable).
    Deployment(Uuid),
    /// Runtime output of a project's live container (followed while subscribed, not persisted).
    ProjectLogs(Uuid),
    /// Resource samples of a project's running container, as the collector takes them (not
    /// persisted here: `GET /projects/{id}/metrics` has the history).
    ProjectMetrics(Uuid),
    /// Status changes of a project's deployments and container (persisted).
    Project(Uuid),
    /// Notifications for one user (persisted).
    User(Uuid),
    /// Output and end of a run: a one-off command or a job's execution (persisted).
    Run(Uuid),
    /// Health of the installation, for admins: queue length, Docker, disk (not persisted).
    System,
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Deployment(id) => write!(f, "deployment:{id}"),
            Topic::ProjectLogs(id) => write!(f, "project:{id}:logs"),
            Topic::ProjectMetrics(id) => write!(f, "project:{id}:metrics"),
            Topic::Project(id) => write!(f, "project:{id}"),
            Topic::User(id) => write!(f, "user:{id}"),
            Topic::Run(id) => write!(f, "run:{id}"),
            Topic::System => f.write_str("system"),
        }
    }
}

impl FromStr for Topic {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |id: &str| Uuid::parse_str(id).map_err(|_| format!("'{id}' is not an id"));
        match s.split(':').collect::<Vec<_>>().as_slice() {
            ["deployment", id] => Ok(Topic::Deployment(parse(id)?)),
            ["project", id, "logs"] => Ok(Topic::ProjectLogs(parse(id)?)),
            ["project", id, "metrics"] => Ok(Topic::ProjectMetrics(parse(id)?)),
            ["project", id] => Ok(Topic::Project(parse(id)?)),
            ["user", id] => Ok(Topic::User(parse(id)?)),
            ["run", id] => Ok(Topic::Run(parse(id)?)),
            ["system"] => Ok(Topic::System),
            _ => Err(format!(
                "unknown topic '{s}' (known: deployment:<id>, project:<id>, project:<id>:logs, project:<id>:metrics, user:<id>, run:<id>, system)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let id = Uuid::now_v7();
        for topic in [
            Topic::Deployment(id),
            Topic::ProjectLogs(id),
            Topic::ProjectMetrics(id),
            Topic::Project(id),
            Topic::User(id),
            Topic::Run(id),
            Topic::System,
        ] {
            assert_eq!(topic.to_string().parse::<Topic>().unwrap(), topic);
        }
        assert!("deployment:nope".parse::<Topic>().is_err());
        assert!("system:x".parse::<Topic>().is_err());
        assert!("user:1:x".parse::<Topic>().is_err());
    }
}
