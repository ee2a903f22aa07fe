//! Compiled connectors on disk, keyed by component hash and engine configuration, so a second
//! load maps the artifact into memory instead of compiling again; and beside each artifact the
//! validated manifest, so a second load need not call `describe` either.
//!
//! The directory is opened with cap-std: the cache writes only inside it. Keys are hex digests
//! the host computes, never names from a connector or a definition.

use std::path::{Path, PathBuf};

use cap_std::fs::Dir;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::file_identity::FileIdentities;
use crate::manifest::Manifest;

#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: Dir,
    path: PathBuf,
    identities: FileIdentities,
}

impl ArtifactCache {
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| anyhow::anyhow!("cannot create the artifact cache {}: {e}", path.display()))?;
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(|e| anyhow::anyhow!("cannot open the artifact cache {}: {e}", path.display()))?;
        let identities = FileIdentities::open(&dir, crate::file_identity::SETTLED).map_err(|e| {
            anyhow::anyhow!(
                "cannot open identities/ in the artifact cache {}: {e}",
                path.display()
            )
        })?;
        Ok(ArtifactCache {
            dir,
            path: path.to_owned(),
            identities,
        })
    }

    /// The remembered hashes of connector files (see `file_identity.rs`).
    pub(crate) fn identities(&self) -> &FileIdentities {
        &self.identities
    }

    fn file_name(key: &str) -> String {
        format!("{key}.cwasm")
    }

    /// Loads a cached artifact, or `None` if there is none or it does not fit this engine
    /// (wasmtime checks its own header and refuses a mismatch).
    pub(crate) fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let name = Self::file_name(key);
        if !self.dir.exists(&name) {
            return None;
        }
        // Deserializing trusts the bytes to be wasmtime's own output. They are: this
        // directory is written only by `store` below, under names derived from a SHA-256 of
        // the component and the engine configuration. `deserialize_file` maps the file into
        // memory instead of reading it, which is what makes a cached load cheap.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, self.path.join(&name)) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(artifact = %name, %error, "ignoring an unusable cached artifact");
                None
            }
        }
    }

    /// The manifest `describe` returned for this component, saved beside its artifact so a
    /// cached load need not instantiate the connector to ask again. A file that does not
    /// parse is ignored and the connector is described afresh.
    pub(crate) fn load_manifest(&self, key: &str) -> Option<Manifest> {
        let text = self.dir.read_to_string(format!("{key}.manifest.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn store_manifest(&self, key: &str, manifest: &Manifest) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(manifest)?;
        self.write_atomically(&format!("{key}.manifest.json"), &bytes)
    }

    /// Writes an artifact atomically: a reader sees the old file, no file, or the whole new one.
    pub(crate) fn store(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.write_atomically(&Self::file_name(key), bytes)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let temporary = format!("{name}.{}.tmp", std::process::id());
        self.dir
            .write(&temporary, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {temporary} in the artifact cache: {e}"))?;
        self.dir
            .rename(&temporary, &self.dir, name)
            .map_err(|e| anyhow::anyhow!("cannot move {temporary} into place in the artifact cache: {e}"))?;
        Ok(())
    }
}
