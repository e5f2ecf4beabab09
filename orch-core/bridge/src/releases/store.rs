//! The releases bucket and the object store of archives, as async
//! operations: push a bundle, read the release a node should run, download
//! an archive with its digests checked.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_nats::jetstream::{self, kv, object_store};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::record::{
    self, BUNDLES_BUCKET, MAX_VALUE_BYTES, Pointer, RELEASES_BUCKET, ReleaseRecord,
};
use super::{PushOutcome, PushRequest, ReleaseError, Wanted};

/// A downloaded archive is at most this big (a bundle is the host binary and
/// the modules' libraries: tens of MiB).
pub const MAX_ARCHIVE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The two buckets, opened (created by a push when missing).
#[derive(Clone)]
pub struct Buckets {
    /// [`RELEASES_BUCKET`].
    pub releases: kv::Store,
    /// [`BUNDLES_BUCKET`].
    pub bundles: object_store::ObjectStore,
    context: jetstream::Context,
}

fn nats(action: &str, error: impl std::fmt::Display) -> ReleaseError {
    ReleaseError::transient(
        format!("{action}: {error}"),
        "check that the server runs with JetStream (-js) and that this user may use the \
         ORCH_RELEASES and ORCH_BUNDLES buckets",
    )
}

impl Buckets {
    /// Opens both buckets; `create` makes missing ones (a push), else a
    /// missing one is an error that says to push first.
    pub async fn open(context: &jetstream::Context, create: bool) -> Result<Self, ReleaseError> {
        let releases = match context.get_key_value(RELEASES_BUCKET).await {
            Ok(store) => store,
            Err(_) if create => context
                .create_key_value(kv::Config {
                    bucket: RELEASES_BUCKET.into(),
                    description: "cargo-orch releases: pushed bundles and what nodes run".into(),
                    history: 5,
                    max_value_size: i32::try_from(MAX_VALUE_BYTES).unwrap_or(i32::MAX),
                    ..Default::default()
                })
                .await
                .map_err(|e| nats("cannot create the releases bucket", e))?,
            Err(e) => return Err(nothing_pushed(e)),
        };
        let bundles = match context.get_object_store(BUNDLES_BUCKET).await {
            Ok(store) => store,
            Err(_) if create => context
                .create_object_store(object_store::Config {
                    bucket: BUNDLES_BUCKET.into(),
                    description: Some("cargo-orch bundle archives".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| nats("cannot create the bundles object store", e))?,
            Err(e) => return Err(nothing_pushed(e)),
        };
        Ok(Self {
            releases,
            bundles,
            context: context.clone(),
        })
    }

    /// The JetStream context they were opened with.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// Reads one value of the releases bucket.
    async fn value<T: for<'de> serde::Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ReleaseError> {
        let Some(bytes) = self
            .releases
            .get(key)
            .await
            .map_err(|e| nats(&format!("cannot read {key}"), e))?
        else {
            return Ok(None);
        };
        record::parse(key, &bytes)
            .map(Some)
            .map_err(|e| ReleaseError::new(e, "push the release again: cargo orch push BUNDLE"))
    }

    /// The record of `app` `version`, checked.
    pub async fn record(
        &self,
        app: &str,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, ReleaseError> {
        let key = record::release_key(app, version);
        let Some(found) = self.value::<ReleaseRecord>(&key).await? else {
            return Ok(None);
        };
        found.check(app, version).map_err(|e| {
            ReleaseError::new(
                format!("release record {key} refused: {e}"),
                "someone wrote it by hand or forged it; push the bundle again",
            )
        })?;
        Ok(Some(found))
    }

    /// Stores a bundle and records it; see [`super::ReleaseClient::push`].
    pub async fn push(&self, request: &PushRequest) -> Result<PushOutcome, ReleaseError> {
        let (app, version) = (&request.app, &request.version);
        let key = record::release_key(app, version);
        let existing = self.record(app, version).await?;
        let stored = match existing {
            Some(found) if found.digest == request.digest => false,
            Some(found) => {
                return Err(ReleaseError::new(
                    format!(
                        "{app} {version} is in the store already with another digest ({}, this \
                         bundle is {}): a version is pushed once",
                        short(&found.digest),
                        short(&request.digest)
                    ),
                    "give the new bundle another app.version in main.yaml and bundle again",
                ));
            }
            None => {
                self.upload(request).await?;
                true
            }
        };
        if stored {
            let record = ReleaseRecord {
                app: app.clone(),
                version: version.clone(),
                digest: request.digest.clone(),
                archive_sha256: request.archive_sha256.clone(),
                size: request.bytes.len() as u64,
                object: record::object_name(app, version, &request.digest),
                signed_by: request.signed_by.clone(),
                pushed_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                presence_bucket: request.presence_bucket.clone(),
            };
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            if let Err(e) = self.releases.create(&key, bytes.into()).await {
                // Another push of the same version won the race: the same
                // bytes are fine, other bytes are refused.
                match self.record(app, version).await? {
                    Some(found) if found.digest == request.digest => {}
                    _ => return Err(nats(&format!("cannot record {key}"), e)),
                }
            }
        }
        let current_key = record::current_key(app);
        let current = self.value::<Pointer>(&current_key).await?;
        let make_current = request.make_current || current.is_none();
        if make_current {
            let pointer = Pointer {
                version: version.clone(),
                digest: request.digest.clone(),
            };
            let bytes = serde_json::to_vec(&pointer).unwrap_or_default();
            self.releases
                .put(&current_key, bytes.into())
                .await
                .map_err(|e| nats(&format!("cannot write {current_key}"), e))?;
        }
        Ok(PushOutcome {
            stored,
            current: make_current,
            previous_current: current.map(|p| p.version),
        })
    }

    /// Writes the archive, then checks that the store computed the digest
    /// the pusher did.
    async fn upload(&self, request: &PushRequest) -> Result<(), ReleaseError> {
        let name = record::object_name(&request.app, &request.version, &request.digest);
        let mut reader = request.bytes.as_slice();
        let info = self
            .bundles
            .put(name.as_str(), &mut reader)
            .await
            .map_err(|e| nats(&format!("cannot store {name}"), e))?;
        let mine = Sha256::digest(&request.bytes);
        let expected = format!(
            "SHA-256={}",
            base64::engine::general_purpose::URL_SAFE.encode(mine)
        );
        if info.digest.as_deref() != Some(expected.as_str()) || info.size != request.bytes.len() {
            return Err(ReleaseError::new(
                format!(
                    "the store holds {name} with digest {:?} and {} bytes, this archive is {expected} \
                     and {} bytes",
                    info.digest,
                    info.size,
                    request.bytes.len()
                ),
                "push again; if it repeats, something between here and the server changes data",
            ));
        }
        Ok(())
    }

    /// The release `node` should run: its desired one, else the current one.
    pub async fn wanted(&self, app: &str, node: &str) -> Result<Option<Wanted>, ReleaseError> {
        let desired_key = record::desired_key(app, node);
        let (pointer, source) = match self.value::<Pointer>(&desired_key).await? {
            Some(pointer) => (pointer, format!("desired for node {node}")),
            None => match self.value::<Pointer>(&record::current_key(app)).await? {
                Some(pointer) => (pointer, "current".to_owned()),
                None => return Ok(None),
            },
        };
        self.resolve(app, pointer, source).await.map(Some)
    }

    /// The record a pointer names, which must carry the pointer's digest.
    pub async fn resolve(
        &self,
        app: &str,
        pointer: Pointer,
        source: String,
    ) -> Result<Wanted, ReleaseError> {
        let record = self.record(app, &pointer.version).await?.ok_or_else(|| {
            ReleaseError::new(
                format!(
                    "the {source} release of {app} is {} but no such version was pushed",
                    pointer.version
                ),
                "push it first: cargo orch push BUNDLE",
            )
        })?;
        if record.digest != pointer.digest {
            return Err(ReleaseError::new(
                format!(
                    "the {source} release of {app} names {} with digest {}, its record says {}",
                    pointer.version,
                    short(&pointer.digest),
                    short(&record.digest)
                ),
                "point it at the version again (cargo orch push BUNDLE --current)",
            ));
        }
        Ok(Wanted { record, source })
    }

    /// Downloads the archive of `record` into `dir` (a file named after its
    /// app, version and digest), checking its size, the store's digest and
    /// the record's SHA-256; a file there already with that SHA-256 is kept.
    pub async fn download(
        &self,
        record: &ReleaseRecord,
        dir: &Path,
    ) -> Result<PathBuf, ReleaseError> {
        let file_name = format!(
            "{}-{}-{}.tar",
            safe(&record.app),
            safe(&record.version),
            short(&record.digest)
        );
        let path = dir.join(&file_name);
        if sha256_of_file(&path).ok().as_deref() == Some(record.archive_sha256.as_str()) {
            return Ok(path);
        }
        if record.size > MAX_ARCHIVE_BYTES {
            return Err(ReleaseError::new(
                format!(
                    "{} {} is {} bytes, more than a bundle may be ({MAX_ARCHIVE_BYTES})",
                    record.app, record.version, record.size
                ),
                "this is no bundle cargo orch bundle wrote; push a real one",
            ));
        }
        let io = |action: &str, e: std::io::Error| {
            ReleaseError::new(
                format!("{action}: {e}"),
                "check that the folder exists and this user may write it (--unpack-dir)",
            )
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| io(&format!("cannot create {}", dir.display()), e))?;
        let partial = dir.join(format!(".{file_name}.partial"));
        let mut file = std::fs::File::create(&partial)
            .map_err(|e| io(&format!("cannot write {}", partial.display()), e))?;
        let mut object = self
            .bundles
            .get(&record.object)
            .await
            .map_err(|e| nats(&format!("cannot read object {}", record.object), e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 128 * 1024];
        let mut total: u64 = 0;
        loop {
            // The object checks the store's digest at its end.
            let n = object.read(&mut buffer).await.map_err(|e| {
                // The object store checks its own digest at the end: a
                // mismatch is a changed object; anything else, the link.
                if e.to_string().contains("digest") {
                    ReleaseError::new(
                        format!("the archive {} is not what was stored: {e}", record.object),
                        "the object store holds other bytes than were pushed; push the bundle again",
                    )
                } else {
                    ReleaseError::transient(
                        format!("the archive {} could not be read: {e}", record.object),
                        "check the server and the network; it is tried again",
                    )
                }
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > record.size {
                break;
            }
            let chunk = buffer.get(..n).unwrap_or_default();
            hasher.update(chunk);
            file.write_all(chunk)
                .map_err(|e| io(&format!("cannot write {}", partial.display()), e))?;
        }
        let got = crate::releases::hex(&hasher.finalize());
        if total != record.size || got != record.archive_sha256 {
            let _ = std::fs::remove_file(&partial);
            return Err(ReleaseError::new(
                format!(
                    "the archive of {} {} in the store is not the one pushed: {total} bytes with \
                     SHA-256 {}, its record says {} bytes with SHA-256 {}",
                    record.app,
                    record.version,
                    short(&got),
                    record.size,
                    short(&record.archive_sha256)
                ),
                "someone changed the object store; push the bundle again from its archive",
            ));
        }
        file.sync_all()
            .map_err(|e| io(&format!("cannot write {}", partial.display()), e))?;
        drop(file);
        std::fs::rename(&partial, &path)
            .map_err(|e| io(&format!("cannot rename to {}", path.display()), e))?;
        Ok(path)
    }
}

fn nothing_pushed(error: impl std::fmt::Display) -> ReleaseError {
    ReleaseError::new(
        format!("no release bucket on this server ({error})"),
        "push a bundle first: cargo orch push BUNDLE --nats URL",
    )
}

/// The first 12 characters of a digest.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// A name as a file name: letters, digits, `.`, `-` and `_`; anything else `_`.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// The SHA-256 of a file, as hex.
pub fn sha256_of_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 128 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(crate::releases::hex(&hasher.finalize()));
        }
        hasher.update(buffer.get(..n).unwrap_or_default());
    }
}
