//! What a deployment is made of and how it is recorded: its trigger, the project's build type,
//! the stream of each log line; and the queue's jobs: their kind and state.

use super::text::text_enum;

text_enum! {
    /// What queued a deployment.
    pub enum Trigger ("deploy trigger") {
        /// Someone asked (dashboard, CLI, API).
        Manual = "manual",
        /// A push to the project's branch (a GitHub webhook).
        Push = "push",
        /// A redeploy of an earlier deployment's image.
        Rollback = "rollback",
        /// The live deployment's image started afresh.
        Restart = "restart",
        /// The live deployment's commit built again: its container and image were not on
        /// this machine (after `shard restore` on a new one).
        Rebuild = "rebuild",
    }
}

text_enum! {
    /// How a project is built and served.
    pub enum BuildType ("build type") {
        /// Its Dockerfile is built and the image runs as the app.
        Dockerfile = "dockerfile",
        /// Its Dockerfile is built and a directory of the image is served as files.
        Static = "static",
        /// Its Dockerfile if it has one, else the build plan's (`build::plan`): an app, or a
        /// site shard serves.
        Auto = "auto",
    }
}

text_enum! {
    /// Where a deployment log line came from.
    pub enum LogStream ("log stream") {
        Stdout = "stdout",
        Stderr = "stderr",
        /// shard's own lines (steps, errors).
        System = "system",
        /// A status change, recorded in the log so a reader replays it in order.
        Status = "status",
    }
}

text_enum! {
    /// The state of a deployment's commit status on GitHub (GitHub's own words).
    pub enum CommitState ("commit state") {
        Pending = "pending",
        Success = "success",
        Failure = "failure",
        Error = "error",
    }
}

text_enum! {
    /// The kinds of work the queue runs.
    pub enum JobKind ("job kind") {
        /// Periodic housekeeping; reschedules itself.
        Maintenance = "maintenance",
        /// One deployment through the pipeline.
        Deploy = "deploy",
        /// One notification delivery attempt.
        Notify = "notify",
    }
}

text_enum! {
    /// Where a job stands in the queue.
    pub enum JobState ("job state") {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

text_enum! {
    /// Where a run (a one-off command or a job's execution) stands.
    pub enum RunState ("run state") {
        Running = "running",
        /// The command exited 0.
        Succeeded = "succeeded",
        /// It exited non-zero, timed out, could not start, or shard stopped while it ran.
        Failed = "failed",
    }
}

text_enum! {
    /// What started a run.
    pub enum RunTrigger ("run trigger") {
        /// `POST /projects/{id}/runs` (`shard run`).
        Command = "command",
        /// A job's schedule fired.
        Schedule = "schedule",
        /// "Run now" on a job.
        Manual = "manual",
        /// A terminal's fresh container (`exec?fresh=true`): no output is kept.
        Terminal = "terminal",
    }
}

text_enum! {
    /// Whether a job may start while its previous run still runs.
    pub enum Concurrency ("job concurrency") {
        /// A firing while a run is running is skipped (and "Run now" refused).
        Forbid = "forbid",
        Allow = "allow",
    }
}

text_enum! {
    /// Where a pull request's preview stands.
    pub enum PreviewState ("preview state") {
        /// A fork's head commit waits for a maintainer's approval; nothing is built.
        AwaitingApproval = "awaiting_approval",
        /// Its head commit is being deployed (or is live: see its deployment).
        Deploying = "deploying",
        Live = "live",
        Failed = "failed",
        /// The pull request closed, the preview expired or was evicted or deleted: nothing
        /// of it runs.
        Closed = "closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_reads_back_and_an_unknown_value_is_named() {
        for t in Trigger::ALL {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(*t));
        }
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            "docker".parse::<BuildType>().unwrap_err().to_string(),
            "unknown build type 'docker'"
        );
        assert_eq!(LogStream::Status.to_string(), "status");
    }
}
