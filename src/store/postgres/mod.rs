//! The PostgreSQL store: one table per catalogue, with the product's fields as JSONB and
//! its three vectors as pgvector columns, behind the same [`Store`](super::Store) and
//! [`StoreWriter`](super::StoreWriter) traits as the embedded store.
//!
//! - `schema`: the tables and indexes `vitrina` creates on first use, and the record of
//!   the model (and format) a table was built with;
//! - `sql`: filters and vector spaces as SQL;
//! - `store`: reads ([`PgStore`]) and transactional writes ([`PgWriter`]).
//!
//! This file parses the URL and connects. Connections come from an r2d2 pool, so a
//! server survives a database restart: requests fail with [`Unavailable`] (503) while
//! it is down, and new connections are made when it is back.

mod schema;
mod sql;
mod store;

pub use store::{PgStore, PgWriter};

use std::str::FromStr;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::NoTls;
use anyhow::{anyhow, bail, Result};
use r2d2_postgres::PostgresConnectionManager;

use super::Unavailable;

pub(crate) type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
pub(crate) type Client = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Connections per process: searches run on tokio's blocking pool, a few at a time
/// per core.
const POOL_SIZE: u32 = 16;
/// How long a request waits for a connection before it is answered 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one connection attempt may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `postgres://USER[:PASSWORD]@HOST:PORT/DB[?table=NAME&...]`.
#[derive(Clone)]
pub struct PgLocation {
    config: ::postgres::Config,
    /// The table, when the URL names one.
    pub table: Option<String>,
    /// The URL with the password hidden, for messages.
    shown: String,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl FromStr for PgLocation {
    type Err = anyhow::Error;

    fn from_str(url: &str) -> Result<Self> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut table = None;
        let mut rest = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k == "table" {
                table = Some(v.into_owned());
            } else {
                rest.append_pair(&k, &v);
            }
        }
        let rest = rest.finish();
        let plain = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{rest}")
        };
        let shown = hide_password(url);
        let mut config = ::postgres::Config::from_str(&plain)
            .map_err(|e| anyhow!("invalid PostgreSQL URL {shown}: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("vitrina");
        }
        if let Some(t) = &table {
            check_table_name(t)?;
        }
        Ok(PgLocation {
            config,
            table,
            shown,
        })
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((user_info, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match user_info.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Table names become SQL identifiers: plain lower-case ones only, so nothing needs
/// quoting rules and nothing can be injected.
pub(crate) fn check_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(
            "table name {name:?}: use 1 to 63 lower-case letters, digits and underscores, starting with a letter"
        );
    }
    Ok(())
}

/// A table name from a catalogue's name (`Myntra-2024` -> `myntra_2024`).
pub(crate) fn table_for_catalog(catalog: &str) -> String {
    let mut name: String = catalog
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "catalog_");
    }
    name.truncate(63);
    name
}

impl PgLocation {
    /// A pool of connections, after one direct connection that turns the usual
    /// mistakes (server down, wrong password, no such database) into one clear error.
    pub(crate) fn connect(&self) -> Result<Pool> {
        let client = self.config.connect(NoTls).map_err(|e| self.explain(e))?;
        drop(client);
        let manager = PostgresConnectionManager::new(self.config.clone(), NoTls);
        Ok(r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager))
    }

    /// A database error as a user can act on it; a lost or refused connection becomes
    /// [`Unavailable`].
    pub(crate) fn explain(&self, e: ::postgres::Error) -> anyhow::Error {
        let Some(db) = e.as_db_error() else {
            let reason = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            return Unavailable(format!(
                "cannot reach PostgreSQL at {self}: {reason}. Is the server running and the URL right? \
                 (a local test server: scripts/postgres.sh start)"
            ))
            .into();
        };
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            anyhow!(
                "PostgreSQL at {self} refused the login: {}. Check the user and password in the URL \
                 (postgres://USER:PASSWORD@HOST:PORT/DB) and the server's pg_hba.conf",
                db.message()
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            anyhow!(
                "{}: create the database first (createdb NAME, or CREATE DATABASE) or name another in the URL ({self})",
                db.message()
            )
        } else if *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            Unavailable(format!("PostgreSQL at {self}: {}", db.message())).into()
        } else {
            anyhow!("PostgreSQL at {self}: {}", db.message())
        }
    }

    /// One connection from the pool; [`Unavailable`] when none can be had in time.
    pub(crate) fn client(&self, pool: &Pool) -> Result<Client> {
        pool.get().map_err(|e| {
            // The pool only says it timed out; a direct attempt says why.
            match self.config.connect(NoTls) {
                Err(direct) => self.explain(direct),
                Ok(_) => {
                    Unavailable(format!("no free connection to PostgreSQL at {self}: {e}")).into()
                }
            }
        })
    }

    /// Drops the URL's table and its record (benchmarks and tests start afresh).
    pub fn drop_table(&self) -> Result<()> {
        let Some(table) = &self.table else {
            bail!("{self}: name the table to drop with ?table=NAME");
        };
        let mut c = self.config.connect(NoTls).map_err(|e| self.explain(e))?;
        c.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .map_err(|e| self.explain(e))?;
        if !schema::store_names(&mut c)
            .map_err(|e| self.explain(e))?
            .is_empty()
        {
            c.execute("DELETE FROM vitrina_stores WHERE name = $1", &[table])
                .map_err(|e| self.explain(e))?;
        }
        Ok(())
    }

    /// The table to use: the URL's, else the only store in the database.
    pub(crate) fn table_or_only(&self, pool: &Pool) -> Result<String> {
        if let Some(t) = &self.table {
            return Ok(t.clone());
        }
        let names = schema::store_names(&mut *self.client(pool)?).map_err(|e| self.explain(e))?;
        let chosen: Result<String> = match names.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("{self} holds no vitrina index yet: build one with `vitrina index --index {self}?table=NAME`"),
            many => bail!(
                "{self} holds several vitrina indexes ({}): add ?table=NAME to the URL",
                many.join(", ")
            ),
        };
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_table_and_hide_the_password() {
        let loc: PgLocation =
            "postgres://shop:s3cret@127.0.0.1:5432/catalog?table=myntra&sslmode=disable"
                .parse()
                .unwrap();
        assert_eq!(loc.table.as_deref(), Some("myntra"));
        assert!(!loc.to_string().contains("s3cret"), "{loc}");
        assert_eq!(loc.config.get_dbname(), Some("catalog"));
        let loc: PgLocation = "postgresql://shop@localhost/catalog".parse().unwrap();
        assert_eq!(loc.table, None);
        let err = "postgres://a@b/c?table=Robert');DROP"
            .parse::<PgLocation>()
            .unwrap_err();
        assert!(err.to_string().contains("table name"), "{err}");
        assert!("postgres://a@b:notaport/c".parse::<PgLocation>().is_err());
    }

    #[test]
    fn catalogue_names_become_table_names() {
        assert_eq!(table_for_catalog("myntra"), "myntra");
        assert_eq!(table_for_catalog("Fashion-200k"), "fashion_200k");
        assert_eq!(table_for_catalog("2024 shop"), "catalog_2024_shop");
        assert!(check_table_name(&table_for_catalog("Ünïcode shop")).is_ok());
    }
}
