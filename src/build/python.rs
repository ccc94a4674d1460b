//! Python apps: pip (`requirements.txt`, or a `pyproject.toml` installed as a package), Poetry
//! (`poetry.lock` or `[tool.poetry]`) and uv (`uv.lock`), into a virtual environment the build
//! user owns; Django (`manage.py`), Flask and FastAPI, served by gunicorn or uvicorn when the
//! app depends on them.

use super::dockerfile::{HOME, Output, Recipe, Start};
use super::systems::{Input, first_pin, tool_versions, version_file};
use super::version::Pin;
use super::{Detected, PlanError, decision, image};

/// The names the dependency files mention (lowercased words of `[a-z0-9_.-]`).
fn dependencies(texts: &[&str]) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for text in texts {
        for word in text
            .to_ascii_lowercase()
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            if !word.is_empty() {
                names.insert(word.to_string());
            }
        }
    }
    names
}

/// `requires-python` of `[project]`, or Poetry's `python` dependency.
fn pyproject_pin(text: &str) -> Option<Pin> {
    let table: toml::Table = toml::from_str(text).ok()?;
    if let Some(v) = table
        .get("project")
        .and_then(|p| p.get("requires-python"))
        .and_then(|v| v.as_str())
    {
        return Some(Pin::new(v, "pyproject.toml (project.requires-python)"));
    }
    table
        .get("tool")?
        .get("poetry")?
        .get("dependencies")?
        .get("python")?
        .as_str()
        .map(|v| Pin::new(v, "pyproject.toml (tool.poetry.dependencies.python)"))
}

/// The module of the first of `files` that creates an app with `marker` (e.g. `Flask(`), and
/// the app's variable name.
fn app_module(
    input: &Input,
    files: &[&str],
    marker: &str,
) -> Result<Option<(String, String, String)>, PlanError> {
    for file in files {
        let Some(text) = input.tree.read(file)? else {
            continue;
        };
        for line in text.lines() {
            let Some((left, right)) = line.split_once('=') else {
                continue;
            };
            let name = left.trim();
            if right.trim_start().starts_with(marker)
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                let module = file.trim_end_matches(".py").replace('/', ".");
                return Ok(Some((module, name.to_string(), file.to_string())));
            }
        }
    }
    Ok(None)
}

pub fn detect(input: &Input) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let requirements = tree.read("requirements.txt")?;
    let pyproject = tree.read("pyproject.toml")?;
    let pin = first_pin(vec![
        version_file(tree, ".python-version")?,
        tool_versions(tree, &["python"])?,
        pyproject.as_deref().and_then(pyproject_pin),
    ]);
    let version = input.version("python", pin, false)?;
    let mut decisions = Vec::new();
    let uv = tree.is_file("uv.lock")?;
    let poetry = tree.is_file("poetry.lock")?
        || pyproject
            .as_deref()
            .is_some_and(|t| t.contains("[tool.poetry]"));
    let (manager, manifests, install, after_source): (&str, Vec<String>, String, bool) = if uv {
        decisions.push(decision("uv", "uv.lock"));
        (
            "uv",
            input.existing(&["pyproject.toml", "uv.lock"])?,
            "pip install uv && uv sync --frozen --no-dev --no-install-project".into(),
            false,
        )
    } else if poetry {
        decisions.push(decision(
            "poetry",
            "poetry.lock or [tool.poetry] in pyproject.toml",
        ));
        (
            "poetry",
            input.existing(&["pyproject.toml", "poetry.lock"])?,
            "pip install poetry && poetry install --no-root --only main".into(),
            false,
        )
    } else if requirements.is_some() {
        (
            "pip",
            vec!["requirements.txt".into()],
            "pip install -r requirements.txt".into(),
            false,
        )
    } else {
        decisions.push(decision(
            "install the app as a package (no lockfile or requirements.txt)",
            "pyproject.toml or setup.py",
        ));
        ("pip", Vec::new(), "pip install .".into(), true)
    };
    if uv && tree.is_file("requirements.txt")? {
        decisions.push(decision(
            "requirements.txt is not used",
            "uv.lock wins over requirements.txt",
        ));
    }
    let deps = dependencies(&[
        requirements.as_deref().unwrap_or(""),
        pyproject.as_deref().unwrap_or(""),
    ]);
    let has = |name: &str| deps.contains(name);
    let candidates = [
        "app.py",
        "main.py",
        "wsgi.py",
        "application.py",
        "server.py",
        "src/app.py",
        "src/main.py",
    ];
    let (framework, start) = if tree.is_file("manage.py")? {
        let project = tree
            .list("")
            .into_iter()
            .filter(|(_, kind)| *kind == crate::checkout::Kind::Dir)
            .map(|(name, _)| name)
            .find(|name| tree.is_file(&format!("{name}/wsgi.py")).unwrap_or(false));
        let start = match (project, has("gunicorn")) {
            (Some(project), true) => {
                decisions.push(decision(
                    format!("serve {project}.wsgi with gunicorn"),
                    format!("{project}/wsgi.py"),
                ));
                format!("gunicorn {project}.wsgi --bind 0.0.0.0:$PORT")
            }
            _ => {
                decisions.push(decision(
                    "Django's own server (add gunicorn to the dependencies for production)",
                    "manage.py",
                ));
                "python manage.py runserver 0.0.0.0:$PORT --noreload".to_string()
            }
        };
        (Some("django"), Start::Shell(start))
    } else if has("fastapi") {
        let (module, app, file) =
            app_module(input, &candidates, "FastAPI(")?.unwrap_or_else(|| {
                (
                    "main".into(),
                    "app".into(),
                    "the convention main:app".into(),
                )
            });
        decisions.push(decision(
            format!("serve {module}:{app} with uvicorn"),
            format!("{file}: {app} = FastAPI("),
        ));
        (
            Some("fastapi"),
            Start::Shell(format!(
                "uvicorn {module}:{app} --host 0.0.0.0 --port $PORT"
            )),
        )
    } else if has("flask") {
        let (module, app, file) = app_module(input, &candidates, "Flask(")?
            .unwrap_or_else(|| ("app".into(), "app".into(), "the convention app:app".into()));
        let start = if has("gunicorn") {
            format!("gunicorn {module}:{app} --bind 0.0.0.0:$PORT")
        } else {
            format!("flask --app {module}:{app} run --host 0.0.0.0 --port $PORT")
        };
        decisions.push(decision(
            format!("serve {module}:{app}"),
            format!("{file}: {app} = Flask("),
        ));
        (Some("flask"), Start::Shell(start))
    } else if let Some(file) = tree.first_file(&["main.py", "app.py", "server.py"])? {
        decisions.push(decision(format!("run {file}"), file));
        (None, Start::Shell(format!("python {file}")))
    } else {
        let start = input.missing_start(
            "a Python app, but no manage.py, Flask or FastAPI app, main.py, app.py or server.py: \
             add a Procfile or set start_command"
                .into(),
        )?;
        (None, start)
    };
    let venv = format!("{HOME}/venv");
    Ok(Detected {
        language: "python",
        framework: framework.map(str::to_string),
        package_manager: Some(manager.into()),
        recipe: Recipe {
            image: image(&input.config.images.python, &version.version),
            root_setup: Vec::new(),
            env: vec![
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("PIP_NO_CACHE_DIR".into(), "1".into()),
                ("VIRTUAL_ENV".into(), venv.clone()),
                ("UV_PROJECT_ENVIRONMENT".into(), venv.clone()),
                (
                    "PATH".into(),
                    format!("{venv}/bin:/usr/local/bin:/usr/bin:/bin"),
                ),
            ],
            manifests,
            install: Some(format!("python -m venv {venv} && {install}")),
            install_after_source: after_source,
            build: None,
            run_env: Vec::new(),
            port: 8000,
            output: Output::InPlace(start),
        },
        versions: vec![version],
        decisions,
    })
}
