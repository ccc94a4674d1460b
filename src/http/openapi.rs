//! The OpenAPI document, generated from the handlers' annotations (utoipa).

use actix_web::web;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{
    audit, auth, backups, cli_logins, databases, deployments, domains, env, files, github,
    github_repos, health, instance_backups, metrics, nodes, notifications, plans, previews,
    projects, registry, tasks, teams, tokens, users, volume_backups, volumes, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "shard", description = "A self-hosted PaaS in one binary."),
    paths(
        health::health,
        auth::setup_admin, auth::login, auth::refresh, auth::logout, auth::me, auth::change_password,
        tokens::create_token, tokens::list_tokens, tokens::delete_token,
        teams::list_teams, teams::create_team, teams::get_team, teams::list_members, teams::rename_team,
        teams::delete_team, teams::set_role, teams::remove_member, teams::invite,
        teams::list_invitations, teams::withdraw_invitation, teams::accept_invitation,
        audit::list_audit,
        cli_logins::start, cli_logins::poll, cli_logins::show, cli_logins::approve, cli_logins::deny,
        users::list_users, users::create_user, users::update_user, users::delete_user,
        projects::list_projects, projects::create_project, projects::get_project,
        projects::update_project, projects::delete_project, plans::get_plan,
        volumes::list_volumes, volumes::add_volume, volumes::detach_volume, volumes::all_volumes,
        volumes::attach_volume, volumes::purge_volume,
        files::list_files, files::put_file, files::get_file, files::delete_file,
        databases::list_databases, databases::create_database, databases::get_database,
        databases::update_database, databases::delete_database, databases::start_database,
        databases::stop_database, databases::restart_database, databases::database_logs,
        databases::database_connection, databases::database_metrics, databases::attach_database, databases::detach_database,
        backups::list_destinations, backups::add_destination, backups::delete_destination,
        backups::list_backups, backups::take_backup, backups::verify_backup,
        backups::restore_backup, backups::get_schedule, backups::put_schedule, backups::delete_schedule,
        volume_backups::list_volume_backups, volume_backups::take_volume_backup,
        volume_backups::get_volume_schedule, volume_backups::put_volume_schedule,
        volume_backups::delete_volume_schedule,
        instance_backups::list_instance_backups, instance_backups::take_instance_backup,
        instance_backups::get_instance_schedule, instance_backups::put_instance_schedule,
        instance_backups::delete_instance_schedule,
        env::get_env, env::put_env,
        deployments::create_deployment, deployments::list_deployments, deployments::get_deployment,
        deployments::cancel_deployment, deployments::deployment_logs,
        deployments::start_project, deployments::stop_project, deployments::restart_project,
        domains::list_domains, domains::add_domain, domains::delete_domain, domains::verify_domain,
        webhooks::get_webhook, webhooks::rotate_webhook, webhooks::list_deliveries, webhooks::github,
        github::start, github::callback, github::account, github::disconnect, github::providers,
        github_repos::repos, github_repos::branches, github_repos::import,
        github_repos::unlink_project,
        metrics::project_metrics, metrics::overview, metrics::prometheus,
        notifications::list_channels, notifications::create_channel, notifications::delete_channel,
        notifications::test_channel, notifications::list_deliveries,
        nodes::list_nodes, nodes::update_node, nodes::join,
        registry::show, registry::set_credentials, registry::clear_credentials,
        tasks::start_run, tasks::list_runs, tasks::get_run, tasks::cancel_run, tasks::list_jobs,
        tasks::put_job, tasks::delete_job, tasks::run_job, tasks::job_runs,
        previews::list_previews, previews::approve_preview, previews::redeploy_preview,
        previews::delete_preview,
    ),
    modifiers(&BearerAuth, &Described)
)]
/// Routes on a project, deployment or team list, in their security requirement, the weakest
/// team role and the narrowest token scope that may call them (`role:member`, `scope:deploy`;
/// OpenAPI 3.1 allows role names there). The server enforces exactly these (`access`); the role
/// matrix test reads them from this document.
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or shard_ API token")
                    .build(),
            ),
        );
    }
}

/// OpenAPI requires a description on every response; one a route leaves out gets its status
/// code's reason phrase ("Not Found").
struct Described;

impl Modify for Described {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                            .and_then(|code| code.canonical_reason())
                            .unwrap_or("Response")
                            .to_string();
                    }
                }
            }
        }
    }
}

pub async fn document() -> web::Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    web::Json(doc)
}
