//! The planner's view of a checkout: files read by name, never through a symbolic link, never
//! larger than `MAX_FILE_BYTES`, and directories listed up to `MAX_ENTRIES`. Planning reads a
//! handful of named files, so a tree of any size plans in the same time.

use std::path::{Path, PathBuf};

use crate::checkout::{self, Kind};

use super::PlanError;

/// A manifest larger than this is refused (a `package.json` is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Entries read from one directory.
const MAX_ENTRIES: usize = 4096;

/// The directory the app is planned in (the repository, or its `root_dir`).
pub struct Tree {
    root: PathBuf,
}

impl Tree {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The text of file `relative`; `None` when there is none.
    pub fn read(&self, relative: &str) -> Result<Option<String>, PlanError> {
        checkout::read_checkout_file(&self.root, relative, MAX_FILE_BYTES)
            .map_err(|e| PlanError::Read(format!("{e:#}")))
    }

    /// Whether `relative` is a regular file (a link there is refused, not followed).
    pub fn is_file(&self, relative: &str) -> Result<bool, PlanError> {
        checkout::is_regular_file_in(&self.root, relative)
            .map_err(|e| PlanError::Read(format!("{e:#}")))
    }

    /// The first of `names` that is a file.
    pub fn first_file<'a>(&self, names: &[&'a str]) -> Result<Option<&'a str>, PlanError> {
        for name in names {
            if self.is_file(name)? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Whether `relative` is a directory reached through no link.
    pub fn is_dir(&self, relative: &str) -> bool {
        let (parent, name) = match relative.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", relative),
        };
        self.list(parent)
            .iter()
            .any(|(n, kind)| n == name && *kind == Kind::Dir)
    }

    /// The entries of directory `relative` (empty when it is not one).
    pub fn list(&self, relative: &str) -> Vec<(String, Kind)> {
        checkout::list_dir(&self.root, relative, MAX_ENTRIES).unwrap_or_default()
    }
}
