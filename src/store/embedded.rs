//! The embedded store: a folder that follows a live catalogue.
//!
//! - `index.vitrina`: the base file (see [`super::file`]), every product as of the last
//!   compaction, checksummed, replaced only by atomic rename;
//! - `wal-NNNNNN.log`: the write-ahead log of changes since (see [`super::wal`]), each
//!   batch synced before it is acknowledged;
//! - `write.lock`: held by the one writer at a time (other writers wait for it).
//!
//! Readers take no lock: they read the base, then the log up to its last complete
//! record, and [`LiveStore::refresh`] later reads only what was appended since, so a
//! server sees another process's writes within its polling interval and always
//! searches a consistent snapshot. Compaction writes a new base (and a new log
//! generation) when the log grows past a quarter of the base, or at the end of a sync.
//!
//! Why this and not an embedded database (redb, LMDB): a search scans every vector of
//! a kind, so the vectors must sit in contiguous arrays in memory whatever the storage;
//! a key-value store would add a second copy and a B-tree for what is one append-only
//! log and one array file here. redb also allows one process at a time, which rules out
//! a CLI writing while a server reads; LMDB allows that but does not checksum its
//! pages, so a damaged file could be read as wrong vectors instead of being refused.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{bail, Context, Result};

use super::ann::AnnPolicy;
use super::file::{self, base_path, Extras, GraphFile, TMP_PREFIX};
use super::snapshot::Snapshot;
use super::wal::{self, Op};
use super::{Entry, Store, StoreInfo, StoreMeta, StoreWriter};

const LOCK_FILE: &str = "write.lock";
/// The log is folded into the base once it is larger than this share of the base...
const COMPACT_SHARE: u64 = 4;
/// ...and at least this large.
const COMPACT_MIN_BYTES: u64 = 16 << 20;

/// Identity of the base file: a new base (compaction, rebuild) is a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BaseId {
    dev: u64,
    ino: u64,
}

fn base_id(dir: &Path) -> Result<BaseId> {
    let m = std::fs::metadata(base_path(dir))
        .with_context(|| format!("no index at {}", base_path(dir).display()))?;
    Ok(BaseId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// How far a snapshot has read the store's files.
#[derive(Debug, Clone)]
struct Position {
    base: BaseId,
    generation: u64,
    /// Offset in the log up to which records were applied; 0 before its header is read.
    wal_offset: u64,
    base_bytes: u64,
    ann: AnnPolicy,
    graphs: Vec<GraphFile>,
}

/// True if `dir` holds a store.
pub fn exists(dir: &Path) -> bool {
    base_path(dir).is_file()
}

/// Reads the store: base, then the log. Retries when a compaction replaces the base
/// between the two reads.
fn load(dir: &Path) -> Result<(Snapshot, Position, Option<u64>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = base_id(dir)?;
        let base = file::read(dir)?;
        let after = base_id(dir)?;
        if before != after && attempt < 5 {
            continue;
        }
        let generation = base.wal_generation;
        let log = wal::path(dir, generation);
        let mut snapshot = Snapshot::on_base(base.meta.clone(), Arc::new(base.segment));
        let mut position = Position {
            base: after,
            generation,
            wal_offset: 0,
            base_bytes: base.bytes,
            ann: base.ann,
            graphs: base.graphs.clone(),
        };
        let mut incomplete = None;
        if log.is_file() {
            match wal::read(&log, 0, generation, &base.meta) {
                Ok(read) => {
                    snapshot.apply(&read.ops);
                    position.wal_offset = read.end;
                    incomplete = read.incomplete_at;
                }
                Err(_) if attempt < 5 && base_id(dir).ok() != Some(after) => continue,
                Err(e) => return Err(e),
            }
        } else if attempt < 5 && base_id(dir).ok() != Some(after) {
            continue;
        }
        return Ok((snapshot, position, incomplete));
    }
}

fn info_of(dir: &Path, snapshot: &Snapshot, ann: &AnnPolicy) -> StoreInfo {
    let mut info = snapshot.info();
    if info.search == "exact" {
        info.search = format!(
            "exact (HNSW graphs: {})",
            match ann.mode {
                super::AnnMode::Auto => format!("built above {} products", ann.threshold),
                super::AnnMode::Always => "always built".into(),
                super::AnnMode::Never => "never built".into(),
            }
        );
    }
    let bytes = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .ok();
    info.bytes_on_disk = bytes;
    info.location = dir.display().to_string();
    info
}

/// A store folder opened for reading, that can pick up changes made since.
pub struct LiveStore {
    dir: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    position: Mutex<Position>,
}

impl LiveStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let (snapshot, position, _) = load(dir)?;
        Ok(LiveStore {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(snapshot)),
            position: Mutex::new(position),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current snapshot; it stays valid (and unchanged) while it is held.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads what was written since the last look; returns true if anything changed.
    /// A new base (compaction) is read whole; otherwise only the new log records.
    pub fn refresh(&self) -> Result<bool> {
        let mut position = self.position.lock().unwrap_or_else(|e| e.into_inner());
        if base_id(&self.dir)? != position.base {
            let (snapshot, next, _) = load(&self.dir)?;
            *position = next;
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
            return Ok(true);
        }
        let log = wal::path(&self.dir, position.generation);
        if !log.is_file() {
            return Ok(false);
        }
        let current = self.snapshot();
        let read = match wal::read(
            &log,
            position.wal_offset,
            position.generation,
            current.meta(),
        ) {
            Ok(read) => read,
            // Compacted between our two looks: the next refresh reads the new base.
            Err(_) if base_id(&self.dir)? != position.base => return Ok(false),
            Err(e) => return Err(e),
        };
        position.wal_offset = read.end;
        if read.ops.is_empty() {
            return Ok(false);
        }
        let mut next = current.fork();
        next.apply(&read.ops);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(true)
    }

    pub fn info(&self) -> StoreInfo {
        let ann = self.position.lock().unwrap_or_else(|e| e.into_inner()).ann;
        info_of(&self.dir, &self.snapshot(), &ann)
    }
}

/// The one writer of a store folder (holds `write.lock` while it lives).
pub struct EmbeddedWriter {
    dir: PathBuf,
    _lock: File,
    wal: File,
    wal_end: u64,
    generation: u64,
    base_bytes: u64,
    state: Snapshot,
    ann: AnnPolicy,
    /// The graphs of the current base file.
    graphs: Vec<GraphFile>,
    /// The policy differs from the base file's (set by `set_ann`).
    ann_changed: bool,
    /// What opening found and repaired (an incomplete last write, leftover files).
    pub notes: Vec<String>,
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for another vitrina writing to {} to finish ...",
                dir.display()
            );
            lock.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    Ok(lock)
}

impl EmbeddedWriter {
    /// Opens the store in `dir` for writing, creating it for `meta` if there is none.
    /// An existing store must hold vectors of the same model.
    pub fn create(dir: &Path, meta: &StoreMeta) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create index folder {}", dir.display()))?;
        let lock = take_lock(dir)?;
        if !exists(dir) {
            let empty = Snapshot::empty(meta.clone());
            let extras = Extras {
                ann: AnnPolicy::default(),
                graphs: &[],
            };
            file::write(dir, meta, &empty.compacted(), 0, extras)?;
            wal::create(dir, 0)?;
        }
        let writer = Self::opened(dir, lock)?;
        writer.state.meta().check_same_model(
            meta,
            &dir.display().to_string(),
            "index into a new folder, or delete this one to rebuild it",
        )?;
        Ok(writer)
    }

    /// Opens an existing store for writing.
    pub fn open(dir: &Path) -> Result<Self> {
        if !exists(dir) {
            bail!(
                "no index at {} (build one with `vitrina index --index {}`)",
                base_path(dir).display(),
                dir.display()
            );
        }
        let lock = take_lock(dir)?;
        Self::opened(dir, lock)
    }

    fn opened(dir: &Path, lock: File) -> Result<Self> {
        let mut notes = Vec::new();
        let (state, position, incomplete) = load(dir)?;
        // Leftovers of interrupted writes: temporary files and logs of other generations.
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let stale_log = wal::generation_of(&name).is_some_and(|g| g != position.generation);
            let stale_graph = name.starts_with("ann-")
                && !position.graphs.iter().any(|g| g.files().contains(&name));
            if (name.starts_with(TMP_PREFIX) || stale_log || stale_graph)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                notes.push(format!(
                    "removed {} left by an interrupted write",
                    entry.path().display()
                ));
            }
        }
        let log = wal::path(dir, position.generation);
        let (wal, wal_end) = if log.is_file() {
            let wal = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&log)
                .with_context(|| format!("cannot open {}", log.display()))?;
            if let Some(at) = incomplete {
                wal.set_len(at)?;
                wal.sync_all()?;
                notes.push(format!(
                    "{}: dropped an incomplete last write at byte {at} (cut short by a crash; it was never acknowledged)",
                    log.display()
                ));
            }
            (wal, position.wal_offset.max(wal::HEADER_LEN))
        } else {
            (wal::create(dir, position.generation)?, wal::HEADER_LEN)
        };
        // Graphs an older vitrina wrote are not read: rebuilt at the next compaction.
        let outdated = position.graphs.iter().any(|g| !g.is_read());
        if outdated {
            notes.push(format!(
                "{}: the ANN graphs were written by an older vitrina and are not used (searches scan exactly); they are rebuilt at the next compaction (`vitrina index --index {}`)",
                dir.display(),
                dir.display()
            ));
        }
        Ok(EmbeddedWriter {
            dir: dir.to_path_buf(),
            _lock: lock,
            wal,
            wal_end,
            generation: position.generation,
            base_bytes: position.base_bytes,
            state,
            ann: position.ann,
            // Graphs from before ef_search was tuned at build are used as they are and
            // rebuilt, tuned, at the next `vitrina index`.
            ann_changed: outdated || position.graphs.iter().any(|g| g.tuned_ef_search.is_none()),
            graphs: position.graphs,
            notes,
        })
    }

    fn append(&mut self, op: Op) -> Result<()> {
        let payload = op.encode(self.state.meta())?;
        self.wal_end = wal::append(&mut self.wal, self.wal_end, &payload).with_context(|| {
            format!(
                "cannot write to {}",
                wal::path(&self.dir, self.generation).display()
            )
        })?;
        self.state.apply(&[op]);
        Ok(())
    }

    /// Bytes in the log not yet folded into the base.
    pub fn log_bytes(&self) -> u64 {
        self.wal_end - wal::HEADER_LEN
    }

    /// Sets when graphs are built (from the next compaction on); returns whether that
    /// changes the base file's setting, so the caller knows a compaction is due.
    pub fn set_ann(&mut self, policy: AnnPolicy) -> bool {
        if policy != self.ann {
            self.ann = policy;
            self.ann_changed = true;
        }
        self.ann_changed
    }

    /// Folds the log into a new base file (with HNSW graphs when the policy says so)
    /// and starts a new log; returns the base's size.
    pub fn compact(&mut self) -> Result<u64> {
        let meta = self.state.meta().clone();
        let mut segment = self.state.compacted();
        let next = self.generation + 1;
        let graphs = if self.ann.builds(segment.products.len()) {
            file::write_graphs(&self.dir, &meta, &mut segment, next, self.ann.params)?
        } else {
            Vec::new()
        };
        let extras = Extras {
            ann: self.ann,
            graphs: &graphs,
        };
        let bytes = file::write(&self.dir, &meta, &segment, next, extras)?;
        let wal = wal::create(&self.dir, next)?;
        let old = wal::path(&self.dir, self.generation);
        let _ = std::fs::remove_file(&old);
        for g in std::mem::replace(&mut self.graphs, graphs) {
            for name in g.files() {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
        self.ann_changed = false;
        file::sync_dir(&self.dir)?;
        self.wal = wal;
        self.wal_end = wal::HEADER_LEN;
        self.generation = next;
        self.base_bytes = bytes;
        self.state = Snapshot::on_base(meta, Arc::new(segment));
        Ok(bytes)
    }

    pub fn info(&self) -> StoreInfo {
        info_of(&self.dir, &self.state, &self.ann)
    }
}

impl StoreWriter for EmbeddedWriter {
    fn upsert(&mut self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let op = Op::upsert(self.state.meta(), entries)?;
        self.append(op)
    }

    fn delete(&mut self, ids: &[String]) -> Result<Vec<String>> {
        let present = self.state.present(ids);
        if !present.is_empty() {
            self.append(Op::Delete(present.clone()))?;
        }
        Ok(present)
    }

    fn current(&self) -> &dyn Store {
        &self.state
    }

    fn ann_policy(&self) -> AnnPolicy {
        self.ann
    }

    fn set_ann(&mut self, policy: AnnPolicy) -> Result<()> {
        EmbeddedWriter::set_ann(self, policy);
        Ok(())
    }

    fn optimize(&mut self) -> Result<()> {
        if self.log_bytes() > 0 || self.ann_changed {
            self.compact()?;
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn finish(&mut self) -> Result<()> {
        let log = self.log_bytes();
        if log > COMPACT_MIN_BYTES.max(self.base_bytes / COMPACT_SHARE)
            || (log > 0 && self.state.delta_rows() > 100_000)
        {
            self.compact()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Product;
    use crate::store::{Candidates, Space, StoredProduct, VectorKind};
    use std::collections::BTreeMap;

    const DIM: usize = 4;

    /// The names of the files in `dir`, sorted.
    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    fn meta() -> StoreMeta {
        StoreMeta {
            model: "toy".into(),
            model_dir: None,
            dim: DIM,
            kinds: vec![VectorKind::Text, VectorKind::Image],
            catalog: "toy".into(),
        }
    }

    fn unit(v: [f32; DIM]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Product `id` whose text vector points along axis `axis`.
    fn entry(id: &str, title: &str, axis: usize) -> Entry {
        let mut t = [0.1f32; DIM];
        t[axis] = 1.0;
        let mut i = [0.2f32; DIM];
        i[(axis + 1) % DIM] = 1.0;
        let mut vectors = BTreeMap::new();
        vectors.insert(VectorKind::Text, unit(t));
        vectors.insert(VectorKind::Image, unit(i));
        Entry {
            product: StoredProduct {
                product: Product {
                    id: id.into(),
                    text: title.into(),
                    broad: Some("b".into()),
                    fine: None,
                    attributes: Default::default(),
                    image: None,
                },
                has_image: true,
                content_hash: 7,
            },
            vectors,
        }
    }

    fn ids(store: &dyn Store) -> Vec<String> {
        store
            .products()
            .unwrap()
            .iter()
            .map(|p| p.id().to_string())
            .collect()
    }

    fn top(store: &dyn Store, axis: usize, k: usize) -> Vec<String> {
        let mut q = [0f32; DIM];
        q[axis] = 1.0;
        store
            .top_k(Space::Kind(VectorKind::Text), &q, k, &Candidates::default())
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    #[test]
    fn writes_survive_reopening_before_and_after_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        w.upsert(vec![entry("a", "A", 0), entry("b", "B", 1)])
            .unwrap();
        w.upsert(vec![entry("c", "C", 2)]).unwrap();
        w.upsert(vec![entry("a", "A2", 3)]).unwrap(); // replaces a
        assert_eq!(w.delete(&["b".into(), "zz".into()]).unwrap(), ["b"]);
        drop(w);
        let check = |store: &dyn Store| {
            assert_eq!(store.len(), 2);
            assert_eq!(ids(store), ["c", "a"]);
            assert_eq!(store.product("a").unwrap().unwrap().product.text, "A2");
            assert!(store.product("b").unwrap().is_none());
            assert_eq!(top(store, 3, 1), ["a"], "a's new vector");
            assert_eq!(
                store.vectors(VectorKind::Text, &["a", "b"]).unwrap()[0],
                Some(entry("a", "", 3).vectors[&VectorKind::Text].clone())
            );
        };
        check(&*LiveStore::open(dir.path()).unwrap().snapshot());
        let mut w = EmbeddedWriter::open(dir.path()).unwrap();
        assert!(w.log_bytes() > 0);
        w.compact().unwrap();
        assert_eq!(w.log_bytes(), 0);
        check(w.current());
        drop(w);
        check(&*LiveStore::open(dir.path()).unwrap().snapshot());
        // One base and one log remain.
        let names = file_names(dir.path());
        assert_eq!(names, ["index.vitrina", "wal-000001.log", "write.lock"]);
    }

    #[test]
    fn a_reader_follows_writes_deletes_and_compaction_and_old_snapshots_stay_put() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        w.upsert(vec![entry("a", "A", 0)]).unwrap();
        let live = LiveStore::open(dir.path()).unwrap();
        let before = live.snapshot();
        assert!(!live.refresh().unwrap(), "nothing new");
        w.upsert(vec![entry("b", "B", 1)]).unwrap();
        assert!(live.refresh().unwrap());
        assert_eq!(ids(&*live.snapshot()), ["a", "b"]);
        assert_eq!(ids(&*before), ["a"], "a held snapshot does not change");
        w.delete(&["a".into()]).unwrap();
        live.refresh().unwrap();
        assert_eq!(ids(&*live.snapshot()), ["b"]);
        w.compact().unwrap();
        w.upsert(vec![entry("c", "C", 2)]).unwrap();
        assert!(live.refresh().unwrap());
        assert_eq!(ids(&*live.snapshot()), ["b", "c"]);
    }

    #[test]
    fn an_incomplete_last_write_is_dropped_and_writing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        w.upsert(vec![entry("a", "A", 0)]).unwrap();
        drop(w);
        // A crash mid-append: a length and part of a record.
        let log = wal::path(dir.path(), 0);
        let mut bytes = std::fs::read(&log).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&500u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        std::fs::write(&log, &bytes).unwrap();
        assert_eq!(
            ids(&*LiveStore::open(dir.path()).unwrap().snapshot()),
            ["a"]
        );
        let mut w = EmbeddedWriter::open(dir.path()).unwrap();
        assert!(
            w.notes[0].contains("incomplete last write"),
            "{:?}",
            w.notes
        );
        assert_eq!(std::fs::metadata(&log).unwrap().len() as usize, good);
        w.upsert(vec![entry("b", "B", 1)]).unwrap();
        drop(w);
        assert_eq!(
            ids(&*LiveStore::open(dir.path()).unwrap().snapshot()),
            ["a", "b"]
        );
    }

    #[test]
    fn damaged_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        w.upsert(
            (0..50)
                .map(|i| entry(&format!("p{i}"), "T", i % DIM))
                .collect(),
        )
        .unwrap();
        w.compact().unwrap();
        w.upsert(vec![entry("x", "X", 0)]).unwrap();
        w.upsert(vec![entry("y", "Y", 1)]).unwrap();
        drop(w);
        let base = base_path(dir.path());
        let pristine = std::fs::read(&base).unwrap();
        let open_err = || format!("{:#}", LiveStore::open(dir.path()).err().expect("refused"));
        // A bit flipped anywhere in the header or the vectors; the file cut short.
        for at in [30, pristine.len() / 2, pristine.len() - 3] {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x10;
            std::fs::write(&base, &bytes).unwrap();
            let err = open_err();
            assert!(
                err.contains("index.vitrina") && err.contains("damaged"),
                "byte {at}: {err}"
            );
        }
        for len in [10, 100, pristine.len() - 1] {
            std::fs::write(&base, &pristine[..len]).unwrap();
            let err = open_err();
            assert!(err.contains("index.vitrina"), "length {len}: {err}");
        }
        std::fs::write(&base, &pristine).unwrap();
        // A flipped bit in the first of two log records is damage, not a torn write.
        let log = wal::path(dir.path(), 1);
        let mut bytes = std::fs::read(&log).unwrap();
        bytes[wal::HEADER_LEN as usize + 20] ^= 0x01;
        std::fs::write(&log, &bytes).unwrap();
        let err = open_err();
        assert!(
            err.contains("wal-000001.log") && err.contains("checksum"),
            "{err}"
        );
        assert!(EmbeddedWriter::open(dir.path()).is_err());
    }

    #[test]
    fn leftovers_of_interrupted_writes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedWriter::create(dir.path(), &meta()).unwrap());
        std::fs::write(dir.path().join(".tmp-abc123"), vec![0u8; 1000]).unwrap();
        std::fs::write(wal::path(dir.path(), 7), b"old").unwrap();
        let w = EmbeddedWriter::open(dir.path()).unwrap();
        assert_eq!(w.notes.len(), 2, "{:?}", w.notes);
        assert!(!dir.path().join(".tmp-abc123").exists());
        assert!(!wal::path(dir.path(), 7).exists());
    }

    #[test]
    fn bad_vectors_and_another_model_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        let mut nan = entry("n", "N", 0);
        nan.vectors.get_mut(&VectorKind::Image).unwrap()[1] = f32::NAN;
        let err = w.upsert(vec![entry("ok", "O", 1), nan]).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
        assert_eq!(w.current().len(), 0, "the whole batch is refused");
        let mut short = entry("s", "S", 0);
        short.vectors.get_mut(&VectorKind::Text).unwrap().pop();
        assert!(w.upsert(vec![short]).is_err());
        let err = w
            .upsert(vec![entry("d", "D", 0), entry("d", "D", 1)])
            .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        drop(w);
        let mut other = meta();
        other.model = "another".into();
        let err = EmbeddedWriter::create(dir.path(), &other)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`toy`") && err.contains("`another`"), "{err}");
    }

    #[test]
    fn blend_scores_equal_the_fused_vectors_cosine() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        w.upsert(
            (0..8)
                .map(|i| entry(&format!("p{i}"), "T", i % DIM))
                .collect(),
        )
        .unwrap();
        let store = w.current();
        let q = unit([0.3, -0.2, 0.9, 0.1]);
        for alpha in [0.0f32, 0.3, 0.8, 1.0] {
            let hits = store
                .top_k(Space::Blend { alpha }, &q, 8, &Candidates::default())
                .unwrap();
            for h in hits {
                let t = store.vectors(VectorKind::Text, &[&h.id]).unwrap()[0]
                    .clone()
                    .unwrap();
                let i = store.vectors(VectorKind::Image, &[&h.id]).unwrap()[0]
                    .clone()
                    .unwrap();
                let fused = crate::encoder::fuse(&t, &i, alpha);
                let want: f32 = fused.iter().zip(&q).map(|(a, b)| a * b).sum();
                assert!(
                    (h.score - want).abs() < 1e-5,
                    "alpha {alpha}: {h:?} vs {want}"
                );
            }
        }
    }

    /// `n` products with random unit vectors; product i has attribute `bucket` = i % 100.
    fn random_entries(n: usize, seed: u64) -> Vec<Entry> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let mut e = entry(&format!("r{i}"), "T", 0);
                for v in e.vectors.values_mut() {
                    let mut r: Vec<f32> =
                        (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                    crate::encoder::normalize_rows(&mut r, DIM);
                    *v = r;
                }
                e.product
                    .product
                    .attributes
                    .insert("bucket".into(), (i % 100).to_string());
                e
            })
            .collect()
    }

    #[test]
    fn indexed_any_of_clauses_admit_exactly_what_the_filter_matches() {
        use crate::store::{Filter, Method};
        let colours = [" Red", "red", "BLUE", "Green ", ""];
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        let mut entries = random_entries(700, 5);
        for (i, e) in entries.iter_mut().enumerate() {
            let c = colours[i % colours.len()];
            if !c.is_empty() {
                e.product
                    .product
                    .attributes
                    .insert("colour".into(), c.into());
            }
        }
        // 600 in the base segment, 100 in the log (the delta segment), 50 of them
        // replacing base products.
        w.upsert(entries[..600].to_vec()).unwrap();
        w.compact().unwrap();
        let mut late = entries[600..].to_vec();
        for (j, e) in late.iter_mut().enumerate().take(50) {
            e.product.product.id = format!("r{j}");
        }
        w.upsert(late).unwrap();
        let store = w.current();
        let products = store.products().unwrap();
        let q = unit([0.3, -0.2, 0.9, 0.1]);
        for clauses in [
            vec!["colour=red"],
            vec!["colour=RED,blue", "bucket<50"],
            vec!["colour=green", "colour=red"],
            vec!["colour!=red"],
            vec!["colour=purple"],
            vec!["broad=B", "colour=blue"],
        ] {
            let filter = Filter::parse(&clauses).unwrap();
            let want: std::collections::BTreeSet<String> = products
                .iter()
                .filter(|p| filter.matches(p))
                .map(|p| p.id().to_string())
                .collect();
            let hits = store
                .top_k(
                    Space::Kind(VectorKind::Text),
                    &q,
                    1000,
                    &Candidates {
                        method: Method::Exact,
                        filter: Some(&filter),
                        ..Candidates::default()
                    },
                )
                .unwrap();
            let got: std::collections::BTreeSet<String> = hits.into_iter().map(|h| h.id).collect();
            assert_eq!(got, want, "{clauses:?}");
        }
    }

    #[test]
    fn graphs_are_built_above_the_threshold_and_flags_override() {
        use crate::store::{AnnMode, AnnPolicy, Filter, Method};
        let policy = AnnPolicy {
            threshold: 500,
            ..AnnPolicy::default()
        };
        let q = unit([0.3, -0.2, 0.9, 0.1]);
        let search = |store: &dyn Store, method: Method, filter: Option<&Filter>, k: usize| {
            store.top_k(
                Space::Kind(VectorKind::Text),
                &q,
                k,
                &Candidates {
                    method,
                    filter,
                    ..Candidates::default()
                },
            )
        };
        // Below the threshold: exact; `--ann` is an error, auto and exact agree.
        let small = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(small.path(), &meta()).unwrap();
        w.set_ann(policy);
        w.upsert(random_entries(400, 1)).unwrap();
        w.compact().unwrap();
        drop(w);
        let live = LiveStore::open(small.path()).unwrap();
        let snap = live.snapshot();
        assert_eq!(snap.info().search, "exact");
        assert!(search(&*snap, Method::Ann, None, 5).is_err());
        assert_eq!(
            search(&*snap, Method::Auto, None, 5).unwrap(),
            search(&*snap, Method::Exact, None, 5).unwrap()
        );
        // Above it: graphs, used by auto and `--ann`; `--exact` still scans.
        let big = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(big.path(), &meta()).unwrap();
        w.set_ann(policy);
        w.upsert(random_entries(3000, 2)).unwrap();
        w.compact().unwrap();
        // The writer searches its new graphs at once, not only after a reopen.
        let own = w.current();
        assert!(
            own.info().search.starts_with("hnsw"),
            "{}",
            own.info().search
        );
        assert!(search(own, Method::Ann, None, 10).is_ok());
        // Each graph records the ef_search it was tuned to (at most the policy's), and a
        // reopened store uses it for unfiltered searches.
        let graphs = file::read(big.path()).unwrap().graphs;
        let tuned: Vec<usize> = graphs.iter().filter_map(|g| g.tuned_ef_search).collect();
        assert_eq!(tuned.len(), graphs.len());
        assert!(
            tuned.iter().all(|&ef| ef <= policy.params.ef_search),
            "{tuned:?}"
        );
        // A change after the graph was built is found (scanned exactly).
        let mut late = entry("late", "L", 0);
        late.vectors.insert(VectorKind::Text, q.clone());
        w.upsert(vec![late]).unwrap();
        w.delete(&["r7".into()]).unwrap();
        drop(w);
        let snap = LiveStore::open(big.path()).unwrap().snapshot();
        assert!(
            snap.info().search.starts_with("hnsw")
                && snap
                    .info()
                    .search
                    .contains(&format!("ef_search unfiltered Text {}", tuned[0])),
            "{}",
            snap.info().search
        );
        let ann = search(&*snap, Method::Ann, None, 10).unwrap();
        let exact = search(&*snap, Method::Exact, None, 10).unwrap();
        assert_eq!(ann[0].id, "late");
        let ids = |h: &[crate::store::Hit]| h.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
        let overlap = ids(&ann).iter().filter(|i| ids(&exact).contains(i)).count();
        assert!(overlap >= 9, "{:?} vs {:?}", ids(&ann), ids(&exact));
        assert!(
            ann.iter().all(|h| h.id != "r7"),
            "deleted products never come back"
        );
        // A filter inside the graph search; a very selective one (1%) still gives k.
        for clauses in [["bucket<50"], ["bucket=3"]] {
            let f = Filter::parse(&clauses).unwrap();
            let hits = search(&*snap, Method::Ann, Some(&f), 25).unwrap();
            assert_eq!(hits.len(), 25, "{clauses:?}");
            for h in &hits {
                let p = snap.product(&h.id).unwrap().unwrap();
                assert!(f.matches(&p), "{clauses:?}: {}", h.id);
            }
        }
        // `--exact` at index time removes the graphs at the next compaction.
        let mut w = EmbeddedWriter::open(big.path()).unwrap();
        assert!(w.set_ann(AnnPolicy {
            mode: AnnMode::Never,
            ..policy
        }));
        w.compact().unwrap();
        drop(w);
        let names = file_names(big.path());
        assert!(!names.iter().any(|n| n.starts_with("ann-")), "{names:?}");
        assert_eq!(
            LiveStore::open(big.path())
                .unwrap()
                .snapshot()
                .info()
                .search,
            "exact"
        );
    }

    #[test]
    fn a_damaged_graph_is_refused_with_its_name() {
        use crate::store::{AnnMode, AnnPolicy};
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        w.set_ann(AnnPolicy {
            mode: AnnMode::Always,
            ..AnnPolicy::default()
        });
        w.upsert(random_entries(300, 3)).unwrap();
        w.compact().unwrap();
        drop(w);
        let graph = dir.path().join("ann-image-000001.graph");
        let mut bytes = std::fs::read(&graph).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&graph, &bytes).unwrap();
        let err = format!("{:#}", LiveStore::open(dir.path()).err().unwrap());
        assert!(
            err.contains("ann-image-000001.graph") && err.contains("checksum"),
            "{err}"
        );
        std::fs::remove_file(&graph).unwrap();
        let err = format!("{:#}", LiveStore::open(dir.path()).err().unwrap());
        assert!(err.contains("graph is missing"), "{err}");
    }

    #[test]
    fn graphs_an_older_vitrina_wrote_are_searched_exactly_then_rebuilt() {
        use crate::store::{AnnMode, AnnPolicy};
        let dir = tempfile::tempdir().unwrap();
        let mut w = EmbeddedWriter::create(dir.path(), &meta()).unwrap();
        let policy = AnnPolicy {
            mode: AnnMode::Always,
            ..AnnPolicy::default()
        };
        w.set_ann(policy);
        w.upsert(random_entries(300, 3)).unwrap();
        w.compact().unwrap();
        drop(w);
        // The base file as vitrina wrote it with hnsw_rs: two dump files per graph.
        let base = file::read(dir.path()).unwrap();
        let old: Vec<GraphFile> = base
            .graphs
            .iter()
            .map(|g| GraphFile {
                format: file::GraphFormat::HnswRs,
                crc32: vec![0, 0],
                ..g.clone()
            })
            .collect();
        for g in &base.graphs {
            std::fs::remove_file(dir.path().join(&g.files()[0])).unwrap();
        }
        for name in old.iter().flat_map(|g| g.files()) {
            std::fs::write(dir.path().join(name), b"hnsw_rs dump").unwrap();
        }
        let extras = Extras {
            ann: policy,
            graphs: &old,
        };
        file::write(
            dir.path(),
            &base.meta,
            &base.segment,
            base.wal_generation,
            extras,
        )
        .unwrap();
        // Readers search exactly; the writer says so and rebuilds at its next compaction.
        let snap = LiveStore::open(dir.path()).unwrap().snapshot();
        assert_eq!(snap.info().search, "exact");
        let mut w = EmbeddedWriter::open(dir.path()).unwrap();
        assert!(
            w.notes.iter().any(|n| n.contains("older vitrina")),
            "{:?}",
            w.notes
        );
        StoreWriter::optimize(&mut w).unwrap();
        drop(w);
        let snap = LiveStore::open(dir.path()).unwrap().snapshot();
        assert!(
            snap.info().search.starts_with("hnsw"),
            "{}",
            snap.info().search
        );
        let names = file_names(dir.path());
        assert!(!names.iter().any(|n| n.contains(".hnsw.")), "{names:?}");
    }
}
