//! The instance archive format: an [age](https://age-encryption.org) file (a passphrase, or
//! one or more `age1…` X25519 recipients) holding a gzipped tar of the installation's files,
//! with `manifest.json` as its last entry: the format, shard's version, the database schema,
//! and the size and SHA-256 of every other entry. age authenticates the whole stream (a
//! flipped or cut-off byte fails decryption); the manifest checks that what was unpacked is
//! exactly what was packed. Nothing is trusted before both checks pass: [`unpack`] writes
//! into a staging directory that the caller moves into place only afterwards.
//!
//! Entries are regular files only, under plain relative names (no `..`, no absolute path, no
//! link), so an archive cannot write outside its staging directory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use age::secrecy::SecretString;
use anyhow::{Context, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The archive layout this shard writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest's name: the last entry.
pub const MANIFEST: &str = "manifest.json";
/// A manifest larger than this is not one of ours.
const MAX_MANIFEST: u64 = 16 << 20;
/// Passphrases are stretched with scrypt at N = 2^this, which takes 2^this KiB of memory
/// (256 MiB) to write or open an archive. Fixed, not age's "about a second on this machine":
/// that made 512 MiB here, and an archive from a fast machine must open on a small one.
const SCRYPT_LOG_N: u8 = 18;
/// An archive that asks for more than 2^this (1 GiB) is refused rather than tried (age's guard
/// against a file made to take hours).
const MAX_SCRYPT_LOG_N: u8 = 20;

/// What an archive holds, written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub shard_version: String,
    /// The database's schema version (its newest migration).
    pub schema: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sqlite` (a `VACUUM INTO` copy) or `postgres` (a `pg_dump` custom-format dump).
    pub database: String,
    /// Rows per table, for the restore's summary.
    pub counts: BTreeMap<String, i64>,
    pub files: Vec<Entry>,
}

/// One packed file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Who can open an archive being written.
#[derive(Clone)]
pub enum Seal {
    Passphrase(SecretString),
    Recipients(Vec<age::x25519::Recipient>),
}

/// What opens an archive being read.
pub enum Unseal {
    Passphrase(SecretString),
    Identities(Vec<age::x25519::Identity>),
}

/// Parses `age1…` recipients.
pub fn recipients(keys: &[String]) -> anyhow::Result<Vec<age::x25519::Recipient>> {
    keys.iter()
        .map(|k| {
            k.trim()
                .parse::<age::x25519::Recipient>()
                .map_err(|e| anyhow::anyhow!("{k:?} is not an age recipient (age1…): {e}"))
        })
        .collect()
}

/// Reads `AGE-SECRET-KEY-1…` identities from an age identity file (`#` comments allowed).
pub fn identities(text: &str) -> anyhow::Result<Vec<age::x25519::Identity>> {
    let keys: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.parse::<age::x25519::Identity>()
                .map_err(|e| anyhow::anyhow!("not an age identity (AGE-SECRET-KEY-1…): {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    if keys.is_empty() {
        bail!("the identity file holds no AGE-SECRET-KEY-1… line");
    }
    Ok(keys)
}

/// An archive being written to `W`.
pub struct Writer<W: Write> {
    tar: tar::Builder<GzEncoder<age::stream::StreamWriter<W>>>,
    files: Vec<Entry>,
}

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, seal: &Seal) -> anyhow::Result<Self> {
        let encryptor = match seal {
            Seal::Passphrase(p) => {
                let mut key = age::scrypt::Recipient::new(p.clone());
                key.set_work_factor(SCRYPT_LOG_N);
                age::Encryptor::with_recipients(std::iter::once(&key as &dyn age::Recipient))
                    .context("cannot encrypt with this passphrase")?
            }
            Seal::Recipients(keys) => {
                age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient))
                    .context("cannot encrypt to these recipients")?
            }
        };
        let sealed = encryptor
            .wrap_output(out)
            .context("cannot write the archive")?;
        let mut tar = tar::Builder::new(GzEncoder::new(sealed, Compression::fast()));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(Self {
            tar,
            files: Vec::new(),
        })
    }

    /// Packs the file at `path` as `name`.
    pub fn add_file(&mut self, name: &str, path: &Path) -> anyhow::Result<()> {
        check_name(name)?;
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let size = file.metadata()?.len();
        let mut reader = Hashing {
            inner: file.take(size),
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut header = header(size);
        self.tar
            .append_data(&mut header, name, &mut reader)
            .with_context(|| format!("cannot pack {}", path.display()))?;
        if reader.bytes != size {
            bail!("{} changed while it was being packed", path.display());
        }
        self.files.push(Entry {
            path: name.to_string(),
            size,
            sha256: hex::encode(reader.hash.finalize()),
        });
        Ok(())
    }

    /// Packs `bytes` as `name`.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        check_name(name)?;
        let mut header = header(bytes.len() as u64);
        self.tar
            .append_data(&mut header, name, bytes)
            .with_context(|| format!("cannot pack {name}"))?;
        self.files.push(Entry {
            path: name.to_string(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        });
        Ok(())
    }

    /// Packs every regular file under `dir` as `prefix/<relative path>` (links and other
    /// special files are left out); returns how many. A missing `dir` packs nothing.
    pub fn add_tree(&mut self, prefix: &str, dir: &Path) -> anyhow::Result<usize> {
        let mut stack = vec![dir.to_path_buf()];
        let mut packed = 0;
        while let Some(at) = stack.pop() {
            let entries = match std::fs::read_dir(&at) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot list {}", at.display())),
            };
            let mut entries: Vec<_> = entries.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let kind = entry.file_type()?;
                let path = entry.path();
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let relative = path.strip_prefix(dir).unwrap_or(&path);
                    let Some(relative) = relative.to_str() else {
                        tracing::warn!(path = %path.display(), "left out of the backup: its name is not UTF-8");
                        continue;
                    };
                    self.add_file(&format!("{prefix}/{relative}"), &path)?;
                    packed += 1;
                }
            }
        }
        Ok(packed)
    }

    /// Writes the manifest (`base` with the packed files) and closes every layer; returns
    /// the output and the manifest.
    pub fn finish(mut self, mut base: Manifest) -> anyhow::Result<(W, Manifest)> {
        base.files = std::mem::take(&mut self.files);
        let json = serde_json::to_vec_pretty(&base)?;
        let mut header = header(json.len() as u64);
        self.tar
            .append_data(&mut header, MANIFEST, json.as_slice())?;
        let gz = self.tar.into_inner().context("cannot finish the archive")?;
        let sealed = gz.finish().context("cannot finish the archive")?;
        let out = sealed.finish().context("cannot finish the archive")?;
        Ok((out, base))
    }
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header
}

/// A plain relative name: normal components only.
fn check_name(name: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(name);
    if name.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("{name:?} is not a plain relative name");
    }
    Ok(path.to_path_buf())
}

/// Decrypts, unpacks and checks an archive into `into` (an empty directory that the caller
/// owns and removes on error). Returns the manifest once every check passed: decryption (the
/// passphrase or identity opens it and no byte was changed or cut), the layout (plain names,
/// regular files, the manifest last), and each file's size and SHA-256 against the manifest,
/// with nothing missing and nothing extra.
pub fn unpack<R: Read>(input: R, unseal: &Unseal, into: &Path) -> anyhow::Result<Manifest> {
    let decryptor = age::Decryptor::new(input).map_err(|e| match e {
        age::DecryptError::Io(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            anyhow::anyhow!("cannot read the archive: {e}")
        }
        other => anyhow::anyhow!("this is not a shard backup (not an age-encrypted file: {other})"),
    })?;
    let passphrase;
    let identity: Vec<&dyn age::Identity> = match unseal {
        Unseal::Passphrase(p) => {
            if !decryptor.is_scrypt() {
                bail!(
                    "this archive is encrypted to an age recipient, not a passphrase: pass its identity file with --identity"
                );
            }
            let mut key = age::scrypt::Identity::new(p.clone());
            key.set_max_work_factor(MAX_SCRYPT_LOG_N);
            passphrase = key;
            vec![&passphrase]
        }
        Unseal::Identities(keys) => {
            if decryptor.is_scrypt() {
                bail!(
                    "this archive is encrypted with a passphrase: set SHARD_BACKUP_PASSPHRASE instead of --identity"
                );
            }
            keys.iter().map(|k| k as &dyn age::Identity).collect()
        }
    };
    let plain = decryptor
        .decrypt(identity.into_iter())
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                anyhow::anyhow!("the passphrase or identity does not open this archive")
            }
            age::DecryptError::ExcessiveWork { required, .. } => anyhow::anyhow!(
                "the archive asks for more passphrase work (2^{required}) than shard allows"
            ),
            other => anyhow::anyhow!("the archive is damaged: {other}"),
        })?;
    let mut tar = tar::Archive::new(GzDecoder::new(plain));
    let mut seen: BTreeMap<String, Entry> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let damaged = |e: std::io::Error| anyhow::anyhow!("the archive is damaged: {e}");
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if manifest.is_some() {
            bail!("the archive is damaged: entries follow its manifest");
        }
        let name = entry
            .path()
            .map_err(damaged)?
            .to_str()
            .map(String::from)
            .context("the archive is damaged: an entry's name is not UTF-8")?;
        let relative = check_name(&name).context("the archive is damaged")?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("the archive is damaged: {name} is not a regular file");
        }
        if name == MANIFEST {
            let mut json = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST)
                .read_to_end(&mut json)
                .map_err(damaged)?;
            manifest = Some(
                serde_json::from_slice(&json)
                    .context("the archive is damaged: its manifest does not parse")?,
            );
            continue;
        }
        if seen.contains_key(&name) {
            bail!("the archive is damaged: {name} appears twice");
        }
        let target = into.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut out = private_file(&target)?;
        let mut reader = Hashing {
            inner: &mut entry,
            hash: Sha256::new(),
            bytes: 0,
        };
        std::io::copy(&mut reader, &mut out).map_err(damaged)?;
        let sha256 = hex::encode(reader.hash.finalize());
        let size = reader.bytes;
        seen.insert(
            name.clone(),
            Entry {
                path: name,
                size,
                sha256,
            },
        );
    }
    let manifest = manifest.context("the archive is damaged: it has no manifest (cut short?)")?;
    if manifest.format != FORMAT {
        bail!(
            "the archive is in format {} and this shard reads format {FORMAT}",
            manifest.format
        );
    }
    for listed in &manifest.files {
        match seen.remove(&listed.path) {
            Some(found) if found == *listed => {}
            Some(_) => bail!(
                "the archive is damaged: {} does not match its checksum",
                listed.path
            ),
            None => bail!("the archive is damaged: {} is missing", listed.path),
        }
    }
    if let Some(extra) = seen.keys().next() {
        bail!("the archive is damaged: {extra} is not in its manifest");
    }
    // Durable before the caller moves it into place: one flush of the file system instead
    // of one per file (a thousand static-site files cost seconds of fsync).
    let dir = std::fs::File::open(into)?;
    rustix::fs::syncfs(&dir).context("cannot flush the restored files to disk")?;
    Ok(manifest)
}

/// Creates `path` for writing, readable by its owner only.
fn private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Manifest {
        Manifest {
            format: FORMAT,
            shard_version: "test".into(),
            schema: 1,
            created_at: chrono::Utc::now(),
            database: "sqlite".into(),
            counts: BTreeMap::new(),
            files: vec![],
        }
    }

    fn fast_passphrase(p: &str) -> Seal {
        Seal::Passphrase(SecretString::from(p.to_string()))
    }

    fn packed(seal: &Seal) -> (Vec<u8>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("certs/a")).unwrap();
        std::fs::write(dir.path().join("certs/a/cert.pem"), b"CERT").unwrap();
        std::fs::write(dir.path().join("key"), b"KEY").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("certs/link")).unwrap();
        let mut w = Writer::new(Vec::new(), seal).unwrap();
        w.add_file("secret.key", &dir.path().join("key")).unwrap();
        assert_eq!(w.add_tree("certs", &dir.path().join("certs")).unwrap(), 1);
        w.add_bytes("shard.toml", b"x = 1\n").unwrap();
        let (bytes, manifest) = w.finish(base()).unwrap();
        assert_eq!(manifest.files.len(), 3);
        (bytes, dir)
    }

    #[test]
    fn a_recipient_archive_round_trips_and_refuses_damage() {
        let key = age::x25519::Identity::generate();
        let (bytes, _src) = packed(&Seal::Recipients(vec![key.to_public()]));
        let unseal = Unseal::Identities(vec![key.clone()]);
        let out = tempfile::tempdir().unwrap();
        let manifest = unpack(bytes.as_slice(), &unseal, out.path()).unwrap();
        assert_eq!(manifest.files.len(), 3);
        assert_eq!(
            std::fs::read(out.path().join("certs/a/cert.pem")).unwrap(),
            b"CERT"
        );
        assert!(
            !out.path().join("certs/link").exists(),
            "links are not packed"
        );

        // One flipped byte in the middle, and a cut-off tail: both refused.
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        let out = tempfile::tempdir().unwrap();
        let err = unpack(flipped.as_slice(), &unseal, out.path()).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
        let out = tempfile::tempdir().unwrap();
        let cut = &bytes[..bytes.len() - 40];
        assert!(unpack(cut, &unseal, out.path()).is_err());

        // Another key does not open it; a passphrase is not asked for.
        let other = Unseal::Identities(vec![age::x25519::Identity::generate()]);
        let out = tempfile::tempdir().unwrap();
        let err = unpack(bytes.as_slice(), &other, out.path()).unwrap_err();
        assert!(format!("{err}").contains("does not open"), "{err}");
        let wrong_kind = Unseal::Passphrase(SecretString::from("x".to_string()));
        let err = unpack(bytes.as_slice(), &wrong_kind, out.path()).unwrap_err();
        assert!(format!("{err}").contains("--identity"), "{err}");
        let err = unpack(&b"not an archive"[..], &other, out.path()).unwrap_err();
        assert!(format!("{err}").contains("not a shard backup"), "{err}");
    }

    #[test]
    fn a_passphrase_archive_opens_with_that_passphrase_only() {
        let (bytes, _src) = packed(&fast_passphrase("correct horse"));
        let out = tempfile::tempdir().unwrap();
        let wrong = Unseal::Passphrase(SecretString::from("battery staple".to_string()));
        let err = unpack(bytes.as_slice(), &wrong, out.path()).unwrap_err();
        assert!(format!("{err}").contains("does not open"), "{err}");
        let right = Unseal::Passphrase(SecretString::from("correct horse".to_string()));
        let manifest = unpack(bytes.as_slice(), &right, out.path()).unwrap();
        assert_eq!(manifest.schema, 1);
        assert_eq!(
            std::fs::read(out.path().join("shard.toml")).unwrap(),
            b"x = 1\n"
        );
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("sites/abc/index.html").is_ok());
    }
}
