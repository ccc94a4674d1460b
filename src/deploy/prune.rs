//! Image pruning as a pure decision: given a project's deployments that still record an image
//! (newest first), which images to remove and which deployments to stop offering for rollback.
//! The images of the newest `keep` deployments stay, and so does any image a deployment that is
//! serving, stopped or not yet finished uses (rollbacks share their source's image).

use std::collections::HashSet;

use uuid::Uuid;

use super::{Deployer, DeploymentStatus};
use crate::db::deployments as deps;

/// One deployment that records an image.
#[derive(Debug, Clone)]
pub struct WithImage {
    pub id: Uuid,
    pub image: String,
    pub status: DeploymentStatus,
}

/// What to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Images to remove from Docker.
    pub remove: Vec<String>,
    /// Deployments whose image is no longer offered for rollback.
    pub forget: Vec<Uuid>,
}

fn pinned(status: DeploymentStatus) -> bool {
    matches!(status, DeploymentStatus::Live | DeploymentStatus::Stopped)
        || DeploymentStatus::UNFINISHED.contains(&status)
}

/// `newest_first`: the project's deployments with an image, newest first.
pub fn plan(newest_first: &[WithImage], keep: usize) -> Plan {
    let kept = |i: usize, d: &WithImage| i < keep || pinned(d.status);
    let in_use: HashSet<&str> = newest_first
        .iter()
        .enumerate()
        .filter(|(i, d)| kept(*i, d))
        .map(|(_, d)| d.image.as_str())
        .collect();
    let mut plan = Plan::default();
    for (i, d) in newest_first.iter().enumerate() {
        if kept(i, d) {
            continue;
        }
        if !in_use.contains(d.image.as_str()) && !plan.remove.contains(&d.image) {
            plan.remove.push(d.image.clone());
        }
        plan.forget.push(d.id);
    }
    plan
}

/// Applies `prune::plan` to a project: removes images beyond the kept window (from the
/// registry too, under Swarm) and stops offering them for rollback.
pub async fn apply(d: &Deployer, project_id: Uuid) {
    let Ok(with_images) = deps::with_images(&d.db, project_id).await else {
        return;
    };
    let list: Vec<WithImage> = with_images
        .iter()
        .filter_map(|dep| {
            Some(WithImage {
                id: dep.id,
                image: dep.image.clone()?,
                status: dep.state(),
            })
        })
        .collect();
    let plan = plan(&list, d.config.deploy.keep_images);
    let mut kept = Vec::new();
    let registry = match plan.remove.is_empty() {
        true => None,
        false => registry_of(d).await,
    };
    for image in &plan.remove {
        // A Swarm image lives in the registry every node pulls from: it is kept (and
        // offered for rollback) as long as the registry keeps it. The local copy goes too, or
        // with the sweep once nothing records it.
        let in_registry = d
            .config
            .image_registry()
            .is_some_and(|r| image.starts_with(&format!("{r}/")));
        if in_registry {
            let deleted = match &registry {
                Some(registry) => registry.delete(image).await,
                None => Err(anyhow::anyhow!("no registry client")),
            };
            match deleted {
                Ok(()) => {
                    let _ = d.docker.remove_image(image).await;
                }
                Err(e) => {
                    tracing::warn!(image, error = %format!("{e:#}"), "cannot delete the image from the registry; kept");
                    kept.push(image.as_str());
                }
            }
            continue;
        }
        if let Err(e) = d.docker.remove_image(image).await {
            tracing::debug!(image, error = %e, "image still in use; kept");
            kept.push(image.as_str());
        }
    }
    for id in plan.forget {
        let still_there = list
            .iter()
            .any(|w| w.id == id && kept.contains(&w.image.as_str()));
        if !still_there {
            let _ = deps::clear_image(&d.db, id).await;
        }
    }
}

/// The registry client for a prune (none without `registry.url`; an error is logged).
async fn registry_of(d: &Deployer) -> Option<super::registry::Registry> {
    match super::registry::Registry::of(&d.config, &d.db, &d.sealer).await {
        Ok(registry) => registry,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot reach the registry to prune it");
            None
        }
    }
}

/// Deletes every image of a project from the registry (the project is being deleted).
pub async fn purge_registry(d: &Deployer, project_id: Uuid) {
    let Ok(with_images) = deps::with_images(&d.db, project_id).await else {
        return;
    };
    let mut images: Vec<String> = with_images
        .into_iter()
        .filter_map(|dep| dep.image)
        .collect();
    images.sort();
    images.dedup();
    let Some(registry) = registry_of(d).await else {
        return;
    };
    for image in images.iter().filter(|i| registry.holds(i)) {
        if let Err(e) = registry.delete(image).await {
            tracing::warn!(image, error = %format!("{e:#}"), "cannot delete the image from the registry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentStatus::*;

    fn d(n: u128, image: &str, status: DeploymentStatus) -> WithImage {
        WithImage {
            id: Uuid::from_u128(n),
            image: image.into(),
            status,
        }
    }

    #[test]
    fn keeps_the_newest_and_removes_the_rest() {
        let list = [
            d(5, "i5", Live),
            d(4, "i4", Superseded),
            d(3, "i3", Superseded),
            d(2, "i2", Failed),
            d(1, "i1", Superseded),
        ];
        let plan = plan(&list, 2);
        assert_eq!(plan.remove, ["i3", "i2", "i1"]);
        assert_eq!(plan.forget, [3, 2, 1].map(Uuid::from_u128));
    }

    #[test]
    fn a_rollback_keeps_its_source_image_and_the_live_one_is_never_pruned() {
        // 4 is a rollback to 1's image and is live; 1 is beyond the window.
        let list = [
            d(4, "i1", Live),
            d(3, "i3", Superseded),
            d(2, "i2", Superseded),
            d(1, "i1", Superseded),
        ];
        let plan = plan(&list, 2);
        assert_eq!(plan.remove, ["i2"]);
        assert_eq!(
            plan.forget,
            [2, 1].map(Uuid::from_u128),
            "1 no longer offered"
        );
        // An old live (stopped) deployment beyond the window keeps its image.
        let list = [d(3, "i3", Failed), d(2, "i2", Failed), d(1, "i1", Stopped)];
        assert_eq!(plan_of(&list, 1), (vec!["i2".to_string()], 1));
        // A queued rollback pins the image it will start.
        let list = [d(3, "i1", Queued), d(2, "i2", Live), d(1, "i1", Superseded)];
        assert_eq!(plan_of(&list, 1), (vec![], 1));
    }

    fn plan_of(list: &[WithImage], keep: usize) -> (Vec<String>, usize) {
        let p = plan(list, keep);
        (p.remove, p.forget.len())
    }

    #[test]
    fn nothing_to_do_within_the_window() {
        let list = [d(2, "i2", Live), d(1, "i1", Superseded)];
        assert_eq!(plan(&list, 5), Plan::default());
        assert_eq!(plan(&[], 1), Plan::default());
    }
}
