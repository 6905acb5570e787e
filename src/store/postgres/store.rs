//! Reads and writes on a PostgreSQL table (layout in `schema`).
//!
//! Searches run in SQL: `ORDER BY vec <#> query LIMIT k` with the candidates' conditions
//! in the same `WHERE`, so a filter decides which products are scored. With an HNSW
//! index, pgvector 0.6 filters the `hnsw.ef_search` nearest rows it visits and can
//! return fewer than k when the filter is selective (it has no iterative scans; 0.8's
//! `hnsw.iterative_scan` keeps walking the graph instead); a short answer is then
//! rerun as an exact scan of the filtered rows, which the GIN index on `fields` makes
//! cheap exactly when the filter is selective. So k results come back whenever k
//! products match.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use ::postgres::Transaction;
use anyhow::{anyhow, bail, Context, Result};

use super::schema::{self, column, index_name, Record};
use super::sql::{self, Params};
use super::{table_for_catalog, Client, PgLocation, Pool};
use crate::store::scan::dot;
use crate::store::{
    sort_by_score_then_id, AnnPolicy, Candidates, Entry, Facets, Hit, Live, Method, Space, Store,
    StoreInfo, StoreMeta, StoreWriter, StoredProduct, TextIndex, VectorKind,
};

/// What readers cache between changes: refreshed when the table's change counter moves.
struct Cached {
    version: i64,
    len: usize,
    with_image: usize,
    /// Computed on first use (it reads every product), once per version.
    facets: OnceLock<Arc<Facets>>,
    /// Built on first use from every product, once per version (like the facets).
    text_index: OnceLock<Arc<TextIndex>>,
    ann: AnnPolicy,
    indexed: Vec<VectorKind>,
}

/// A table opened for reading. Cheap to clone (the pool and the cache are shared).
#[derive(Clone)]
pub struct PgStore {
    loc: PgLocation,
    pool: Pool,
    table: String,
    meta: Arc<StoreMeta>,
    cached: Arc<RwLock<Arc<Cached>>>,
    /// Set by this process's writes: the next read refreshes the cache first.
    stale: Arc<AtomicBool>,
}

impl PgStore {
    /// Opens an existing table (the URL's, or the database's only one).
    pub fn open(loc: &PgLocation) -> Result<Self> {
        let pool = loc.connect()?;
        let table = loc.table_or_only(&pool)?;
        let Some(record) = schema::read(&mut *loc.client(&pool)?, loc, &table)? else {
            bail!(
                "{loc} has no vitrina table {table:?}: build it with `vitrina index --index {loc}`"
            );
        };
        Self::with_record(loc, pool, table, record)
    }

    fn with_record(loc: &PgLocation, pool: Pool, table: String, record: Record) -> Result<Self> {
        let store = PgStore {
            loc: loc.clone(),
            pool,
            table,
            meta: Arc::new(record.meta),
            cached: Arc::new(RwLock::new(Arc::new(Cached {
                version: -1,
                len: 0,
                with_image: 0,
                facets: OnceLock::new(),
                text_index: OnceLock::new(),
                ann: record.ann,
                indexed: Vec::new(),
            }))),
            stale: Arc::new(AtomicBool::new(false)),
        };
        store.reload()?;
        Ok(store)
    }

    fn client(&self) -> Result<Client> {
        self.loc.client(&self.pool)
    }

    fn cached(&self) -> Arc<Cached> {
        if self.stale.swap(false, Ordering::AcqRel) && self.reload().is_err() {
            // Keep the last state; try again on the next read.
            self.stale.store(true, Ordering::Release);
        }
        self.last()
    }

    fn last(&self) -> Arc<Cached> {
        self.cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads counts, facets and indexes when the change counter moved.
    fn reload(&self) -> Result<bool> {
        let mut c = self.client()?;
        let explain = |e| self.loc.explain(e);
        let row = c
            .query_opt(
                "SELECT version, ann FROM vitrina_stores WHERE name = $1",
                &[&self.table],
            )
            .map_err(explain)?
            .ok_or_else(|| anyhow!("table {} was dropped from {}", self.table, self.loc))?;
        let version: i64 = row.get(0);
        if version == self.last().version {
            return Ok(false);
        }
        let ann: AnnPolicy = serde_json::from_value(row.get(1))?;
        let counts = c
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE has_image) FROM {}",
                    self.table
                ),
                &[],
            )
            .map_err(explain)?;
        let indexed =
            schema::indexed_kinds(&mut *c, &self.table, &self.meta.kinds).map_err(explain)?;
        let fresh = Cached {
            version,
            len: counts.get::<_, i64>(0) as usize,
            with_image: counts.get::<_, i64>(1) as usize,
            facets: OnceLock::new(),
            text_index: OnceLock::new(),
            ann,
            indexed,
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(true)
    }

    /// One search in a transaction (its `SET LOCAL`s end with it).
    fn query_hits(
        &self,
        settings: &str,
        distance: &str,
        conditions: &str,
        k: usize,
        params: &Params,
        tie_break: bool,
    ) -> Result<Vec<Hit>> {
        let mut c = self.client()?;
        let explain = |e| self.loc.explain(e);
        let mut tx = c.transaction().map_err(explain)?;
        tx.batch_execute(settings).map_err(explain)?;
        // The index is only used for `ORDER BY distance LIMIT k`: the id as a second
        // key (equal scores in a stable order) is added for exact scans only.
        let order = if tie_break {
            format!("{distance}, id")
        } else {
            distance.to_string()
        };
        let rows = tx
            .query(
                &format!(
                    "SELECT id, {distance} AS d FROM {} WHERE {conditions} ORDER BY {order} LIMIT {k}",
                    self.table
                ),
                &params.refs(),
            )
            .map_err(explain)?;
        tx.commit().map_err(explain)?;
        let mut hits: Vec<Hit> = rows
            .iter()
            .map(|r| Hit {
                id: r.get(0),
                score: -(r.get::<_, f64>(1) as f32),
            })
            .collect();
        sort_by_score_then_id(&mut hits);
        Ok(hits)
    }
}

impl Live for PgStore {
    fn current(&self) -> Arc<dyn Store> {
        Arc::new(self.clone())
    }

    fn refresh(&self) -> Result<bool> {
        self.reload()
    }

    fn info(&self) -> StoreInfo {
        Store::info(self)
    }

    fn writer(&self) -> Result<Box<dyn StoreWriter>> {
        Ok(Box::new(PgWriter {
            store: self.clone(),
        }))
    }
}

impl Store for PgStore {
    fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    fn len(&self) -> usize {
        self.cached().len
    }

    fn top_k(
        &self,
        space: Space,
        query: &[f32],
        k: usize,
        candidates: &Candidates,
    ) -> Result<Vec<Hit>> {
        self.meta.check_query(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let cached = self.cached();
        let mut params = Params::default();
        let q = params.push(pgvector::Vector::from(query.to_vec()));
        let distance = sql::distance(space, &q, &mut params);
        let conditions = sql::conditions(candidates, &mut params);
        let graph = match space {
            Space::Kind(kind) => cached.indexed.contains(&kind).then_some(kind),
            Space::Blend { .. } => None,
        };
        let use_graph = match (candidates.method, graph) {
            (Method::Exact, _) | (Method::Auto, None) => false,
            (Method::Ann, None) => bail!(
                "{} has no HNSW index for these vectors ({} products; indexes are built above the threshold, \
                 or always with `vitrina index --ann`); search with --exact",
                self.loc,
                cached.len
            ),
            (_, Some(_)) => true,
        };
        let exact = "SET LOCAL enable_indexscan = off";
        if use_graph {
            // pgvector caps ef_search at 1000.
            let ef = candidates
                .ef_search
                .unwrap_or(cached.ann.params.ef_search)
                .clamp(k.min(1000), 1000);
            let hits = self.query_hits(
                &format!("SET LOCAL hnsw.ef_search = {ef}"),
                &distance,
                &conditions,
                k,
                &params,
                false,
            )?;
            if hits.len() >= k || !candidates.restricted() {
                return Ok(hits);
            }
        }
        self.query_hits(exact, &distance, &conditions, k, &params, true)
    }

    fn vectors(&self, kind: VectorKind, ids: &[&str]) -> Result<Vec<Option<Vec<f32>>>> {
        if !self.meta.kinds.contains(&kind) {
            bail!("this store has no {kind:?} vectors");
        }
        let list: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT id, {} FROM {} WHERE id = ANY($1)",
                    column(kind),
                    self.table
                ),
                &[&list],
            )
            .map_err(|e| self.loc.explain(e))?;
        let found: std::collections::HashMap<String, Vec<f32>> = rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, pgvector::Vector>(1).to_vec()))
            .collect();
        // An id asked twice gets its vector twice, as from the embedded store.
        Ok(ids.iter().map(|id| found.get(*id).cloned()).collect())
    }

    fn product(&self, id: &str) -> Result<Option<StoredProduct>> {
        let row = self
            .client()?
            .query_opt(
                &format!("SELECT doc FROM {} WHERE id = $1", self.table),
                &[&id],
            )
            .map_err(|e| self.loc.explain(e))?;
        row.map(|r| {
            serde_json::from_value(r.get(0))
                .with_context(|| format!("table {}: product {id:?} is unreadable", self.table))
        })
        .transpose()
    }

    fn products(&self) -> Result<Vec<StoredProduct>> {
        let rows = self
            .client()?
            .query(&format!("SELECT doc FROM {} ORDER BY id", self.table), &[])
            .map_err(|e| self.loc.explain(e))?;
        rows.iter()
            .map(|r| {
                serde_json::from_value(r.get(0))
                    .with_context(|| format!("table {}: an unreadable product", self.table))
            })
            .collect()
    }

    fn facets(&self) -> Result<Arc<Facets>> {
        let cached = self.cached();
        if let Some(f) = cached.facets.get() {
            return Ok(f.clone());
        }
        // Counted in SQL: shipping 44k products to count them took a second.
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT 'broad', doc->>'broad', count(*) FROM {t} WHERE doc->>'broad' IS NOT NULL GROUP BY 2
                     UNION ALL
                     SELECT 'fine', doc->>'fine', count(*) FROM {t} WHERE doc->>'fine' IS NOT NULL GROUP BY 2
                     UNION ALL
                     SELECT a.key, a.value, count(*) FROM {t}, jsonb_each_text(doc->'attributes') a GROUP BY 1, 2",
                    t = self.table
                ),
                &[],
            )
            .map_err(|e| self.loc.explain(e))?;
        let mut counts = crate::store::filter::Counts::new();
        for r in rows {
            let n: i64 = r.get(2);
            counts
                .entry(r.get(0))
                .or_default()
                .insert(r.get(1), n as usize);
        }
        let facets = Arc::new(Facets::from_counts(counts));
        Ok(cached.facets.get_or_init(|| facets).clone())
    }

    fn text_index(&self) -> Result<Arc<TextIndex>> {
        let cached = self.cached();
        if let Some(index) = cached.text_index.get() {
            return Ok(index.clone());
        }
        // The products are read once per table version; PostgreSQL's own full-text
        // search (tsvector) would keep the index in the table but ranks with its own
        // ts_rank, not BM25, so both stores would answer keyword queries differently.
        let index = Arc::new(TextIndex::build(self.products()?, Default::default()));
        Ok(cached.text_index.get_or_init(|| index).clone())
    }

    fn info(&self) -> StoreInfo {
        let cached = self.cached();
        let bytes = self.client().ok().and_then(|mut c| {
            c.query_one(
                "SELECT pg_total_relation_size(to_regclass($1))",
                &[&self.table],
            )
            .ok()
            .map(|r| r.get::<_, i64>(0) as u64)
        });
        let p = cached.ann.params;
        StoreInfo {
            products: cached.len,
            products_with_image: cached.with_image,
            model: self.meta.model.clone(),
            dim: self.meta.dim,
            kinds: self.meta.kinds.clone(),
            catalog: self.meta.catalog.clone(),
            search: if cached.indexed.is_empty() {
                "exact (sequential scan; filters through the GIN index)".into()
            } else {
                format!(
                    "pgvector HNSW on {:?} (m {}, ef_construction {}, ef_search {}), exact on request",
                    cached.indexed, p.m, p.ef_construction, p.ef_search
                )
            },
            bytes_on_disk: bytes,
            location: format!("{} (table {})", self.loc, self.table),
        }
    }
}

/// A table opened for writing: every batch is one transaction.
pub struct PgWriter {
    store: PgStore,
}

impl PgWriter {
    /// Creates the table for `meta` (named by the URL, else after the catalogue) or
    /// opens it, refusing one built by another model.
    pub fn create(loc: &PgLocation, meta: &StoreMeta) -> Result<Self> {
        let pool = loc.connect()?;
        let table = loc
            .table
            .clone()
            .unwrap_or_else(|| table_for_catalog(&meta.catalog));
        let record = schema::ensure(&mut *loc.client(&pool)?, loc, &table, meta)?;
        Ok(PgWriter {
            store: PgStore::with_record(loc, pool, table, record)?,
        })
    }

    pub fn open(loc: &PgLocation) -> Result<Self> {
        Ok(PgWriter {
            store: PgStore::open(loc)?,
        })
    }

    /// Runs `work` in one transaction that also moves the change counter.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Transaction, &str) -> Result<T>,
    ) -> Result<T> {
        let store = &self.store;
        let explain = |e| store.loc.explain(e);
        let mut c = store.client()?;
        let mut tx = c.transaction().map_err(explain)?;
        let out = work(&mut tx, &store.table)?;
        tx.execute(
            "UPDATE vitrina_stores SET version = version + 1 WHERE name = $1",
            &[&store.table],
        )
        .map_err(explain)?;
        tx.commit().map_err(explain)?;
        store.stale.store(true, Ordering::Release);
        Ok(out)
    }
}

impl StoreWriter for PgWriter {
    fn upsert(&mut self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for e in &entries {
            self.store.meta.check(e)?;
        }
        let loc = self.store.loc.clone();
        self.transaction(|tx, table| {
            let explain = |e| loc.explain(e);
            let statement = tx
                .prepare(&format!(
                    "INSERT INTO {table} (id, doc, fields, nums, has_image, content_hash, text_vec, image_vec, average_vec, ti) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, fields = EXCLUDED.fields, nums = EXCLUDED.nums, \
                     has_image = EXCLUDED.has_image, content_hash = EXCLUDED.content_hash, text_vec = EXCLUDED.text_vec, \
                     image_vec = EXCLUDED.image_vec, average_vec = EXCLUDED.average_vec, ti = EXCLUDED.ti"
                ))
                .map_err(explain)?;
            for e in entries {
                let vector = |kind| e.vectors.get(&kind).map(|v| pgvector::Vector::from(v.clone()));
                let ti = match (e.vectors.get(&VectorKind::Text), e.vectors.get(&VectorKind::Image)) {
                    (Some(t), Some(i)) => Some(dot(t, i)),
                    _ => None,
                };
                let (fields, nums) = sql::fields(&e.product.product);
                let text = vector(VectorKind::Text);
                let image = vector(VectorKind::Image);
                let average = vector(VectorKind::Average);
                tx.execute(
                    &statement,
                    &[
                        &e.product.id(),
                        &serde_json::to_value(&e.product)?,
                        &fields,
                        &nums,
                        &e.product.has_image,
                        &(e.product.content_hash as i64),
                        &text,
                        &image,
                        &average,
                        &ti,
                    ],
                )
                .map_err(explain)?;
            }
            Ok(())
        })
    }

    fn delete(&mut self, ids: &[String]) -> Result<Vec<String>> {
        let loc = self.store.loc.clone();
        let ids = ids.to_vec();
        self.transaction(|tx, table| {
            let rows = tx
                .query(
                    &format!("DELETE FROM {table} WHERE id = ANY($1) RETURNING id"),
                    &[&ids],
                )
                .map_err(|e| loc.explain(e))?;
            let gone: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
            Ok(ids
                .iter()
                .filter(|id| gone.contains(*id))
                .cloned()
                .collect())
        })
    }

    fn current(&self) -> &dyn Store {
        &self.store
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    fn ann_policy(&self) -> AnnPolicy {
        self.store.cached().ann
    }

    fn set_ann(&mut self, policy: AnnPolicy) -> Result<()> {
        if policy == self.ann_policy() {
            return Ok(());
        }
        let rebuild = policy.params.m != self.ann_policy().params.m
            || policy.params.ef_construction != self.ann_policy().params.ef_construction;
        let kinds = self.store.meta.kinds.clone();
        let loc = self.store.loc.clone();
        self.transaction(|tx, table| {
            let explain = |e| loc.explain(e);
            tx.execute(
                "UPDATE vitrina_stores SET ann = $2 WHERE name = $1",
                &[&table, &serde_json::to_value(policy)?],
            )
            .map_err(explain)?;
            if rebuild {
                // Built with other graph parameters: rebuilt by the next optimize.
                for kind in &kinds {
                    tx.batch_execute(&format!(
                        "DROP INDEX IF EXISTS {}",
                        index_name(table, *kind)
                    ))
                    .map_err(explain)?;
                }
            }
            Ok(())
        })
    }

    /// Builds the HNSW indexes the policy asks for (or drops them), then refreshes the
    /// planner's statistics. Once built, PostgreSQL keeps an index up to date on every
    /// write.
    fn optimize(&mut self) -> Result<()> {
        let policy = self.ann_policy();
        let want = policy.builds(self.store.len());
        let kinds = self.store.meta.kinds.clone();
        let have = self.store.cached().indexed.clone();
        let loc = self.store.loc.clone();
        let table = self.store.table.clone();
        let mut c = self.store.client()?;
        let explain = |e| loc.explain(e);
        for kind in kinds {
            let name = index_name(&table, kind);
            if want && !have.contains(&kind) {
                c.batch_execute(&format!(
                    "SET maintenance_work_mem = '1GB';
                     CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw ({} vector_ip_ops) \
                     WITH (m = {}, ef_construction = {})",
                    column(kind),
                    policy.params.m,
                    policy.params.ef_construction
                ))
                .map_err(explain)?;
            } else if !want && have.contains(&kind) {
                c.batch_execute(&format!("DROP INDEX IF EXISTS {name}"))
                    .map_err(explain)?;
            }
        }
        c.batch_execute(&format!("ANALYZE {table}"))
            .map_err(explain)?;
        drop(c);
        // Readers learn of the new indexes through the change counter.
        self.transaction(|_, _| Ok(()))
    }
}
