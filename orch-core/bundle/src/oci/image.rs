//! The JSON documents of an OCI image (image-spec v1.0): the image config,
//! the image manifest and the layout's index. Structs with a fixed field
//! order and sorted maps, written compactly: the same image gives the same
//! bytes, hence the same digests.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{BundleError, Phase};

/// `mediaType` of the image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// `mediaType` of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// `mediaType` of the one, uncompressed, layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// `mediaType` of the index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation naming a manifest of the index (the tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The operating system and architecture, in OCI's (Go's) names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// The CPU variant (`v7` for 32-bit ARMv7), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of a Rust target triple (`x86_64-unknown-linux-gnu` →
    /// `linux`/`amd64`). Linux targets only: the root filesystem is taken
    /// from a Linux build machine.
    pub fn of_target(triple: &str) -> Result<Self, BundleError> {
        let refuse = |cause: String| {
            BundleError::new(
                Phase::Oci,
                triple,
                cause,
                "build the OCI image on a Linux machine of the architecture it will run on",
            )
        };
        let mut parts = triple.split('-');
        let cpu = parts.next().unwrap_or_default();
        if !parts.any(|part| part == "linux") {
            return Err(refuse("not a Linux target: an OCI image runs Linux".into()));
        }
        let (architecture, variant) = match cpu {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "i386" | "i586" | "i686" => ("386", None),
            "armv7" | "thumbv7neon" => ("arm", Some("v7")),
            "arm" | "armv6" => ("arm", Some("v6")),
            "riscv64gc" | "riscv64" => ("riscv64", None),
            "powerpc64le" => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "s390x" => ("s390x", None),
            "mips64el" => ("mips64le", None),
            "loongarch64" => ("loong64", None),
            other => return Err(refuse(format!("no OCI architecture for `{other}`"))),
        };
        Ok(Self {
            architecture: architecture.into(),
            os: "linux".into(),
            variant: variant.map(Into::into),
        })
    }
}

/// What the image says beyond its layer.
#[derive(Debug, Clone)]
pub struct Image {
    /// Where it runs.
    pub platform: Platform,
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Env` (`NAME=value`).
    pub env: Vec<String>,
    /// `config.WorkingDir`.
    pub working_dir: String,
    /// `config.StopSignal`, if any.
    pub stop_signal: Option<String>,
    /// `created` (seconds since the epoch, from `SOURCE_DATE_EPOCH`);
    /// omitted when `None`, keeping the bytes reproducible.
    pub created: Option<u64>,
    /// The tag: the index's `org.opencontainers.image.ref.name`.
    pub ref_name: String,
    /// The manifest's annotations, also the config's labels.
    pub annotations: BTreeMap<String, String>,
    /// The history entry's `created_by`.
    pub created_by: String,
}

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    /// Its media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where the manifest runs (in the index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Its annotations (the tag, in the index).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self::new(
            media_type,
            crate::format::sha256_hex(bytes),
            bytes.len() as u64,
        )
    }

    /// A descriptor of a blob with this SHA-256 (hex) and size.
    pub fn new(media_type: &str, sha256: String, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest: format!("sha256:{sha256}"),
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
struct Config<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    config: RunConfig<'a>,
    rootfs: RootFs<'a>,
    history: [History<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    env: &'a [String],
    entrypoint: &'a [String],
    working_dir: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: [&'a str; 1],
}

#[derive(Serialize)]
struct History<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    created_by: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 1],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: [&'a Descriptor; 1],
}

fn json(value: &impl Serialize) -> Vec<u8> {
    // Structs of strings, numbers and string maps always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Image {
    /// The image config, for the layer whose uncompressed digest is `diff_id`
    /// (`sha256:<hex>`).
    pub fn config_json(&self, diff_id: &str) -> Vec<u8> {
        let created = self.created.map(rfc3339);
        json(&Config {
            created: created.clone(),
            architecture: &self.platform.architecture,
            os: &self.platform.os,
            variant: self.platform.variant.as_deref(),
            config: RunConfig {
                env: &self.env,
                entrypoint: &self.entrypoint,
                working_dir: &self.working_dir,
                labels: &self.annotations,
                stop_signal: self.stop_signal.as_deref(),
            },
            rootfs: RootFs {
                kind: "layers",
                diff_ids: [diff_id],
            },
            history: [History {
                created,
                created_by: &self.created_by,
            }],
        })
    }

    /// The image manifest of `config` and `layer`.
    pub fn manifest_json(&self, config: &Descriptor, layer: &Descriptor) -> Vec<u8> {
        let mut annotations = self.annotations.clone();
        if let Some(created) = self.created {
            annotations.insert("org.opencontainers.image.created".into(), rfc3339(created));
        }
        json(&Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE,
            config,
            layers: [layer],
            annotations: &annotations,
        })
    }

    /// The layout's `index.json`: the manifest, its platform and its tag.
    pub fn index_json(&self, manifest: &Descriptor) -> Vec<u8> {
        let mut manifest = manifest.clone();
        manifest.platform = Some(self.platform.clone());
        manifest
            .annotations
            .insert(REF_NAME.into(), self.ref_name.clone());
        json(&Index {
            schema_version: 2,
            media_type: INDEX_MEDIA_TYPE,
            manifests: [&manifest],
        })
    }
}

/// Checks a tag against the OCI layout's grammar for
/// `org.opencontainers.image.ref.name`: components of letters and digits
/// joined by `/`, each with single separators `-._:@+` (or `--`) inside.
pub fn check_ref_name(name: &str) -> Result<(), BundleError> {
    let valid_component = |component: &str| {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_alphanumeric();
        bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes.iter().all(|b| alnum(b) || b"-._:@+".contains(b))
            && !bytes
                .windows(2)
                .any(|pair| !alnum(&pair[0]) && !alnum(&pair[1]) && pair != b"--")
    };
    if !name.is_empty() && name.len() <= 128 && name.split('/').all(valid_component) {
        return Ok(());
    }
    Err(BundleError::new(
        Phase::Oci,
        name,
        "not a valid OCI tag (org.opencontainers.image.ref.name)",
        "set app.version in main.yaml to letters and digits joined by `.`, `-`, `_` or `+` \
         (e.g. 1.4.0)",
    ))
}

/// `seconds` since the epoch as RFC 3339 in UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_oci_platforms() {
        let amd64 = Platform::of_target("x86_64-unknown-linux-gnu").expect("amd64");
        assert_eq!(
            (amd64.architecture.as_str(), amd64.os.as_str()),
            ("amd64", "linux")
        );
        assert_eq!(amd64.variant, None);
        let arm = Platform::of_target("armv7-unknown-linux-gnueabihf").expect("arm");
        assert_eq!(arm.variant.as_deref(), Some("v7"));
        assert_eq!(
            Platform::of_target("aarch64-unknown-linux-musl")
                .expect("arm64")
                .architecture,
            "arm64"
        );
        assert!(Platform::of_target("x86_64-apple-darwin").is_err());
        assert!(Platform::of_target("wasm32-unknown-unknown").is_err());
    }

    #[test]
    fn tags_follow_the_ref_name_grammar() {
        for good in ["0.1.0", "1.4.0-rc.1", "1.0+build.7", "v2", "a/b"] {
            assert!(check_ref_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1 0", "-1", "1.", "1..0", "a//b", "é"] {
            assert!(check_ref_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn created_is_written_only_from_source_date_epoch() {
        let mut image = Image {
            platform: Platform::of_target("x86_64-unknown-linux-gnu").expect("platform"),
            entrypoint: vec![],
            env: vec![],
            working_dir: "/".into(),
            stop_signal: None,
            created: None,
            ref_name: "1".into(),
            annotations: BTreeMap::new(),
            created_by: "test".into(),
        };
        let config = String::from_utf8(image.config_json("sha256:00")).expect("UTF-8");
        assert!(!config.contains("created\""), "{config}");
        image.created = Some(0);
        let config = String::from_utf8(image.config_json("sha256:00")).expect("UTF-8");
        assert!(
            config.starts_with(r#"{"created":"1970-01-01T00:00:00Z","architecture":"amd64""#),
            "{config}"
        );
        let layer = Descriptor::of(LAYER_MEDIA_TYPE, b"");
        let manifest = String::from_utf8(image.manifest_json(&layer, &layer)).expect("UTF-8");
        assert!(
            manifest.contains(r#""org.opencontainers.image.created":"1970-01-01T00:00:00Z""#),
            "{manifest}"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
