//! Registry state: global schema ids, subject versions, and the optional JSON
//! data file that lets both survive a restart.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::schema::ParsedSchema;

/// A global schema id, as Confluent numbers them: 1, 2, 3, ...
pub type SchemaId = u32;

/// A version of a subject, starting at 1 for each subject.
pub type Version = u32;

/// Version of the data file layout written by [`Registry::open`].
const DATA_FORMAT: u32 = 1;

/// A failure to load or save the data file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data file exists but could not be read.
    #[error("cannot read the registry data file {}", path.display())]
    Read {
        /// The data file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// The data file is not JSON of the shape this registry writes.
    #[error(
        "the registry data file {} is not a data file of this registry; \
         fix it, or move it away to start empty",
        path.display()
    )]
    Decode {
        /// The data file.
        path: PathBuf,
        /// The JSON decoding failure.
        #[source]
        source: serde_json::Error,
    },
    /// The data file decodes but contradicts itself.
    #[error(
        "the registry data file {} is inconsistent: {reason}; \
         fix it, or move it away to start empty",
        path.display()
    )]
    Inconsistent {
        /// The data file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The new state could not be written to the data file; the change was
    /// not applied.
    #[error("cannot write the registry data file {}", path.display())]
    Write {
        /// The data file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
}

/// One version of a subject, with the schema it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// The subject name.
    pub subject: String,
    /// The version under the subject.
    pub version: Version,
    /// The global schema id.
    pub id: SchemaId,
    /// The schema text, as first registered.
    pub schema: String,
}

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// The global schema id.
    pub id: SchemaId,
    /// The version under the subject that holds the schema.
    pub version: Version,
    /// `false` when the schema was already registered under the subject and
    /// nothing changed.
    pub created: bool,
}

/// Which version of a subject to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The highest version (`latest` or `-1` in the REST API).
    Latest,
    /// One version number.
    Number(Version),
}

/// Why a read of a subject or version found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// No version was ever registered under the subject.
    #[error("Subject '{0}' not found.")]
    Subject(String),
    /// The subject exists but has no such version.
    #[error("Version {0} not found.")]
    Version(Version),
    /// The subject exists but the schema is not registered under it.
    #[error("Schema not found")]
    Schema,
}

/// The registry state, without locking or persistence.
#[derive(Debug, Clone, Default)]
struct Store {
    /// Text of the schema with id `n`, at index `n - 1`.
    schemas: Vec<String>,
    /// Identity key to id.
    ids: HashMap<String, SchemaId>,
    /// Subject to its versions in increasing order.
    subjects: BTreeMap<String, Vec<Entry>>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    version: Version,
    id: SchemaId,
}

impl Store {
    fn text(&self, id: SchemaId) -> Option<&str> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.schemas.get(index).map(String::as_str)
    }

    fn entry_with_key(&self, subject: &str, key: &str) -> Option<Entry> {
        let id = *self.ids.get(key)?;
        self.subjects
            .get(subject)?
            .iter()
            .find(|entry| entry.id == id)
            .copied()
    }

    fn subject_version(&self, subject: &str, entry: Entry) -> SubjectVersion {
        SubjectVersion {
            subject: subject.to_owned(),
            version: entry.version,
            id: entry.id,
            schema: self.text(entry.id).unwrap_or_default().to_owned(),
        }
    }

    /// Adds `schema` under `subject`; the caller has checked it is not there.
    fn insert(&mut self, subject: &str, schema: ParsedSchema) -> Registration {
        let id = match self.ids.get(schema.key()) {
            Some(&id) => id,
            None => {
                // Ids are dense from 1; a registry holding 2^32 - 1 schemas is
                // far outside what this development server is for.
                let id = SchemaId::try_from(self.schemas.len() + 1).unwrap_or(SchemaId::MAX);
                self.ids.insert(schema.key().to_owned(), id);
                self.schemas.push(schema.into_text());
                id
            }
        };
        let versions = self.subjects.entry(subject.to_owned()).or_default();
        let version = versions.last().map_or(1, |entry| entry.version + 1);
        versions.push(Entry { version, id });
        Registration {
            id,
            version,
            created: true,
        }
    }

    fn to_file(&self) -> DataFile {
        DataFile {
            format: DATA_FORMAT,
            schemas: self
                .schemas
                .iter()
                .zip(1..)
                .map(|(text, id)| DataSchema {
                    id,
                    schema: text.clone(),
                })
                .collect(),
            subjects: self.subjects.clone(),
        }
    }

    /// Rebuilds the state from a data file, checking every invariant the
    /// registry relies on.
    fn from_file(file: DataFile) -> Result<Self, String> {
        if file.format != DATA_FORMAT {
            return Err(format!(
                "format {} is not the supported format {DATA_FORMAT}",
                file.format
            ));
        }
        let mut store = Self::default();
        for (expected, entry) in (1..).zip(file.schemas) {
            if entry.id != expected {
                return Err(format!(
                    "schema ids must run 1, 2, 3, ... in order, found {} where {expected} belongs",
                    entry.id
                ));
            }
            let parsed = ParsedSchema::parse(&entry.schema)
                .map_err(|error| format!("schema {} is not valid Avro: {error}", entry.id))?;
            if let Some(first) = store.ids.insert(parsed.key().to_owned(), entry.id) {
                return Err(format!(
                    "schemas {first} and {} are the same schema",
                    entry.id
                ));
            }
            store.schemas.push(parsed.into_text());
        }
        for (subject, versions) in file.subjects {
            if versions.is_empty() {
                return Err(format!("subject '{subject}' has no versions"));
            }
            let mut previous = 0;
            for entry in &versions {
                if entry.version <= previous {
                    return Err(format!(
                        "versions of subject '{subject}' must increase, found {} after {previous}",
                        entry.version
                    ));
                }
                previous = entry.version;
                if store.text(entry.id).is_none() {
                    return Err(format!(
                        "version {} of subject '{subject}' points at unknown schema {}",
                        entry.version, entry.id
                    ));
                }
                if versions.iter().filter(|other| other.id == entry.id).count() > 1 {
                    return Err(format!(
                        "subject '{subject}' holds schema {} more than once",
                        entry.id
                    ));
                }
            }
            store.subjects.insert(subject, versions);
        }
        Ok(store)
    }
}

/// The data file layout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFile {
    format: u32,
    schemas: Vec<DataSchema>,
    subjects: BTreeMap<String, Vec<Entry>>,
}

/// One schema in the data file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSchema {
    id: SchemaId,
    schema: String,
}

/// A shared handle to the registry: cheap to clone, safe to use from many
/// requests at once. Changes are serialised, and with a data file each change
/// is on disk before it becomes visible.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    store: Arc<Mutex<Store>>,
    data: Option<Arc<PathBuf>>,
}

impl Registry {
    /// An empty registry that keeps its state in memory only.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A registry backed by the JSON file at `path`: its state is loaded when
    /// the file exists, and rewritten atomically (temporary file + rename)
    /// after every change. A missing file (and its directory) is created at
    /// once, so an unwritable location fails here rather than at the first
    /// registration.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the file cannot be read, decoded or written, or
    /// contradicts itself.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let store = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: DataFile =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Decode {
                        path: path.clone(),
                        source,
                    })?;
                Store::from_file(file).map_err(|reason| StoreError::Inconsistent {
                    path: path.clone(),
                    reason,
                })?
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let store = Store::default();
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|source| StoreError::Write {
                        path: path.clone(),
                        source,
                    })?;
                }
                encode(&store)
                    .and_then(|bytes| write_atomically(&path, &bytes))
                    .map_err(|source| StoreError::Write {
                        path: path.clone(),
                        source,
                    })?;
                store
            }
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Self {
            store: Arc::new(Mutex::new(store)),
            data: Some(Arc::new(path)),
        })
    }

    /// The data file, when the registry has one.
    #[must_use]
    pub fn data_file(&self) -> Option<&Path> {
        self.data.as_deref().map(PathBuf::as_path)
    }

    /// Registers `schema` under `subject`.
    ///
    /// A schema already registered under the subject (at any version) returns
    /// its id and version and changes nothing. Otherwise the subject gets a
    /// new version, pointing at the schema's existing global id when the same
    /// schema is registered under another subject, or at a new id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Write`] when the data file cannot be written; the
    /// registry is then unchanged.
    pub async fn register(
        &self,
        subject: &str,
        schema: ParsedSchema,
    ) -> Result<Registration, StoreError> {
        let mut store = self.store.lock().await;
        if let Some(entry) = store.entry_with_key(subject, schema.key()) {
            return Ok(Registration {
                id: entry.id,
                version: entry.version,
                created: false,
            });
        }
        let mut next = store.clone();
        let registration = next.insert(subject, schema);
        if let Some(path) = &self.data {
            let bytes = encode(&next).map_err(|source| StoreError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            let target = Arc::clone(path);
            tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join.to_string())))
                .map_err(|source| StoreError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        *store = next;
        Ok(registration)
    }

    /// The text of the schema with global id `id`.
    pub async fn schema(&self, id: SchemaId) -> Option<String> {
        self.store.lock().await.text(id).map(str::to_owned)
    }

    /// Every subject version that points at schema `id`, by subject then
    /// version; `None` when there is no such schema.
    pub async fn schema_versions(&self, id: SchemaId) -> Option<Vec<(String, Version)>> {
        let store = self.store.lock().await;
        store.text(id)?;
        Some(
            store
                .subjects
                .iter()
                .flat_map(|(subject, versions)| {
                    versions
                        .iter()
                        .filter(|entry| entry.id == id)
                        .map(|entry| (subject.clone(), entry.version))
                })
                .collect(),
        )
    }

    /// All subjects, sorted.
    pub async fn subjects(&self) -> Vec<String> {
        self.store.lock().await.subjects.keys().cloned().collect()
    }

    /// The versions of `subject`, increasing.
    ///
    /// # Errors
    ///
    /// [`NotFound::Subject`] when the subject does not exist.
    pub async fn versions(&self, subject: &str) -> Result<Vec<Version>, NotFound> {
        let store = self.store.lock().await;
        let versions = store
            .subjects
            .get(subject)
            .ok_or_else(|| NotFound::Subject(subject.to_owned()))?;
        Ok(versions.iter().map(|entry| entry.version).collect())
    }

    /// One version of `subject`.
    ///
    /// # Errors
    ///
    /// [`NotFound::Subject`] or [`NotFound::Version`].
    pub async fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
    ) -> Result<SubjectVersion, NotFound> {
        let store = self.store.lock().await;
        let versions = store
            .subjects
            .get(subject)
            .ok_or_else(|| NotFound::Subject(subject.to_owned()))?;
        let entry = match selector {
            VersionSelector::Latest => versions.last(),
            VersionSelector::Number(number) => {
                versions.iter().find(|entry| entry.version == number)
            }
        };
        let entry = entry.copied().ok_or(match selector {
            VersionSelector::Number(number) => NotFound::Version(number),
            // A subject exists only with at least one version.
            VersionSelector::Latest => NotFound::Subject(subject.to_owned()),
        })?;
        Ok(store.subject_version(subject, entry))
    }

    /// The version of `subject` that holds `schema`.
    ///
    /// # Errors
    ///
    /// [`NotFound::Subject`] when the subject does not exist,
    /// [`NotFound::Schema`] when the schema is not registered under it.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &ParsedSchema,
    ) -> Result<SubjectVersion, NotFound> {
        let store = self.store.lock().await;
        if !store.subjects.contains_key(subject) {
            return Err(NotFound::Subject(subject.to_owned()));
        }
        let entry = store
            .entry_with_key(subject, schema.key())
            .ok_or(NotFound::Schema)?;
        Ok(store.subject_version(subject, entry))
    }
}

/// The data file bytes for `store`.
fn encode(store: &Store) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&store.to_file())?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees either the
/// old file or the new one, never a partial write.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    // Make the rename itself durable; not every platform can open a
    // directory, so this is best effort.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(directory) = std::fs::File::open(parent) {
            let _ = directory.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> ParsedSchema {
        ParsedSchema::parse(text).unwrap()
    }

    #[tokio::test]
    async fn ids_are_global_and_versions_per_subject() {
        let registry = Registry::in_memory();
        let a = registry
            .register("s1", parsed(r#""string""#))
            .await
            .unwrap();
        let b = registry.register("s1", parsed(r#""long""#)).await.unwrap();
        let c = registry.register("s2", parsed(r#""long""#)).await.unwrap();
        let again = registry
            .register("s1", parsed(r#"{"type":"string"}"#))
            .await
            .unwrap();
        assert_eq!((a.id, a.version, a.created), (1, 1, true));
        assert_eq!((b.id, b.version, b.created), (2, 2, true));
        assert_eq!((c.id, c.version, c.created), (2, 1, true));
        assert_eq!((again.id, again.version, again.created), (1, 1, false));
        assert_eq!(registry.versions("s1").await.unwrap(), vec![1, 2]);
    }

    #[test]
    fn inconsistent_files_are_refused() {
        let schema = |id| DataSchema {
            id,
            schema: r#""string""#.to_owned(),
        };
        let file = |schemas, subjects| DataFile {
            format: DATA_FORMAT,
            schemas,
            subjects,
        };
        // Ids out of order.
        assert!(Store::from_file(file(vec![schema(2)], BTreeMap::new())).is_err());
        // The same schema twice.
        assert!(Store::from_file(file(vec![schema(1), schema(2)], BTreeMap::new())).is_err());
        // A version pointing nowhere.
        let dangling = BTreeMap::from([("s".to_owned(), vec![Entry { version: 1, id: 7 }])]);
        assert!(Store::from_file(file(vec![schema(1)], dangling)).is_err());
        // Versions that do not increase.
        let backwards = BTreeMap::from([(
            "s".to_owned(),
            vec![Entry { version: 2, id: 1 }, Entry { version: 1, id: 1 }],
        )]);
        assert!(Store::from_file(file(vec![schema(1)], backwards)).is_err());
    }
}
