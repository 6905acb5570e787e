//! What `vitrina` creates in a database, on first use:
//!
//! - the pgvector extension (>= 0.5, for HNSW);
//! - `vitrina_stores`: one row per table: the storage format, the model record (a table
//!   built by another model refuses its queries, as the embedded store does), the ANN
//!   settings and a change counter that readers poll (one tiny query) to know when
//!   their cached counts and facets are stale;
//! - one table per catalogue: `id` (primary key), `doc` (the stored product as JSONB),
//!   `fields` (every filterable field, trimmed and lower-cased, as JSONB with a GIN
//!   index: `fields @> '{"gender":"men"}'`), `nums` (the numeric ones as JSON numbers),
//!   `has_image`, `content_hash`, the vectors `text_vec`, `image_vec`, `average_vec`
//!   (`vector(dim)`) and `ti` (text . image, for blended scores);
//! - HNSW indexes (`vector_ip_ops`: the vectors are unit length, so inner product is
//!   cosine) when the ANN policy asks for them.

use ::postgres::error::SqlState;
use ::postgres::GenericClient;
use anyhow::{anyhow, bail, Result};

use super::PgLocation;
use crate::store::{AnnPolicy, StoreMeta, VectorKind};

/// The table layout this build reads and writes.
pub const FORMAT: i32 = 1;

pub fn column(kind: VectorKind) -> &'static str {
    match kind {
        VectorKind::Text => "text_vec",
        VectorKind::Image => "image_vec",
        VectorKind::Average => "average_vec",
    }
}

pub fn index_name(table: &str, kind: VectorKind) -> String {
    format!("{table}_{}_hnsw", column(kind))
}

/// A table's row in `vitrina_stores`.
pub struct Record {
    pub meta: StoreMeta,
    pub ann: AnnPolicy,
}

fn has_registry(c: &mut impl GenericClient) -> Result<bool, ::postgres::Error> {
    Ok(
        c.query_one("SELECT to_regclass('vitrina_stores') IS NOT NULL", &[])?
            .get(0),
    )
}

pub fn store_names(c: &mut impl GenericClient) -> Result<Vec<String>, ::postgres::Error> {
    if !has_registry(c)? {
        return Ok(Vec::new());
    }
    Ok(
        c.query("SELECT name FROM vitrina_stores ORDER BY name", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

/// The table's record, when `vitrina` made it.
pub fn read(c: &mut impl GenericClient, loc: &PgLocation, table: &str) -> Result<Option<Record>> {
    let explain = |e| loc.explain(e);
    if !has_registry(c).map_err(explain)? {
        return Ok(None);
    }
    let Some(row) = c
        .query_opt(
            "SELECT format, meta, ann FROM vitrina_stores WHERE name = $1",
            &[&table],
        )
        .map_err(explain)?
    else {
        return Ok(None);
    };
    let format: i32 = row.get(0);
    if format != FORMAT {
        bail!(
            "table {table} in {loc} was written by another version of vitrina (format {format}; this one reads {FORMAT}): \
             rebuild it with `vitrina index`, or copy it with the version that wrote it"
        );
    }
    let meta = serde_json::from_value(row.get(1))
        .map_err(|e| anyhow!("table {table} in {loc}: unreadable model record: {e}"))?;
    let ann = serde_json::from_value(row.get(2))
        .map_err(|e| anyhow!("table {table} in {loc}: unreadable ANN settings: {e}"))?;
    Ok(Some(Record { meta, ann }))
}

/// The pgvector extension, created when missing (which needs the right to create it).
fn ensure_extension(c: &mut impl GenericClient, loc: &PgLocation) -> Result<()> {
    let installed: Option<String> = c
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
            &[],
        )
        .map_err(|e| loc.explain(e))?
        .map(|r| r.get(0));
    let version = match installed {
        Some(v) => v,
        None => match c.batch_execute("CREATE EXTENSION IF NOT EXISTS vector") {
            Ok(()) => c
                .query_one(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                    &[],
                )
                .map_err(|e| loc.explain(e))?
                .get(0),
            Err(e) => {
                let code = e.code().cloned();
                return Err(match code {
                    Some(c) if c == SqlState::UNDEFINED_FILE || c == SqlState::UNDEFINED_OBJECT => anyhow!(
                        "the PostgreSQL server at {loc} has no pgvector extension installed: install pgvector >= 0.5 \
                         on the server (https://github.com/pgvector/pgvector#installation), or use scripts/postgres.sh for a local one"
                    ),
                    Some(c) if c == SqlState::INSUFFICIENT_PRIVILEGE => anyhow!(
                        "the pgvector extension is not enabled in {loc}, and this user may not enable it: \
                         ask an administrator to run `CREATE EXTENSION vector;` in this database"
                    ),
                    _ => loc.explain(e),
                });
            }
        },
    };
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.as_slice() < [0, 5].as_slice() {
        bail!("pgvector {version} at {loc} has no HNSW indexes: upgrade the extension to >= 0.5 (ALTER EXTENSION vector UPDATE)");
    }
    Ok(())
}

/// Creates the extension, the registry and the table for `meta` when missing, or checks
/// that an existing table was built by the same model. Serialised by an advisory lock,
/// so concurrent first uses do not collide.
pub fn ensure(
    c: &mut ::postgres::Client,
    loc: &PgLocation,
    table: &str,
    meta: &StoreMeta,
) -> Result<Record> {
    ensure_extension(c, loc)?;
    let explain = |e| loc.explain(e);
    let mut tx = c.transaction().map_err(explain)?;
    tx.execute("SELECT pg_advisory_xact_lock(7613068190421)", &[])
        .map_err(explain)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS vitrina_stores (
            name text PRIMARY KEY,
            format integer NOT NULL,
            meta jsonb NOT NULL,
            ann jsonb NOT NULL,
            version bigint NOT NULL DEFAULT 0)",
    )
    .map_err(explain)?;
    if let Some(record) = read(&mut tx, loc, table)? {
        record.meta.check_same_model(
            meta,
            &format!("table {table} in {loc}"),
            "index into another table (?table=NAME), or drop this one to rebuild it",
        )?;
        tx.commit().map_err(explain)?;
        return Ok(record);
    }
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(explain)?
        .get(0);
    if exists {
        bail!("{loc} already has a table {table} that vitrina did not make: name another with ?table=NAME");
    }
    let d = meta.dim;
    tx.batch_execute(&format!(
        "CREATE TABLE {table} (
            id text PRIMARY KEY,
            doc jsonb NOT NULL,
            fields jsonb NOT NULL,
            nums jsonb NOT NULL,
            has_image boolean NOT NULL,
            content_hash bigint NOT NULL,
            text_vec vector({d}) NOT NULL,
            image_vec vector({d}),
            average_vec vector({d}),
            ti real);
         CREATE INDEX {table}_fields ON {table} USING gin (fields jsonb_path_ops);"
    ))
    .map_err(explain)?;
    let ann = AnnPolicy::default();
    tx.execute(
        "INSERT INTO vitrina_stores (name, format, meta, ann) VALUES ($1, $2, $3, $4)",
        &[
            &table,
            &FORMAT,
            &serde_json::to_value(meta)?,
            &serde_json::to_value(ann)?,
        ],
    )
    .map_err(explain)?;
    tx.commit().map_err(explain)?;
    Ok(Record {
        meta: meta.clone(),
        ann,
    })
}

/// The vector kinds that have an HNSW index.
pub fn indexed_kinds(
    c: &mut impl GenericClient,
    table: &str,
    kinds: &[VectorKind],
) -> Result<Vec<VectorKind>, ::postgres::Error> {
    let mut out = Vec::new();
    for kind in kinds {
        let present: bool = c
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&index_name(table, *kind)],
            )?
            .get(0);
        if present {
            out.push(*kind);
        }
    }
    Ok(out)
}
