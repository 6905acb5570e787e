//! The `vitrina` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use vitrina::catalog::{Catalog, CatalogSpec, Split};
use vitrina::encoder::Model;
use vitrina::index::{index_file, Index};
use vitrina::indexing;
use vitrina::search::{Mode, Searcher};

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
    /// Embed a catalogue's products and write a search index.
    Index(IndexArgs),
    /// Search an index.
    Search(SearchArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// Folder with the built-in text tower's files (config.json, tokenizer.json,
    /// model.safetensors); default: $VITRINA_MINILM_DIR, else the cache (fetched on first use).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

#[derive(Args)]
struct IndexArgs {
    /// Catalogue description (TOML), e.g. catalogs/myntra.toml.
    #[arg(long)]
    catalog: PathBuf,
    /// Folder to write the index into.
    #[arg(long)]
    index: PathBuf,
    /// Index at most this many products (after the split), in file order.
    #[arg(long)]
    limit: Option<usize>,
    /// Which products to index.
    #[arg(long, value_enum, default_value = "all")]
    split: Split,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct SearchArgs {
    /// Folder of an index built by `vitrina index`.
    #[arg(long)]
    index: PathBuf,
    /// Which product vectors to search.
    #[arg(long, value_enum, default_value = "description")]
    mode: Mode,
    /// How many results.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// The text query.
    query: String,
    #[command(flatten)]
    model: ModelArgs,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Index(args) => run_index(args),
        Command::Search(args) => run_search(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run_index(args: IndexArgs) -> Result<()> {
    let spec = CatalogSpec::from_file(&args.catalog)?;
    let mut catalog = Catalog::load(&spec)?;
    let read = catalog.products.len();
    for line in &catalog.repaired_lines {
        eprintln!(
            "{}:{line}: repaired: unquoted commas in `{}` rejoined",
            spec.data.display(),
            spec.text
        );
    }
    for r in &catalog.rejected {
        eprintln!("{}:{}: skipped: {}", spec.data.display(), r.line, r.reason);
    }
    catalog.select(args.split, args.limit);
    eprintln!(
        "catalogue `{}`: {read} products read, {} rejected, {} repaired; {} selected (split {}{})",
        spec.name,
        catalog.rejected.len(),
        catalog.repaired_lines.len(),
        catalog.products.len(),
        args.split.name(),
        args.limit
            .map(|l| format!(", limit {l}"))
            .unwrap_or_default()
    );
    let model = Model::builtin(args.model.model_dir.as_deref())?;
    let (index, report) = indexing::build(
        &catalog,
        args.split,
        &model,
        std::io::stderr().is_terminal(),
    )?;
    let bytes = index.save(&args.index)?;
    println!(
        "indexed {} products in {:.1}s ({:.0} items/s); {} titles truncated; {} rows rejected; \
         wrote {} ({:.1} MB)",
        report.indexed,
        report.elapsed.as_secs_f64(),
        report.items_per_second(),
        report.truncated_texts,
        catalog.rejected.len(),
        index_file(&args.index).display(),
        bytes as f64 / 1e6
    );
    Ok(())
}

fn run_search(args: SearchArgs) -> Result<()> {
    let index = Index::open(&args.index)?;
    let model = Model::builtin(args.model.model_dir.as_deref())?;
    let searcher = Searcher::new(&index, &model)?;
    let started = Instant::now();
    let rows = searcher.search_text(&args.query, args.mode, args.k)?;
    let elapsed = started.elapsed();
    if args.json {
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
    for r in &rows {
        println!(
            "{:>4}  {:>6.3}  {:>8}  {:<50}  {:<16}  {}",
            r.rank,
            r.score,
            r.id,
            truncate(&r.title, 50),
            r.broad.as_deref().unwrap_or("-"),
            r.fine.as_deref().unwrap_or("-")
        );
    }
    eprintln!(
        "{} results in {:.1} ms (encode + search)",
        rows.len(),
        elapsed.as_secs_f64() * 1e3
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
