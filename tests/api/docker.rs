//! Needs a running Docker engine; fails (never skips) when there is none.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;

use crate::helpers::*;

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI is installed");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Builds a tiny image FROM scratch with the static busybox, labelled for `project`.
fn build_labelled_image(dir: &Path, tag: &str, project: &str, instance: &str) {
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("busybox-static is installed at /bin/busybox");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n",
    )
    .unwrap();
    let project_label = format!("shard.project={project}");
    let instance_label = format!("shard.instance={instance}");
    docker(&[
        "build",
        "-q",
        "-t",
        tag,
        "--label",
        "shard.managed=true",
        "--label",
        &instance_label,
        "--label",
        &project_label,
        dir.to_str().unwrap(),
    ]);
}

#[tokio::test]
async fn deleting_a_project_removes_its_containers_and_images() {
    let app = spawn_app().await;
    assert!(
        app.state.docker.version().await.is_ok(),
        "a Docker engine must be running for this test"
    );
    let admin = app.setup_admin().await;
    let project = app.create_project(&admin, "doomed").await;
    let id = project["id"].as_str().unwrap().to_string();
    let other = app.create_project(&admin, "survivor").await;
    let other_id = other["id"].as_str().unwrap().to_string();

    let context = tempfile::TempDir::new().unwrap();
    let tag = format!("shard-test/doomed:{}", &id[..8]);
    let instance = app.state.docker.instance().to_string();
    let instance_label = format!("shard.instance={instance}");
    build_labelled_image(context.path(), &tag, &id, &instance);
    let other_tag = format!("shard-test/survivor:{}", &other_id[..8]);
    build_labelled_image(context.path(), &other_tag, &other_id, &instance);
    let label = format!("shard.project={id}");
    let other_label = format!("shard.project={other_id}");
    docker(&[
        "run",
        "-d",
        "--init",
        "--label",
        "shard.managed=true",
        "--label",
        &instance_label,
        "--label",
        &label,
        &tag,
    ]);
    docker(&[
        "create",
        "--label",
        "shard.managed=true",
        "--label",
        &instance_label,
        "--label",
        &other_label,
        &other_tag,
    ]);
    let filter = format!("label={label}");
    assert!(!docker(&["ps", "-aq", "--filter", &filter]).is_empty());

    let deleted = app.delete_project(&admin, &id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &filter]),
        "",
        "containers left behind"
    );
    assert_eq!(
        docker(&["images", "-q", "--filter", &filter]),
        "",
        "images left behind"
    );

    // Another project's objects are untouched.
    let other_filter = format!("label={other_label}");
    assert!(!docker(&["ps", "-aq", "--filter", &other_filter]).is_empty());
    let deleted = app.delete_project(&admin, &other_id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(docker(&["ps", "-aq", "--filter", &other_filter]), "");
    assert_eq!(docker(&["images", "-q", "--filter", &other_filter]), "");
}
