//! States of what shard tracks at its edges: custom domains and their certificates,
//! notification deliveries, and CLI sign-ins waiting for approval.

use super::text::text_enum;

text_enum! {
    /// Whether a custom domain's DNS has been shown to point at shard.
    pub enum DomainState ("domain state") {
        Pending = "pending",
        /// Routed: its CNAME or TXT record checked out.
        Verified = "verified",
        Failed = "failed",
    }
}

text_enum! {
    /// A custom domain's certificate.
    pub enum CertState ("certificate state") {
        /// Not asked for yet (the domain is not verified, or no ACME directory is set).
        Absent = "none",
        Pending = "pending",
        Issued = "issued",
        Failed = "failed",
        /// Served from a certificate file the admin configured, not from ACME.
        File = "file",
    }
}

text_enum! {
    /// Where a notification channel delivers.
    pub enum ChannelKind ("channel kind") {
        /// JSON to a URL, signed with the channel's secret.
        Webhook = "webhook",
        Slack = "slack",
        Discord = "discord",
        Email = "email",
    }
}

text_enum! {
    /// One notification delivery to a channel.
    pub enum DeliveryState ("delivery state") {
        /// Not yet sent, or to be retried.
        Pending = "pending",
        Delivered = "delivered",
        /// Given up after its last attempt.
        Failed = "failed",
    }
}

text_enum! {
    /// What became of a GitHub webhook delivery.
    pub enum WebhookOutcome ("webhook outcome") {
        /// Recorded, not yet handled.
        Received = "received",
        /// Already received once (not recorded again).
        Duplicate = "duplicate",
        /// GitHub's ping, answered.
        Pong = "pong",
        /// Nothing to do (another branch, a deleted branch, another event).
        Ignored = "ignored",
        /// A deployment was queued.
        Deployed = "deployed",
    }
}

text_enum! {
    /// A `shard login` request, as its approval page moves it.
    pub enum CliLoginState ("CLI login state") {
        Waiting = "waiting",
        Approved = "approved",
        Denied = "denied",
    }
}
