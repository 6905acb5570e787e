//! Where a store lives, as the `--index` argument names it: a folder (the embedded
//! store) or a PostgreSQL URL. This is the one place that picks an implementation; the
//! CLI and the server only see [`Store`], [`StoreWriter`] and [`Live`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Result;

use super::postgres::{PgLocation, PgStore, PgWriter};
use super::{EmbeddedWriter, LiveStore, Store, StoreInfo, StoreMeta, StoreWriter};

/// A store that other processes may write to while this one reads: each search takes
/// [`Live::current`] once and sees one consistent state.
pub trait Live: Send + Sync {
    /// The store as of the last refresh.
    fn current(&self) -> Arc<dyn Store>;
    /// Picks up writes made since (by this process or another); returns whether
    /// anything changed.
    fn refresh(&self) -> Result<bool>;
    fn info(&self) -> StoreInfo;
    /// Opens the same store for writing (the embedded store waits for its write lock;
    /// PostgreSQL reuses this reader's connections).
    fn writer(&self) -> Result<Box<dyn StoreWriter>>;
}

impl Live for LiveStore {
    fn current(&self) -> Arc<dyn Store> {
        self.snapshot()
    }

    fn refresh(&self) -> Result<bool> {
        LiveStore::refresh(self)
    }

    fn info(&self) -> StoreInfo {
        LiveStore::info(self)
    }

    fn writer(&self) -> Result<Box<dyn StoreWriter>> {
        Ok(Box::new(EmbeddedWriter::open(self.dir())?))
    }
}

/// A folder or a `postgres://` / `postgresql://` URL (`?table=NAME` picks the table).
#[derive(Debug, Clone)]
pub enum Location {
    Folder(PathBuf),
    Postgres(Box<PgLocation>),
}

impl FromStr for Location {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Location::Postgres(Box::new(s.parse()?)))
        } else {
            Ok(Location::Folder(PathBuf::from(s)))
        }
    }
}

impl std::fmt::Display for Location {
    /// The folder, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Folder(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

impl Location {
    /// Opens the store for reading.
    pub fn open(&self) -> Result<Arc<dyn Live>> {
        Ok(match self {
            Location::Folder(dir) => Arc::new(LiveStore::open(dir)?),
            Location::Postgres(pg) => Arc::new(PgStore::open(pg)?),
        })
    }

    /// Opens the store for writing, creating it for `meta`'s model when it does not
    /// exist yet; a store made by another model is refused.
    pub fn create(&self, meta: &StoreMeta) -> Result<Box<dyn StoreWriter>> {
        Ok(match self {
            Location::Folder(dir) => Box::new(EmbeddedWriter::create(dir, meta)?),
            Location::Postgres(pg) => Box::new(PgWriter::create(pg, meta)?),
        })
    }

    /// Opens an existing store for writing.
    pub fn writer(&self) -> Result<Box<dyn StoreWriter>> {
        Ok(match self {
            Location::Folder(dir) => Box::new(EmbeddedWriter::open(dir)?),
            Location::Postgres(pg) => Box::new(PgWriter::open(pg)?),
        })
    }

    /// The store's folder, for the embedded store.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Location::Folder(dir) => Some(dir),
            Location::Postgres(_) => None,
        }
    }
}
