//! Ruby (Bundler; Rails, Rack and Sinatra) and PHP (Composer; Laravel, or PHP's own server on
//! `public/` or the root).

use super::dockerfile::{HOME, Output, Recipe, Start};
use super::systems::{Input, first_pin, tool_versions, version_file};
use super::version::Pin;
use super::{Detected, PlanError, image};

pub fn ruby(input: &Input) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let gemfile = tree.read("Gemfile")?.unwrap_or_default();
    let lock = tree.read("Gemfile.lock")?.unwrap_or_default();
    let gemfile_pin = gemfile.lines().enumerate().find_map(|(n, line)| {
        let rest = line.trim().strip_prefix("ruby ")?;
        let v = rest
            .trim()
            .trim_matches(['"', '\''])
            .split(['"', '\''])
            .next()?;
        Some(Pin::new(v, format!("Gemfile:{}", n + 1)))
    });
    let pin = first_pin(vec![
        version_file(tree, ".ruby-version")?,
        tool_versions(tree, &["ruby"])?,
        gemfile_pin,
    ]);
    let version = input.version("ruby", pin, false)?;
    let gem = |name: &str| {
        lock.contains(&format!("    {name} ("))
            || gemfile.contains(&format!("gem \"{name}\""))
            || gemfile.contains(&format!("gem '{name}'"))
    };
    let rails = tree.is_file("config/application.rb")? || gem("rails");
    let mut env = vec![
        ("BUNDLE_PATH".to_string(), format!("{HOME}/bundle")),
        ("BUNDLE_WITHOUT".to_string(), "development:test".to_string()),
    ];
    let mut run_env = Vec::new();
    let (framework, build, start) = if rails {
        env.push(("RAILS_ENV".into(), "production".into()));
        run_env.push(("RAILS_LOG_TO_STDOUT".into(), "1".into()));
        run_env.push(("RAILS_SERVE_STATIC_FILES".into(), "1".into()));
        let assets = tree.is_dir("app/assets") || tree.is_dir("app/javascript");
        (
            Some("rails".to_string()),
            assets.then(|| "SECRET_KEY_BASE_DUMMY=1 bundle exec rails assets:precompile".into()),
            Start::Shell("bundle exec rails server -b 0.0.0.0 -p $PORT".into()),
        )
    } else if tree.is_file("config.ru")? {
        let framework = if gem("sinatra") { "sinatra" } else { "rack" };
        (
            Some(framework.to_string()),
            None,
            Start::Shell("bundle exec rackup --host 0.0.0.0 --port $PORT".into()),
        )
    } else {
        let start = input.missing_start(
            "Gemfile found, but neither Rails (config/application.rb) nor Rack (config.ru): \
             add a Procfile or set start_command"
                .into(),
        )?;
        (None, None, start)
    };
    Ok(Detected {
        language: "ruby",
        framework,
        package_manager: Some("bundler".into()),
        recipe: Recipe {
            image: image(&input.config.images.ruby, &version.version),
            root_setup: Vec::new(),
            env,
            manifests: input.existing(&["Gemfile", "Gemfile.lock"])?,
            install: Some("bundle install".into()),
            install_after_source: false,
            build,
            run_env,
            port: 3000,
            output: Output::InPlace(start),
        },
        versions: vec![version],
        decisions: Vec::new(),
    })
}

pub fn php(input: &Input) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let text = tree.read("composer.json")?.unwrap_or_default();
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PlanError::Invalid {
            file: "composer.json".into(),
            message: e.to_string(),
        })?;
    let require = |name: &str| manifest.get("require").and_then(|r| r.get(name));
    let pin = first_pin(vec![
        require("php")
            .and_then(|v| v.as_str())
            .map(|v| Pin::new(v, "composer.json (require.php)")),
        tool_versions(tree, &["php"])?,
    ]);
    let version = input.version("php", pin, false)?;
    let laravel = require("laravel/framework").is_some() && tree.is_file("artisan")?;
    let (framework, start) = if laravel {
        (
            Some("laravel".to_string()),
            Start::Shell("php artisan serve --host=0.0.0.0 --port=$PORT".into()),
        )
    } else if tree.is_file("public/index.php")? {
        (None, Start::Shell("php -S 0.0.0.0:$PORT -t public".into()))
    } else if tree.is_file("index.php")? {
        (None, Start::Shell("php -S 0.0.0.0:$PORT -t .".into()))
    } else {
        let start = input.missing_start(
            "composer.json found, but no artisan (Laravel), public/index.php or index.php: \
             add a Procfile or set start_command"
                .into(),
        )?;
        (None, start)
    };
    Ok(Detected {
        language: "php",
        framework,
        package_manager: Some("composer".into()),
        recipe: Recipe {
            image: image(&input.config.images.php, &version.version),
            root_setup: vec![
                format!(
                    "COPY --from={} /usr/bin/composer /usr/local/bin/composer",
                    input.config.images.composer
                ),
                "RUN apt-get update && apt-get install -y --no-install-recommends git unzip && rm -rf /var/lib/apt/lists/*".into(),
            ],
            env: Vec::new(),
            manifests: input.existing(&["composer.json", "composer.lock"])?,
            install: Some(
                "composer install --no-dev --no-interaction --prefer-dist --no-scripts --no-autoloader"
                    .into(),
            ),
            install_after_source: false,
            build: Some("composer dump-autoload --optimize --no-dev".into()),
            run_env: Vec::new(),
            port: 8000,
            output: Output::InPlace(start),
        },
        versions: vec![version],
        decisions: Vec::new(),
    })
}
