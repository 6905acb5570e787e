//! The `vitrina` command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use vitrina::catalog::{Catalog, CatalogSpec, ProductInput, Split};
use vitrina::encoder::preprocess::load_image;
use vitrina::encoder::{minilm_dir, MiniLm, Model};
use vitrina::eval::{self, EvalConfig};
use vitrina::indexing::{self, Report, SyncOptions};
use vitrina::search::{diversify, Diversify, Mode, SearchRequest, Searcher};
use vitrina::store::{Location, Store, StoreMeta};
use vitrina::train::{train_and_save, training_device, Augment, Parent, TrainConfig, TrainingData};

#[derive(Parser)]
#[command(
    name = "vitrina",
    version,
    about = "Multimodal product search: index a catalogue once, search it by text or image"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed a catalogue's products (text, image, average) into an index folder; on an
    /// existing index, sync it: add new products, re-embed changed ones, keep the rest.
    Index(IndexArgs),
    /// Add or replace products given as JSON lines (one product per line).
    Upsert(UpsertArgs),
    /// Remove products by id.
    Delete(DeleteArgs),
    /// Print one stored product as JSON.
    Get(GetArgs),
    /// "More like this": the products closest to a stored product (itself left out).
    Similar(SimilarArgs),
    /// Print what an index holds: products, model, vector kinds, search structure, size.
    Info(InfoArgs),
    /// Copy an index to another store (a folder or PostgreSQL, either way) without
    /// re-embedding: products, their three vectors and the model record.
    Copy(CopyArgs),
    /// Search an index by text, by image, or both.
    Search(SearchArgs),
    /// Train the image tower on a catalogue's image/title pairs (LiT: text tower frozen).
    Train(TrainArgs),
    /// Run the reference experiment: precision@k per search type, keyword baseline,
    /// diversification figures; writes Markdown, CSV, JSON and a PNG plot.
    Eval(EvalArgs),
    /// Measure throughput and latency (text and image towers, diversification, queries),
    /// against sentence-transformers when --peer-python is given; prints a table.
    Bench(BenchArgs),
    /// Serve an index over HTTP: a JSON search API and a web page.
    Serve(ServeArgs),
    /// Write vectors of texts (one a line) or photos (a folder) with an index's model
    /// (or --model), as JSON lines or a NumPy .npy matrix, for other tools.
    Embed(EmbedArgs),
}

#[derive(Args)]
struct EmbedArgs {
    /// Embed with the model recorded in this index (a folder or PostgreSQL URL), so the
    /// vectors equal the ones it stores; without it, --model/--model-dir or the built-in one.
    #[arg(long)]
    index: Option<Location>,
    /// A text file: one text a line, each gets a vector.
    #[arg(long, required_unless_present = "images", conflicts_with = "images")]
    text: Option<PathBuf>,
    /// A folder of photos (.jpg, .jpeg, .png, .webp; not its subfolders), in file-name order.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Where to write: FILE.jsonl (one {"line","text"|"image","vector"} a line) or FILE.npy
    /// (float32, rows in input order).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// The index: a folder built by `vitrina index`, or a PostgreSQL URL
    /// (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// A file holding the write key: enables PUT/DELETE /api/products/{id} for requests
    /// carrying `Authorization: Bearer KEY` (also read from $VITRINA_WRITE_KEY).
    #[arg(long)]
    write_key_file: Option<PathBuf>,
    /// Where images uploaded through the write API are kept (default: `uploads/` in the
    /// index folder; needed to accept images when the index is in PostgreSQL).
    #[arg(long)]
    uploads: Option<PathBuf>,
    /// Searches that may run at once (default: 8 per core: most of a search's time is
    /// waiting for its text's batch, and a wider gate lets batches grow); more wait up
    /// to --queue-ms, then get 503 with Retry-After.
    #[arg(long)]
    max_searches: Option<usize>,
    /// Photo queries decoded and embedded at once (default: the cores).
    #[arg(long)]
    max_image_queries: Option<usize>,
    /// How long a request may wait for its turn (milliseconds).
    #[arg(long, default_value_t = 1000)]
    queue_ms: u64,
    /// Connections open at once; further clients wait until one closes.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Close a connection after this long without traffic (milliseconds).
    #[arg(long, default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// A request's headers must arrive within this long (milliseconds), however slowly
    /// the bytes trickle in; then the connection is closed.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// A web origin (https://shop.example) whose pages may call this API from the browser;
    /// repeatable; `*` for any. Without it, no CORS headers are sent.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Text queries whose vectors are kept for when they come again (0: no cache; each
    /// entry takes the model's dimension in floats, 1.5 KB for the built-in model).
    #[arg(long, default_value_t = 10_000)]
    query_cache: usize,
    /// Text queries asked at the same time are encoded in one run of the text tower, up
    /// to this many (1: each alone). Batches cost far less per query on a CPU.
    #[arg(long, default_value_t = vitrina::encoder::MAX_QUERY_BATCH)]
    query_batch: usize,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct UpsertArgs {
    /// A folder, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    /// JSON lines: {"id": "...", "text": "...", "image": "path/relative/to/this/file",
    /// "broad": "...", "fine": "...", "attributes": {...}}; image, categories and
    /// attributes optional.
    products: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct DeleteArgs {
    /// A folder, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    #[arg(required = true)]
    ids: Vec<String>,
}

#[derive(Args)]
struct GetArgs {
    /// A folder, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    id: String,
}

#[derive(Args)]
struct SimilarArgs {
    /// A folder, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    /// The product whose look-alikes to find.
    id: String,
    /// Which of its vectors to compare: image ("visually similar"), description, or
    /// average ("you may also like"; the default where the index has images).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    #[arg(short, default_value_t = vitrina::search::DEFAULT_K)]
    k: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    list: ListArgs,
}

/// What narrows and reorders a result list, shared by `search` and `similar`.
#[derive(Args)]
struct ListArgs {
    /// Visual diversification; `--diversify` alone is the method chosen on the Myntra
    /// test split's trade-off curve (README, Diversification).
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "mmr")]
    diversify: DiversifyArg,
    /// MMR trade-off: 1 = pure relevance, 0 = pure variety.
    #[arg(long, default_value_t = diversify::MMR_LAMBDA)]
    lambda: f32,
    /// Dedup: photos closer than this (image cosine) to one ranked above count as
    /// near duplicates.
    #[arg(long, default_value_t = diversify::DEDUP_THRESHOLD)]
    threshold: f32,
    /// Only products that pass: FIELD=VALUE[,VALUE...] (any of), FIELD!=VALUE,
    /// FIELD>=NUMBER (also <=, >, <); repeat it, every filter must hold. Fields: broad,
    /// fine and the catalogue's attributes (`GET /api/facets` lists them).
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Hybrid mode: how the keyword and vector lists are fused (rrf or blend; default:
    /// the setting chosen on the Myntra train split).
    #[arg(long)]
    fusion: Option<String>,
    /// Hybrid mode: the keyword list's weight, 0..1 (the vector list gets the rest).
    #[arg(long)]
    keyword_weight: Option<f32>,
    /// How much more products with the field values the query's words name score
    /// ("red" -> baseColour Red); 0 turns it off.
    #[arg(long)]
    boost: Option<f32>,
    /// Fields whose named values are not boosted; repeatable.
    #[arg(long)]
    ignore: Vec<String>,
    /// Visual feedback: how many first results refine the vector query before it is
    /// searched again (0: off; default 5 in image, average and hybrid mode, off in
    /// description mode).
    #[arg(long, value_name = "RESULTS")]
    feedback: Option<usize>,
    /// Visual feedback: the query's own weight against its first results' mean, 0..1
    /// (default 0.5).
    #[arg(long, value_name = "WEIGHT")]
    feedback_weight: Option<f32>,
    /// Title feedback: re-score the list by how well its products' titles agree with
    /// its first 5 results' titles, with this weight, 0..10 (0: off; default 1 in image
    /// mode, off in the others).
    #[arg(long, value_name = "WEIGHT")]
    title_feedback: Option<f32>,
}

impl ListArgs {
    /// The request these flags state (the server reads the same one from HTTP).
    fn request(&self, mode: Option<Mode>, k: usize, offset: usize) -> SearchRequest {
        SearchRequest {
            mode: mode.map(|m| m.name().to_string()),
            k: Some(k),
            offset: Some(offset),
            diversify: Some(self.diversify.name()),
            lambda: Some(self.lambda),
            threshold: Some(self.threshold),
            filters: self.filters.clone(),
            fusion: self.fusion.clone(),
            keyword_weight: self.keyword_weight,
            boost: self.boost,
            ignore: Some(self.ignore.join(",")),
            feedback: self.feedback,
            feedback_weight: self.feedback_weight,
            title_feedback: self.title_feedback,
            ..SearchRequest::default()
        }
    }
}

#[derive(Args)]
struct CopyArgs {
    /// The index to read: a folder or a PostgreSQL URL.
    #[arg(long)]
    from: Location,
    /// Where to write: a folder or a PostgreSQL URL (created, or synced when it exists
    /// with the same model).
    #[arg(long)]
    to: Location,
    #[command(flatten)]
    ann: AnnArgs,
}

#[derive(Args)]
struct InfoArgs {
    /// A folder, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Catalogue whose first products are measured.
    #[arg(long, default_value = "catalogs/myntra.toml")]
    catalog: PathBuf,
    #[arg(long, default_value_t = 2000)]
    titles: usize,
    #[arg(long, default_value_t = 2000)]
    images: usize,
    /// A Python with sentence-transformers (scripts/requirements-peers.txt): measures it
    /// on the same titles in the same run.
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// An index to measure query latency on.
    #[arg(long)]
    index: Option<PathBuf>,
    /// An ONNX CLIP folder (e.g. made by scripts/make_vit_b16_export.py) whose vision
    /// tower is measured, against onnxruntime in Python with --peer-python.
    #[arg(long)]
    onnx_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    onnx_images: usize,
    /// What to measure: the encoders and queries, or the store (full build vs re-sync,
    /// upserts, reader refresh; on --catalog, at most --limit products).
    #[arg(long, value_enum, default_value = "towers")]
    suite: BenchSuite,
    /// With --suite store: use at most this many products.
    #[arg(long)]
    limit: Option<usize>,
    /// With --suite ann or postgres: how many vectors (the --index's own, then noisy copies).
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// With --suite postgres: the PostgreSQL URL (its table, default `vitrina_bench`, is replaced).
    #[arg(long)]
    postgres: Option<String>,
    /// With --suite serve: how long each connection count is measured.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// With --suite train: also measure training on this GPU (`cuda`, `cuda:N`; a build
    /// with the `cuda` feature), against the CPU.
    #[arg(long)]
    device: Option<String>,
    /// Print the table as JSON (one object per measurement).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchSuite {
    Towers,
    Store,
    /// HNSW vs exact scan (and faiss with --peer-python) on --rows vectors of --index.
    Ann,
    /// The embedded store beside PostgreSQL (--postgres URL) on --rows vectors of --index.
    Postgres,
    /// `vitrina serve` on --index under load over loopback (1, 8, 32 connections, --seconds
    /// each), texts and photos from --catalog.
    Serve,
    /// Training steps of the built-in recipe on the CPU and on --device, on photos the
    /// bench draws (no catalogue needed).
    Train,
}

#[derive(Args)]
struct ModelArgs {
    /// A model folder: an ONNX CLIP export in the jina-clip layout (onnx/text_model.onnx,
    /// onnx/vision_model.onnx, tokenizer.json, preprocessor_config.json), an image tower
    /// trained by `vitrina train` (its --out folder: card.json, image_tower.safetensors;
    /// with the built-in MiniLM), or the built-in model's MiniLM files (config.json,
    /// tokenizer.json, model.safetensors). Default for
    /// search/serve: the model recorded in the index; else the built-in model, whose MiniLM
    /// files come from $VITRINA_MINILM_DIR or the cache (fetched on first use).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// A model by name: `builtin`, or `jina-clip-v1` (or any CLIP export) placed in the
    /// cache under models/NAME.
    #[arg(long, conflicts_with = "model_dir")]
    model: Option<String>,
}

impl ModelArgs {
    /// The model to use; `index` is the index being searched, whose recorded model is
    /// the default.
    fn load(&self, index: Option<&StoreMeta>) -> Result<Model> {
        if let Some(dir) = &self.model_dir {
            return Model::from_dir(dir);
        }
        if let Some(name) = &self.model {
            return Model::named(name);
        }
        if let Some(dir) = index.and_then(|i| i.model_dir.as_deref()) {
            return Model::from_dir(dir)
                .with_context(|| format!("loading the index's model from {}", dir.display()));
        }
        Model::builtin(None)
    }
}

#[derive(Args)]
struct IndexArgs {
    /// Catalogue description (TOML), e.g. catalogs/myntra.toml.
    #[arg(long)]
    catalog: PathBuf,
    /// Where to write the index: a folder, or a PostgreSQL URL
    /// (postgres://USER@HOST:PORT/DB[?table=NAME]; the table defaults to the catalogue's name).
    #[arg(long)]
    index: Location,
    /// Index at most this many products (after the split), in file order.
    #[arg(long)]
    limit: Option<usize>,
    /// Which products to index.
    #[arg(long, value_enum, default_value = "all")]
    split: Split,
    /// Delete stored products that the catalogue (after split and limit) no longer has.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    ann: AnnArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// When the index builds HNSW graphs (kept in the index: later syncs and upserts follow it).
#[derive(Args)]
struct AnnArgs {
    /// Always build HNSW graphs.
    #[arg(long, conflicts_with = "exact")]
    ann: bool,
    /// Never build graphs: every search scans all products.
    #[arg(long)]
    exact: bool,
    /// Build graphs when the index holds at least this many products (default 20000).
    #[arg(long)]
    ann_threshold: Option<usize>,
    /// HNSW links per node (M, default 16).
    #[arg(long)]
    ann_m: Option<usize>,
    /// HNSW candidates explored per insert (default 200).
    #[arg(long)]
    ann_ef_construction: Option<usize>,
    /// The most HNSW candidates a search explores (default 256). Each graph is tuned when
    /// built: unfiltered searches explore the fewest that find 0.995 of the exact top 10
    /// for the catalogue's own titles, filtered ones that divided by the share the
    /// filter admits, up to this.
    #[arg(long)]
    ann_ef_search: Option<usize>,
}

impl AnnArgs {
    /// The policy these flags ask for, on top of the index's current one.
    fn policy(&self, current: vitrina::store::AnnPolicy) -> Result<vitrina::store::AnnPolicy> {
        use vitrina::store::AnnMode;
        let mut p = current;
        if self.ann {
            p.mode = AnnMode::Always;
        } else if self.exact {
            p.mode = AnnMode::Never;
        } else if self.ann_threshold.is_some() {
            p.mode = AnnMode::Auto;
        }
        p.threshold = self.ann_threshold.unwrap_or(p.threshold);
        p.params.m = self.ann_m.unwrap_or(p.params.m);
        p.params.ef_construction = self.ann_ef_construction.unwrap_or(p.params.ef_construction);
        p.params.ef_search = self.ann_ef_search.unwrap_or(p.params.ef_search);
        if !(2..=255).contains(&p.params.m) {
            bail!("--ann-m must be within 2..=255");
        }
        if p.params.ef_construction == 0 || p.params.ef_search == 0 {
            bail!("--ann-ef-construction and --ann-ef-search must be at least 1");
        }
        Ok(p)
    }
}

/// Result-list diversification (visual, on image vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiversifyArg {
    None,
    /// Top 50 -> k-means (k=5) on image vectors -> one item per cluster in turn.
    Kmeans,
    /// Maximal marginal relevance over the top 50 (see --lambda).
    Mmr,
    /// Near-duplicate photos (see --threshold) move after distinct looks in the top 50.
    Dedup,
}

impl DiversifyArg {
    /// The flag's name (`kmeans`, ...), as the library and the HTTP API spell it.
    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string())
    }
}

#[derive(Args)]
struct SearchArgs {
    /// The index: a folder built by `vitrina index`, or a PostgreSQL URL
    /// (postgres://USER@HOST:PORT/DB?table=NAME).
    #[arg(long)]
    index: Location,
    /// Which product vectors to search (default: average where the index has images,
    /// else description; the server uses the same defaults).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// How many results (1..=200).
    #[arg(short, default_value_t = vitrina::search::DEFAULT_K)]
    k: usize,
    /// Skip this many results (the next page: offset + k at most 1000).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Search by this image (JPEG, PNG or WebP), alone or with a text query.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Weight of the text when both a text and an image are given (0..1).
    #[arg(long, default_value_t = 0.5)]
    text_weight: f32,
    /// In average mode, the products' text weight (0..1); 0.5 is the plain average.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    #[command(flatten)]
    list: ListArgs,
    /// Scan every product (the default below the ANN threshold).
    #[arg(long, conflicts_with = "ann")]
    exact: bool,
    /// Use the index's HNSW graph (an error if it has none).
    #[arg(long)]
    ann: bool,
    /// Candidates explored per graph search (higher: better recall, slower).
    #[arg(long)]
    ef: Option<usize>,
    /// The text query.
    query: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct TrainArgs {
    /// Catalogue description (TOML) with images.
    #[arg(long)]
    catalog: PathBuf,
    /// Products to train on; the test split is always held out for the figures.
    #[arg(long, value_enum, default_value = "train")]
    split: Split,
    /// Folder for image_tower.safetensors and card.json.
    #[arg(long)]
    out: PathBuf,
    /// Name recorded in the card (default: the built-in tower's, whose recipe the
    /// defaults are).
    #[arg(long, default_value_t = vitrina::encoder::BUILTIN_TOWER_NAME.to_string())]
    name: String,
    /// Use at most this many products of each split (for quick runs).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Passes over the pairs (default 20).
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate (default 0.002; when fine-tuning with --init, a quarter of it,
    /// 0.0005, keeps what the parent learned).
    #[arg(long)]
    lr: Option<f64>,
    /// Start from a trained tower's weights instead of random ones: `builtin`, or a
    /// folder `train --out` wrote. The tower's shape and starting temperature are the
    /// parent's (the shape options do not apply), and the card records which weights
    /// the run continued (default: from scratch).
    #[arg(long, value_name = "builtin|DIR")]
    init: Option<String>,
    /// Token width of each stage of the tower, comma-separated (e.g. 96,384).
    #[arg(long, value_delimiter = ',')]
    dims: Option<Vec<usize>>,
    /// Residual blocks per stage, comma-separated, as many as --dims.
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<usize>>,
    /// Side of the first stage's square patches, pixels.
    #[arg(long)]
    patch: Option<usize>,
    /// A token-mixing layer before each block of the last stage (`--token-mixing` alone:
    /// true), so the pooled vector sees the photo's layout (default true, the built-in
    /// tower's recipe).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    token_mixing: Option<bool>,
    /// The first stage's tokens see a window twice the patch's side, overlapping their
    /// neighbours' (`--overlap` alone: true; default false, the built-in tower's recipe).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    overlap: Option<bool>,
    /// Crop every photo to its pixels darker than this (0-255, in some channel) before
    /// fitting it, in training and in the tower's card for inference, so that white
    /// margins do not change the framing (e.g. 235). Default: photos fitted whole.
    #[arg(long, value_name = "THRESHOLD")]
    trim_white: Option<u8>,
    /// Title similarity above which two pairs of a batch are both positives (default
    /// 0.85, the built-in tower's recipe; above 1, e.g. 2: plain one-positive CLIP).
    #[arg(long)]
    same_title: Option<f64>,
    /// Soft targets at this temperature instead of --same-title's: each pair's target
    /// spread over the batch's pairs by their titles' similarity (the text tower as
    /// teacher; e.g. 0.1). Default: off, the built-in tower's recipe.
    #[arg(long, value_name = "TEMPERATURE")]
    soft_targets: Option<f64>,
    /// Vary the photos as shoppers' photos vary: crops, padding, shifts, small
    /// rotations, low resolution, JPEG (never colour). The value is the share of photos
    /// warped (0.8 when given alone; a quarter of it for low resolution and for JPEG).
    /// Default: 0.25, the built-in tower's recipe; 0: mirroring only.
    #[arg(long, value_name = "SHARE", num_args = 0..=1, default_missing_value = "0.8")]
    augment: Option<f64>,
    /// Weight of an image-image term between each photo and a second, warped view of
    /// it (SLIP), which teaches that a re-framed photo is the same product; it doubles
    /// the time of a step (default 0: off, the built-in tower's recipe).
    #[arg(long, value_name = "WEIGHT")]
    consistency: Option<f64>,
    /// Weight of an invariance term: each photo's second, warped view should land on the
    /// photo's own vector (1 - cosine), which teaches framing without pushing alike
    /// products' photos apart; it doubles the time of a step (default 0: off).
    #[arg(long, value_name = "WEIGHT")]
    invariance: Option<f64>,
    /// Weight of an image-image relation term: each photo's similarities to the batch's
    /// other photos should follow its title's to their titles, so photos of alike
    /// products lie near each other (default 0.5, the built-in tower's recipe; 0: off).
    #[arg(long, value_name = "WEIGHT")]
    relations: Option<f64>,
    /// Where to train: `cpu`, or an NVIDIA GPU (`cuda`, `cuda:N`) in a build with the
    /// `cuda` feature. The recipe and the batches are the same; only the CPU's runs are
    /// bit-for-bit reproducible.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// Catalogue description (TOML).
    #[arg(long)]
    catalog: PathBuf,
    /// Which products to search over and draw queries from.
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// Number of random product titles used as queries.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for results.md, precision.csv, precision.png and results.json.
    #[arg(long)]
    out: PathBuf,
    /// Keep the index in this folder (or PostgreSQL URL), synced to the catalogue split
    /// (only changed products are embedded again). Without it, the index is built in memory.
    #[arg(long)]
    index: Option<Location>,
    /// Diversification variants measured beside each plain search type.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "kmeans,mmr")]
    diversify: Vec<DiversifyArg>,
    /// MMR trade-off for the mmr variant.
    #[arg(long, default_value_t = diversify::MMR_LAMBDA)]
    lambda: f32,
    /// Also print precision@10 of average mode for product text weights 0, 0.1, ..., 1.
    #[arg(long)]
    sweep_alpha: bool,
    /// Also print hybrid precision@10 for each fusion method (rrf, blend) and keyword
    /// weight 0, 0.1, ..., 1 (how the default was chosen: run it on the train split).
    #[arg(long)]
    sweep_fusion: bool,
    /// Also measure every diversification method over its parameter range in the
    /// default mode: the precision/variety trade-off (table and tradeoff.png).
    #[arg(long)]
    sweep_diversity: bool,
    /// Also measure visual feedback (`search --feedback`) at depths 3, 5, 10, 20 and
    /// query weights 0.5, 0.25, 0.1, then title feedback (`search --title-feedback`) at
    /// weights 0.25, 0.5, 1, 2, for titles and photos (how the defaults were chosen: run
    /// it on the train split).
    #[arg(long)]
    sweep_feedback: bool,
    /// Evaluate within the products that pass (queries and results): same syntax as
    /// `search --filter`; repeatable.
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    #[command(flatten)]
    model: ModelArgs,
}

/// mimalloc rather than the system allocator: the image tower's training and batch
/// encoding allocate and free tensors of megabytes many times a second, and glibc's
/// malloc hands each back to the kernel (mmap/munmap), so every new tensor page-faults
/// its memory in again: a quarter of `vitrina train`'s time went to the kernel.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Warnings, and the server's access log, unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,{}=info", vitrina::server::ACCESS_LOG))
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("VITRINA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Index(args) => run_index(args),
        Command::Upsert(args) => run_upsert(args),
        Command::Delete(args) => run_delete(args),
        Command::Get(args) => run_get(args),
        Command::Similar(args) => run_similar(args),
        Command::Info(args) => run_info(args),
        Command::Copy(args) => run_copy(args),
        Command::Search(args) => run_search(args),
        Command::Train(args) => run_train(args),
        Command::Eval(args) => run_eval(args),
        Command::Bench(args) => run_bench(args),
        Command::Embed(args) => run_embed(args),
        Command::Serve(args) => run_serve(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Loads a catalogue and reports every repaired, cut, placeholder and rejected row.
fn load_catalog(path: &Path, split: Split, limit: Option<usize>) -> Result<Catalog> {
    let spec = CatalogSpec::from_file(path)?;
    let mut catalog = Catalog::load(&spec)?;
    let read = catalog.products.len();
    let data = spec.data.display();
    for line in &catalog.repaired_lines {
        eprintln!(
            "{data}:{line}: repaired: unquoted commas in `{}` rejoined",
            spec.text
        );
    }
    for line in &catalog.cut_lines {
        eprintln!(
            "{data}:{line}: `{}` longer than {} characters: cut",
            spec.text,
            vitrina::catalog::MAX_TEXT_CHARS
        );
    }
    for (line, id, text) in &catalog.placeholder_lines {
        eprintln!(
            "{data}:{line}: product {id}: `{}` is only a placeholder ({text:?}): text search cannot find it",
            spec.text
        );
    }
    for r in &catalog.rejected {
        eprintln!("{data}:{}: skipped: {}", r.line, r.reason);
    }
    catalog.select(split, limit);
    eprintln!(
        "catalogue `{}`: {read} products read, {} rows rejected, {} repaired, {} texts cut, {} placeholder texts; \
         {} selected (split {}{})",
        spec.name,
        catalog.rejected.len(),
        catalog.repaired_lines.len(),
        catalog.cut_lines.len(),
        catalog.placeholder_lines.len(),
        catalog.products.len(),
        split.name(),
        limit.map(|l| format!(", limit {l}")).unwrap_or_default()
    );
    if spec.image.is_none() {
        eprintln!(
            "catalogue `{}` declares no images (no `image` key): text vectors only",
            spec.name
        );
    }
    Ok(catalog)
}

/// Prints what a sync or upsert did.
fn print_report(report: &Report) {
    const SHOWN: usize = 10;
    for (id, reason) in report.images_missing.iter().take(SHOWN) {
        eprintln!("product {id}: no usable image: {reason}");
    }
    if report.images_missing.len() > SHOWN {
        eprintln!(
            "... and {} more products without a usable image (all marked has_image = false; \
             image mode leaves them out, and their image vector is borrowed from the product with the closest title)",
            report.images_missing.len() - SHOWN
        );
    }
    eprintln!(
        "{} added, {} updated ({} without re-embedding), {} unchanged, {} pruned, {} absent from the catalogue and kept; \
         embedded {} products in {:.1}s ({:.0}/s; titles {:.1}s, images {:.1}s: {} embedded, {} without a usable image); \
         {} titles truncated by the model",
        report.added,
        report.updated,
        report.updated_without_embedding,
        report.unchanged,
        report.pruned,
        report.absent_kept,
        report.embedded,
        report.elapsed.as_secs_f64(),
        report.embedded_per_second(),
        report.text_seconds,
        report.image_seconds,
        report.images_embedded,
        report.images_missing.len(),
        report.truncated_texts,
    );
}

/// Syncs the store at `location` with the catalogue, then brings it into shape for
/// search (the embedded store folds its log into the base; ANN graphs or HNSW indexes
/// are built when the policy says so).
fn sync_store(
    catalog: &Catalog,
    model: &Model,
    location: &Location,
    prune: bool,
    ann: Option<&AnnArgs>,
) -> Result<Report> {
    let meta = indexing::store_meta(model, &catalog.spec.name, catalog.spec.image.is_some());
    let mut writer = location.create(&meta)?;
    for note in writer.notes() {
        eprintln!("{note}");
    }
    if let Some(args) = ann {
        let policy = args.policy(writer.ann_policy())?;
        writer.set_ann(policy)?;
    }
    let report = indexing::sync(catalog, model, &mut *writer, &SyncOptions { prune })?;
    print_report(&report);
    let started = Instant::now();
    writer.optimize()?;
    eprintln!(
        "made the index ready for search in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(report)
}

fn run_index(args: IndexArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog, args.split, args.limit)?;
    let model = args.model.load(None)?;
    sync_store(&catalog, &model, &args.index, args.prune, Some(&args.ann))?;
    let info = args.index.open()?.info();
    println!(
        "{}: {} products, {:.1} MB; search: {}",
        info.location,
        info.products,
        info.bytes_on_disk.unwrap_or(0) as f64 / 1e6,
        info.search
    );
    Ok(())
}

/// The store's own model (the one recorded in it), unless overridden.
fn store_model(args: &ModelArgs, meta: &StoreMeta) -> Result<Model> {
    args.load(Some(meta))
}

fn run_upsert(args: UpsertArgs) -> Result<()> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.products)
        .with_context(|| format!("cannot read {}", args.products.display()))?;
    let base = args.products.parent().map(Path::to_path_buf);
    let mut products = Vec::new();
    let mut bad = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<ProductInput>(line)
            .map_err(anyhow::Error::from)
            .and_then(|p| {
                anyhow::ensure!(
                    p.image_base64.is_none(),
                    "`image_base64` is for the HTTP API; give `image` as a path here"
                );
                p.into_product(base.as_deref())
            });
        match parsed {
            Ok((p, cut)) => {
                if cut {
                    eprintln!(
                        "{}:{}: text longer than {} characters: cut",
                        args.products.display(),
                        i + 1,
                        vitrina::catalog::MAX_TEXT_CHARS
                    );
                }
                products.push(p);
            }
            Err(e) => {
                bad += 1;
                eprintln!("{}:{}: skipped: {e:#}", args.products.display(), i + 1);
            }
        }
    }
    let mut writer = args.index.writer()?;
    for note in writer.notes() {
        eprintln!("{note}");
    }
    let meta = writer.current().meta().clone();
    let model = store_model(&args.model, &meta)?;
    let mut report = Report::default();
    for chunk in products.chunks(indexing::BATCH) {
        let hashes: Vec<u64> = chunk.iter().map(|p| indexing::vector_hash(p).0).collect();
        let entries =
            indexing::embed_entries(&model, &meta, chunk, &hashes, writer.current(), &mut report)?;
        writer.upsert(entries)?;
    }
    writer.finish()?;
    for (id, reason) in &report.images_missing {
        eprintln!("product {id}: no usable image: {reason}");
    }
    println!(
        "upserted {} products ({} lines skipped) in {:.1}s",
        products.len(),
        bad,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_delete(args: DeleteArgs) -> Result<()> {
    let mut writer = args.index.writer()?;
    let deleted = writer.delete(&args.ids)?;
    writer.finish()?;
    for id in args.ids.iter().filter(|id| !deleted.contains(id)) {
        eprintln!("product {id:?} is not in the index");
    }
    println!("deleted {} products", deleted.len());
    Ok(())
}

fn run_get(args: GetArgs) -> Result<()> {
    match args.index.open()?.current().product(&args.id)? {
        Some(p) => {
            println!("{}", serde_json::to_string_pretty(&p)?);
            Ok(())
        }
        None => bail!("product {:?} is not in {}", args.id, args.index),
    }
}

fn run_similar(args: SimilarArgs) -> Result<()> {
    let snapshot = args.index.open()?.current();
    let ranking = args
        .list
        .request(args.mode, args.k, 0)
        .ranking(snapshot.meta())?;
    let started = Instant::now();
    let Some(rows) = Searcher::stored_vectors_only(&*snapshot).similar(&args.id, &ranking)? else {
        bail!("product {:?} is not in {}", args.id, args.index);
    };
    print_rows(&rows, args.json, started.elapsed())
}

fn run_copy(args: CopyArgs) -> Result<()> {
    let started = Instant::now();
    let from = args.from.open()?.current();
    let mut to = args.to.create(from.meta())?;
    for note in to.notes() {
        eprintln!("{note}");
    }
    let policy = args.ann.policy(to.ann_policy())?;
    to.set_ann(policy)?;
    let copied = vitrina::store::copy(&*from, &mut *to, 1000)?;
    to.optimize()?;
    println!(
        "copied {copied} products from {} to {} in {:.1}s",
        args.from,
        args.to,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_info(args: InfoArgs) -> Result<()> {
    let info = args.index.open()?.info();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("index      {}", info.location);
    println!("catalogue  {}", info.catalog);
    println!(
        "products   {} ({} with an image)",
        info.products, info.products_with_image
    );
    println!("model      {} ({}-d)", info.model, info.dim);
    println!("vectors    {:?}", info.kinds);
    println!("search     {}", info.search);
    println!(
        "on disk    {:.1} MB",
        info.bytes_on_disk.unwrap_or(0) as f64 / 1e6
    );
    Ok(())
}

fn run_serve(args: ServeArgs) -> Result<()> {
    let store = args.index.open()?;
    let model = store_model(&args.model, store.current().meta())?
        .with_query_cache(args.query_cache)
        .with_query_batch(args.query_batch);
    let write_key = match &args.write_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the write key file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("VITRINA_WRITE_KEY").ok(),
    }
    .filter(|k| !k.is_empty());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    vitrina::server::serve(
        store,
        model,
        args.addr,
        vitrina::server::ServeOptions {
            max_searches: args.max_searches.unwrap_or(8 * cores),
            max_image_queries: args.max_image_queries.unwrap_or(cores),
            queue_wait: std::time::Duration::from_millis(args.queue_ms),
            max_connections: args.max_connections,
            idle_timeout: std::time::Duration::from_millis(args.idle_timeout_ms),
            header_timeout: std::time::Duration::from_millis(args.header_timeout_ms),
            cors_origins: args.cors_origins.clone(),
            write_key,
            uploads: args.uploads.clone().or_else(|| {
                let folder = args.index.folder()?;
                Some(folder.join(vitrina::server::UPLOADS))
            }),
        },
    )
}

fn run_search(args: SearchArgs) -> Result<()> {
    let snapshot = args.index.open()?.current();
    let model = args.model.load(Some(snapshot.meta()))?;
    let searcher = Searcher::new(&*snapshot, &model)?;
    let request = SearchRequest {
        q: args.query.clone(),
        alpha: Some(args.alpha),
        text_weight: Some(args.text_weight),
        method: Some(
            match (args.exact, args.ann) {
                (true, _) => "exact",
                (_, true) => "ann",
                _ => "auto",
            }
            .to_string(),
        ),
        ef: args.ef,
        ..args.list.request(args.mode, args.k, args.offset)
    };
    let ranking = request.ranking(snapshot.meta())?;
    let image = args.image.as_deref().map(load_image).transpose()?;
    let query = request.query(image)?;
    let started = Instant::now();
    let rows = searcher.search(&query, &ranking)?;
    let understood = searcher.understand(args.query.as_deref().unwrap_or(""), &ranking)?;
    if !understood.is_empty() {
        let named: Vec<String> = understood
            .iter()
            .map(|u| format!("\"{}\" = {} {}", u.words, u.field, u.value))
            .collect();
        eprintln!(
            "boosted: {} (--ignore FIELD or --boost 0 to drop)",
            named.join(", ")
        );
    }
    print_rows(&rows, args.json, started.elapsed())
}

/// Results as a table (or JSON), the time on stderr.
fn print_rows(
    rows: &[vitrina::search::ResultRow],
    json: bool,
    elapsed: std::time::Duration,
) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).context("serialising results")?
        );
        return Ok(());
    }
    println!(
        "{:>4}  {:>6}  {:>8}  {:<50}  {:<16}  fine",
        "rank", "score", "id", "title", "broad"
    );
    for r in rows {
        println!(
            "{:>4}  {:>6.3}  {:>8}  {:<50}  {:<16}  {}",
            r.rank,
            r.score,
            r.id,
            truncate(&r.title, 50),
            truncate(r.broad.as_deref().unwrap_or("-"), 16),
            r.fine.as_deref().unwrap_or("-")
        );
    }
    eprintln!(
        "{} results in {:.1} ms",
        rows.len(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

fn run_train(args: TrainArgs) -> Result<()> {
    if args.model.model.as_deref().is_some_and(|m| m != "builtin") {
        bail!("`train` trains the built-in image tower against MiniLM; --model does not apply (use --model-dir for the MiniLM files)");
    }
    let device = training_device(&args.device)?;
    let catalog = load_catalog(&args.catalog, Split::All, None)?;
    let mut config = TrainConfig {
        seed: args.seed,
        ..TrainConfig::default()
    };
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.lr = args.lr.unwrap_or(config.lr);
    config.same_title = args.same_title.unwrap_or(config.same_title);
    config.consistency = args.consistency.unwrap_or(config.consistency);
    config.invariance = args.invariance.unwrap_or(config.invariance);
    config.relations = args.relations.unwrap_or(config.relations);
    config.soft_targets = args.soft_targets.unwrap_or(config.soft_targets);
    if let Some(share) = args.augment {
        config.augment = Augment::with_share(share).context("--augment")?;
    }
    let parent = args.init.as_deref().map(Parent::load).transpose()?;
    if let Some(parent) = &parent {
        let shape_options = [
            args.dims.is_some(),
            args.depths.is_some(),
            args.patch.is_some(),
            args.token_mixing.is_some(),
            args.overlap.is_some(),
            args.trim_white.is_some(),
        ];
        if shape_options.contains(&true) {
            bail!("--init takes the tower's shape from {}'s card; --dims, --depths, --patch, --token-mixing, --overlap and --trim-white do not apply", parent.id);
        }
        config.tower = parent.card.tower.clone();
        config.init_temperature = parent.temperature();
        config.init = Some(parent.id.clone());
        config.lr = args.lr.unwrap_or(config.lr / 4.0);
    } else {
        let tower = &mut config.tower;
        tower.dims = args.dims.unwrap_or(tower.dims.clone());
        tower.depths = args.depths.unwrap_or(tower.depths.clone());
        tower.patch = args.patch.unwrap_or(tower.patch);
        tower.token_mixing = args.token_mixing.unwrap_or(tower.token_mixing);
        tower.overlap = args.overlap.unwrap_or(tower.overlap);
        tower.trim_white = args.trim_white.or(tower.trim_white);
    }
    // Before the minutes spent reading images: training checks them again.
    config.check()?;
    let minilm = MiniLm::load(&minilm_dir(args.model.model_dir.as_deref())?)?;
    let data = TrainingData {
        catalog: &catalog,
        split: args.split,
        limit: args.limit,
    };
    let card = train_and_save(
        data,
        &config,
        parent.as_ref(),
        &device,
        &minilm,
        &args.name,
        &args.out,
    )?;
    println!(
        "trained {} on {} pairs in {:.0}s on {}, final loss {:.4}; wrote {}",
        card.name,
        card.pairs,
        card.training_seconds,
        card.device,
        card.final_loss,
        args.out.display()
    );
    println!("held-out: {}", serde_json::to_string(&card.held_out)?);
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let catalog = load_catalog(&args.catalog, args.split, None)?;
    let model = args.model.load(None)?;
    let snapshot = match &args.index {
        Some(location) => {
            sync_store(&catalog, &model, location, true, None)?;
            location.open()?.current()
        }
        None => {
            let (snapshot, report) = indexing::build_in_memory(&catalog, &model)?;
            print_report(&report);
            std::sync::Arc::new(snapshot) as std::sync::Arc<dyn Store>
        }
    };
    let index: &dyn Store = &*snapshot;
    let searcher = Searcher::new(index, &model)?;
    let config = EvalConfig {
        split: args.split.name().to_string(),
        queries: args.queries,
        seed: args.seed,
        diversify: args
            .diversify
            .iter()
            .filter(|d| **d != DiversifyArg::None)
            .map(|d| Diversify::parse(&d.name(), Some(args.lambda), None, args.seed))
            .collect::<Result<_>>()?,
        sweep_alpha: args.sweep_alpha,
        sweep_fusion: args.sweep_fusion,
        sweep_diversity: args.sweep_diversity,
        sweep_feedback: args.sweep_feedback,
        filter: vitrina::store::Filter::parse(&args.filters)?,
    };
    let report = eval::evaluate(&searcher, &config)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let md = eval::results_markdown(&report);
    if !report.diversity_curve.is_empty() {
        eval::plot_tradeoff(&report, &args.out.join("tradeoff.png"))?;
    }
    print!("{md}");
    std::fs::write(args.out.join("results.md"), &md)?;
    std::fs::write(args.out.join("precision.csv"), eval::precision_csv(&report))?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    eval::plot_precision(&report, &args.out.join("precision.png"))?;
    eprintln!(
        "wrote results.md, precision.csv, results.json, precision.png to {}",
        args.out.display()
    );
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let rows = match args.suite {
        BenchSuite::Towers => {
            let catalog = load_catalog(&args.catalog, Split::All, None)?;
            let config = vitrina::bench::BenchConfig {
                titles: args.titles,
                images: args.images,
                peer_python: args.peer_python,
                index: args.index,
                onnx_dir: args.onnx_dir,
                onnx_images: args.onnx_images,
                model_dir: args.model.model_dir.clone(),
            };
            vitrina::bench::run(&catalog, &config)?
        }
        BenchSuite::Ann => {
            let Some(index) = &args.index else {
                bail!("--suite ann needs --index DIR (its vectors seed the benchmark)");
            };
            vitrina::bench::ann::run(index, args.rows, args.peer_python.as_deref())?
        }
        BenchSuite::Postgres => {
            let (Some(index), Some(url)) = (&args.index, &args.postgres) else {
                bail!("--suite postgres needs --index DIR (its vectors seed the benchmark) and --postgres URL");
            };
            vitrina::bench::postgres::run(index, url, args.rows)?
        }
        BenchSuite::Serve => {
            let Some(index) = &args.index else {
                bail!("--suite serve needs --index DIR (the index to serve)");
            };
            let catalog = load_catalog(&args.catalog, Split::All, args.limit)?;
            vitrina::bench::serve::run(index, &catalog, args.seconds)?
        }
        BenchSuite::Train => {
            let gpu = args.device.as_deref().map(training_device).transpose()?;
            vitrina::bench::train::run(gpu.as_ref())?
        }
        BenchSuite::Store => {
            let catalog = load_catalog(&args.catalog, Split::All, args.limit)?;
            let model = args.model.load(None)?;
            vitrina::bench::store::run(&catalog, &model)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", vitrina::bench::table(&rows));
    }
    Ok(())
}

fn run_embed(args: EmbedArgs) -> Result<()> {
    use vitrina::embed;
    let format = embed::Format::of(&args.out)?;
    let inputs = match (&args.text, &args.images) {
        (Some(file), _) => embed::read_texts(file)?,
        (_, Some(dir)) => embed::list_images(dir)?,
        (None, None) => bail!("give --text FILE or --images DIR"),
    };
    let meta = match &args.index {
        Some(location) => Some(location.open()?.current().meta().clone()),
        None => None,
    };
    let model = args.model.load(meta.as_ref())?;
    if let (Some(meta), Some(location)) = (&meta, &args.index) {
        if meta.model != model.id() {
            bail!(
                "{location} was embedded by model `{}`, but this run uses `{}`: drop --model/--model-dir \
                 to embed with the index's own model",
                meta.model,
                model.id()
            );
        }
    }
    let started = Instant::now();
    let vectors = embed::embed(&model, &inputs)?;
    embed::write(&args.out, format, &inputs, &vectors, model.dim())?;
    eprintln!(
        "wrote {} vectors of {} dimensions (model `{}`) to {} in {:.1}s",
        inputs.len(),
        model.dim(),
        model.id(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
