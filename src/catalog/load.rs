//! Reads a catalogue's data file into products. Real shop exports are dirty: rows are
//! repaired where the intent is unambiguous, otherwise reported with their line and
//! skipped, so one bad row never costs the whole catalogue and nothing is dropped silently.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::spec::{CatalogSpec, DataFormat, FieldSpec};
use super::split::Split;

/// One product of the catalogue.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Product {
    pub id: String,
    pub text: String,
    pub broad: Option<String>,
    pub fine: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Where the product image should be; it may be missing on disk.
    #[schema(value_type = Option<String>)]
    pub image: Option<PathBuf>,
}

impl Product {
    /// A field's value by name: `broad`, `fine`, or an attribute (filters, boosts).
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "broad" => self.broad.as_deref(),
            "fine" => self.fine.as_deref(),
            attribute => self.attributes.get(attribute).map(String::as_str),
        }
    }

    /// Every field the product has a value for, as (name, value): broad, fine, then the
    /// attributes (facets, the keyword index).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        let named = [("broad", &self.broad), ("fine", &self.fine)];
        named
            .into_iter()
            .filter_map(|(name, v)| Some((name, v.as_deref()?)))
            .chain(
                self.attributes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
    }
}

/// Longest text kept, in characters. The text towers read at most a few hundred tokens
/// (MiniLM: 256, about 1,000 characters); a longer text only costs tokenizer time (a 1 MB
/// title took 25 s) and storage. Cut texts are counted and reported.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Titles that say nothing: kept (the product still has an image and categories), but
/// reported, since text search cannot find them.
const PLACEHOLDERS: [&str; 12] = [
    "na", "n/a", "null", "none", "nan", "-", "--", "?", "tbd", "untitled", "unknown", "test",
];

/// Trims a text and cuts it to [`MAX_TEXT_CHARS`]; says whether it was cut.
pub fn clean_text(text: &str) -> (String, bool) {
    let text = text.trim();
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => (text[..at].trim_end().to_string(), true),
        None => (text.to_string(), false),
    }
}

/// True for a title that is only a placeholder ("NA", "null", "-", ...).
pub fn is_placeholder(text: &str) -> bool {
    PLACEHOLDERS.contains(&text.trim().to_lowercase().as_str())
}

/// A row that could not become a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// 1-based line in the data file (the header is line 1 for CSV).
    pub line: u64,
    pub reason: String,
}

/// The products of a catalogue, plus an account of every row that needed attention.
#[derive(Debug)]
pub struct Catalog {
    pub spec: CatalogSpec,
    pub products: Vec<Product>,
    pub rejected: Vec<Rejected>,
    /// Lines whose text held unquoted commas and was rejoined.
    pub repaired_lines: Vec<u64>,
    /// Lines whose text was longer than [`MAX_TEXT_CHARS`] and was cut.
    pub cut_lines: Vec<u64>,
    /// Lines whose text is only a placeholder ("NA"): (line, id, text).
    pub placeholder_lines: Vec<(u64, String, String)>,
}

impl Catalog {
    /// Loads every product of the catalogue.
    pub fn load(spec: &CatalogSpec) -> Result<Self> {
        let mut builder = Builder::new(spec);
        match spec.format {
            DataFormat::Csv => read_csv(spec, &mut builder)?,
            DataFormat::Jsonl => read_jsonl(spec, &mut builder)?,
            DataFormat::Json => read_json(spec, &mut builder)?,
        }
        Ok(Catalog {
            spec: spec.clone(),
            products: builder.products,
            rejected: builder.rejected,
            repaired_lines: builder.repaired_lines,
            cut_lines: builder.cut_lines,
            placeholder_lines: builder.placeholder_lines,
        })
    }

    /// The products of one split, then at most `limit` of them (file order).
    pub fn split_products(&self, split: Split, limit: Option<usize>) -> Vec<Product> {
        self.products
            .iter()
            .filter(|p| split.contains(&p.id))
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// Keeps only [`Catalog::split_products`].
    pub fn select(&mut self, split: Split, limit: Option<usize>) {
        self.products = self.split_products(split, limit);
    }
}

/// Turns raw field lookups into products, tracking rejections and duplicate ids.
struct Builder<'a> {
    spec: &'a CatalogSpec,
    seen: HashSet<String>,
    products: Vec<Product>,
    rejected: Vec<Rejected>,
    repaired_lines: Vec<u64>,
    cut_lines: Vec<u64>,
    placeholder_lines: Vec<(u64, String, String)>,
}

impl<'a> Builder<'a> {
    fn new(spec: &'a CatalogSpec) -> Self {
        Builder {
            spec,
            seen: HashSet::new(),
            products: Vec::new(),
            rejected: Vec::new(),
            repaired_lines: Vec::new(),
            cut_lines: Vec::new(),
            placeholder_lines: Vec::new(),
        }
    }

    fn reject(&mut self, line: u64, reason: impl Into<String>) {
        self.rejected.push(Rejected {
            line,
            reason: reason.into(),
        });
    }

    /// Builds one product from a field lookup; records the reason if it cannot.
    fn add(&mut self, line: u64, get: impl Fn(&str) -> Option<String>) {
        match self.build(&get) {
            Ok(mut product) => {
                let (text, cut) = clean_text(&product.text);
                product.text = text;
                if cut {
                    self.cut_lines.push(line);
                }
                if is_placeholder(&product.text) {
                    self.placeholder_lines
                        .push((line, product.id.clone(), product.text.clone()));
                }
                if self.seen.insert(product.id.clone()) {
                    self.products.push(product);
                } else {
                    let reason = format!("duplicate id {:?}", product.id);
                    self.reject(line, reason);
                }
            }
            Err(reason) => self.reject(line, reason),
        }
    }

    fn build(&self, get: &impl Fn(&str) -> Option<String>) -> std::result::Result<Product, String> {
        let spec = self.spec;
        let required = |column: &str| -> std::result::Result<String, String> {
            match get(column) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Some(_) => Err(format!("field `{column}` is empty")),
                None => Err(format!("field `{column}` is missing")),
            }
        };
        let id = required(&spec.id)?;
        let text = required(&spec.text)?;
        let category = |field: &Option<FieldSpec>| -> std::result::Result<Option<String>, String> {
            let Some(field) = field else { return Ok(None) };
            let raw = get(field.column()).unwrap_or_default();
            match field.extract(&raw) {
                Some(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
                _ => Err(format!("category from {} is missing", field.describe())),
            }
        };
        let broad = category(&spec.categories.broad)?;
        let fine = category(&spec.categories.fine)?;
        let attributes = spec
            .categories
            .attributes
            .iter()
            .filter_map(|name| get(name).map(|v| (name.clone(), v.trim().to_string())))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let image = spec.image_path(&id);
        Ok(Product {
            id,
            text,
            broad,
            fine,
            attributes,
            image,
        })
    }
}

fn open(spec: &CatalogSpec) -> Result<File> {
    File::open(&spec.data).with_context(|| {
        format!(
            "cannot open data file {} of catalogue `{}`",
            spec.data.display(),
            spec.name
        )
    })
}

/// CSV with a header. A row with more fields than the header is repaired only when the
/// text column is the last one: the extra fields are then the title's own commas, left
/// unquoted by the exporter (Myntra has 22 such rows). Any other shape is rejected.
fn read_csv(spec: &CatalogSpec, builder: &mut Builder) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(open(spec)?);
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the CSV header", spec.data.display()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    for needed in [&spec.id, &spec.text] {
        if !header.contains(needed) {
            bail!(
                "{}: the header has no column `{needed}` (columns: {})",
                spec.data.display(),
                header.join(", ")
            );
        }
    }
    let text_is_last = header.last() == Some(&spec.text);
    let mut record = csv::StringRecord::new();
    loop {
        // The reader's position is where the next record starts (1-based line).
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                let line = err.position().map_or(line, |p| p.line());
                builder.reject(line, format!("unreadable CSV row: {err}"));
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let mut fields: Vec<&str> = record.iter().collect();
        let joined;
        if fields.len() > header.len() {
            if !text_is_last {
                builder.reject(
                    line,
                    format!("{} fields, the header has {}", fields.len(), header.len()),
                );
                continue;
            }
            joined = fields[header.len() - 1..].join(",");
            fields.truncate(header.len() - 1);
            fields.push(&joined);
            builder.repaired_lines.push(line);
        } else if fields.len() < header.len() {
            builder.reject(
                line,
                format!("{} fields, the header has {}", fields.len(), header.len()),
            );
            continue;
        }
        builder.add(line, |column| {
            header
                .iter()
                .position(|h| h == column)
                .map(|i| fields[i].to_string())
        });
    }
    Ok(())
}

fn json_field(object: &serde_json::Map<String, Value>, column: &str) -> Option<String> {
    match object.get(column)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn add_json(builder: &mut Builder, line: u64, value: &Value) {
    match value.as_object() {
        Some(object) => builder.add(line, |column| json_field(object, column)),
        None => builder.reject(line, "not a JSON object"),
    }
}

fn read_jsonl(spec: &CatalogSpec, builder: &mut Builder) -> Result<()> {
    let reader = BufReader::new(open(spec)?);
    for (i, line) in reader.lines().enumerate() {
        let number = i as u64 + 1;
        let line = line.with_context(|| format!("{}: line {number}", spec.data.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(value) => add_json(builder, number, &value),
            Err(err) => builder.reject(number, format!("invalid JSON: {err}")),
        }
    }
    Ok(())
}

/// A whole JSON document. Products have no line numbers here, so the 1-based position
/// in the array stands in for it in reports.
fn read_json(spec: &CatalogSpec, builder: &mut Builder) -> Result<()> {
    let document: Value = serde_json::from_reader(BufReader::new(open(spec)?))
        .with_context(|| format!("{} is not valid JSON", spec.data.display()))?;
    let array = match &spec.records {
        Some(key) => document
            .get(key)
            .and_then(Value::as_array)
            .with_context(|| format!("{}: no array under key `{key}`", spec.data.display()))?,
        None => document.as_array().with_context(|| {
            format!(
                "{}: the root is not an array; set `records`",
                spec.data.display()
            )
        })?,
    };
    for (i, value) in array.iter().enumerate() {
        add_json(builder, i as u64 + 1, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn spec_for(dir: &std::path::Path, data: &str, format: &str) -> CatalogSpec {
        let toml = format!(
            r#"
name = "t"
data = "{data}"
format = "{format}"
id = "id"
text = "title"
image = "img/{{id}}.jpg"
[categories]
broad = "cat"
fine = {{ field = "path", split = "/", part = 1 }}
attributes = ["colour"]
"#
        );
        let path = dir.join("t.toml");
        std::fs::write(&path, toml).unwrap();
        CatalogSpec::from_file(&path).unwrap()
    }

    #[test]
    fn csv_repairs_unquoted_commas_in_last_column_and_reports_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("d.csv")).unwrap();
        writeln!(f, "id,cat,path,colour,title").unwrap();
        writeln!(f, "1,Shoes,a/sneakers,Red,Red Sneakers").unwrap();
        writeln!(f, "2,Bags,a/totes,Blue,Tote, Wallet and Pouch Set").unwrap();
        writeln!(f, "3,Bags,a/totes").unwrap();
        writeln!(f, "4,Bags,a/totes,Blue,").unwrap();
        writeln!(f, "1,Shoes,a/sneakers,Red,Duplicate").unwrap();
        writeln!(f, "5,Shoes,nopart,Red,Plain").unwrap();
        drop(f);
        let spec = spec_for(dir.path(), "d.csv", "csv");
        let cat = Catalog::load(&spec).unwrap();
        let ids: Vec<_> = cat.products.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(cat.products[1].text, "Tote, Wallet and Pouch Set");
        assert_eq!(cat.products[1].fine.as_deref(), Some("totes"));
        assert_eq!(cat.products[0].attributes["colour"], "Red");
        assert_eq!(cat.products[0].image, Some(dir.path().join("img/1.jpg")));
        assert_eq!(cat.repaired_lines, [3]);
        let lines: Vec<u64> = cat.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5, 6, 7], "{:?}", cat.rejected);
        assert!(cat.rejected[1].reason.contains("`title` is empty"));
        assert!(cat.rejected[2].reason.contains("duplicate id"));
        assert!(cat.rejected[3].reason.contains("part 1 of column `path`"));
    }

    #[test]
    fn jsonl_reports_invalid_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("d.jsonl"),
            "{\"id\": 7, \"title\": \"Blue Jeans\", \"cat\": \"Bottomwear\", \"path\": \"x/jeans\"}\n\
             not json\n\n[1]\n",
        )
        .unwrap();
        let cat = Catalog::load(&spec_for(dir.path(), "d.jsonl", "jsonl")).unwrap();
        assert_eq!(cat.products.len(), 1);
        assert_eq!(cat.products[0].id, "7");
        let lines: Vec<u64> = cat.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn missing_data_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = Catalog::load(&spec_for(dir.path(), "nope.csv", "csv")).unwrap_err();
        assert!(format!("{err:#}").contains("nope.csv"));
    }

    #[test]
    fn long_texts_are_cut_and_placeholders_reported() {
        let dir = tempfile::tempdir().unwrap();
        let long = "word ".repeat(200_000); // 1 MB
        std::fs::write(
            dir.path().join("d.csv"),
            format!("id,cat,path,colour,title\n1,Shoes,a/b,Red,{long}\n2,Shoes,a/b,Red,NA\n3,Shoes,a/b,Red,Fine Shoe\n"),
        )
        .unwrap();
        let cat = Catalog::load(&spec_for(dir.path(), "d.csv", "csv")).unwrap();
        assert_eq!(cat.products.len(), 3);
        assert_eq!(cat.products[0].text.chars().count(), MAX_TEXT_CHARS - 1); // trailing space trimmed
        assert_eq!(cat.cut_lines, [2]);
        assert_eq!(
            cat.placeholder_lines,
            [(3, "2".to_string(), "NA".to_string())]
        );
    }

    #[test]
    fn invalid_utf8_is_reported_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"id,cat,path,colour,title\n1,Shoes,a/b,Red,Good\n2,Shoes,a/b,Red,Bad \xff\xfe title\n3,Shoes,a/b,Red,Also good\n".to_vec();
        bytes.extend_from_slice(b"");
        std::fs::write(dir.path().join("d.csv"), bytes).unwrap();
        let cat = Catalog::load(&spec_for(dir.path(), "d.csv", "csv")).unwrap();
        let ids: Vec<_> = cat.products.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["1", "3"]);
        assert_eq!(cat.rejected.len(), 1);
        assert_eq!(cat.rejected[0].line, 3, "{:?}", cat.rejected);
        assert!(
            cat.rejected[0].reason.contains("UTF-8"),
            "{:?}",
            cat.rejected
        );
    }
}
