//! The apps of `tests/apps/` (an Express app, a Vite site, a Flask app, a Go service) as the
//! files a test git server commits; shared by the end-to-end build tests and `bench/plan.rs`.

use std::path::Path;

pub type Files = Vec<(&'static str, Vec<u8>, bool)>;

/// Every file of `tests/apps/<name>`, sorted (names leaked: a test's repository lives as long
/// as the test).
pub fn app_files(name: &str) -> Files {
    fn walk(root: &Path, dir: &Path, out: &mut Files) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let name: &'static str = Box::leak(relative.into_boxed_str());
                out.push((name, std::fs::read(&path).unwrap(), false));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name);
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files
}

/// File `path` of app `name` with `from` replaced by `to`, ready to commit.
pub fn edited(name: &str, path: &str, from: &str, to: &str) -> (&'static str, Vec<u8>, bool) {
    let (file, bytes, executable) = app_files(name)
        .into_iter()
        .find(|f| f.0 == path)
        .unwrap_or_else(|| panic!("tests/apps/{name} has no {path}"));
    let text = String::from_utf8(bytes).unwrap().replace(from, to);
    (file, text.into_bytes(), executable)
}
