//! The catalogue description file (TOML): where a shop's products live and which
//! fields mean what. Keeping this outside the code lets one binary index any shop's
//! export without a schema migration.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// How the data file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// Comma-separated with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// One JSON document; products are the array named by `records` (or the root array).
    Json,
}

/// Where a value comes from: a column, or one part of a column split on a separator
/// (Fashion200k keeps its fine category inside the id path).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FieldSpec {
    Column(String),
    Part {
        field: String,
        split: String,
        part: usize,
    },
}

impl FieldSpec {
    /// The source column this value is read from.
    pub fn column(&self) -> &str {
        match self {
            FieldSpec::Column(c) => c,
            FieldSpec::Part { field, .. } => field,
        }
    }

    /// Derives the value from the raw column value; `None` when the part does not exist.
    pub fn extract(&self, raw: &str) -> Option<String> {
        match self {
            FieldSpec::Column(_) => Some(raw.to_string()),
            FieldSpec::Part { split, part, .. } => {
                raw.split(split.as_str()).nth(*part).map(str::to_string)
            }
        }
    }

    /// A short human description for error messages.
    pub fn describe(&self) -> String {
        match self {
            FieldSpec::Column(c) => format!("column `{c}`"),
            FieldSpec::Part { field, split, part } => {
                format!("part {part} of column `{field}` split on {split:?}")
            }
        }
    }
}

/// The category columns used for evaluation and shown in results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    pub broad: Option<FieldSpec>,
    pub fine: Option<FieldSpec>,
    /// Other columns kept on each product as free-form attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
}

/// A parsed catalogue description, with paths resolved against the TOML file.
/// Unknown keys are refused (a typo such as `imgae` would otherwise silently give a
/// catalogue without images).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSpec {
    pub name: String,
    /// Data file; relative paths are resolved against the TOML file's folder.
    pub data: PathBuf,
    pub format: DataFormat,
    /// For `format = "json"`: the key of the array holding the products.
    pub records: Option<String>,
    pub id: String,
    pub text: String,
    /// Image path pattern relative to the data file's folder; `{id}` is replaced.
    pub image: Option<String>,
    pub categories: CategorySpec,
}

impl CatalogSpec {
    /// Reads and validates a catalogue TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read catalogue file {}", path.display()))?;
        let mut spec: CatalogSpec = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "catalogue file {} is not valid{}: {e}",
                path.display(),
                suggestion(e.message())
            )
        })?;
        if spec.data.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            spec.data = base.join(&spec.data);
        }
        // Absolute (and without `..` when the file exists), so stored image paths
        // resolve from any working directory.
        spec.data = spec
            .data
            .canonicalize()
            .unwrap_or_else(|_| super::absolute(&spec.data));
        if let Some(pattern) = &spec.image {
            if !pattern.contains("{id}") {
                bail!(
                    "catalogue file {}: `image` pattern {pattern:?} must contain {{id}}",
                    path.display()
                );
            }
        }
        Ok(spec)
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" message: the nearest key.
fn suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return String::new();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return String::new();
    };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::levenshtein(unknown, k), k))
        .min();
    match best {
        Some((d, k)) if d <= 3 => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

impl CatalogSpec {
    /// The folder image patterns are relative to.
    pub fn data_dir(&self) -> &Path {
        self.data.parent().unwrap_or(Path::new("."))
    }

    /// The image path of a product, if the catalogue has images.
    pub fn image_path(&self, id: &str) -> Option<PathBuf> {
        self.image
            .as_ref()
            .map(|pattern| self.data_dir().join(pattern.replace("{id}", id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_part_extracts_path_segment() {
        let spec = FieldSpec::Part {
            field: "id".into(),
            split: "/".into(),
            part: 2,
        };
        assert_eq!(
            spec.extract("women/dresses/casual_and_day_dresses/1/1_9.jpeg")
                .as_deref(),
            Some("casual_and_day_dresses")
        );
        assert_eq!(spec.extract("women/dresses"), None);
    }

    #[test]
    fn shipped_catalogues_parse() {
        for name in ["myntra", "fashion200k"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("catalogs/{name}.toml"));
            let spec = CatalogSpec::from_file(&path).unwrap();
            assert_eq!(spec.name, name);
            assert!(spec.categories.broad.is_some() && spec.categories.fine.is_some());
        }
    }

    #[test]
    fn a_typo_in_a_key_is_an_error_that_suggests_the_right_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.toml");
        std::fs::write(
            &path,
            "name = \"shop\"\ndata = \"d.csv\"\nformat = \"csv\"\nid = \"id\"\ntext = \"title\"\n\
             imgae = \"images/{id}.jpg\"\n[categories]\nbroad = \"cat\"\n",
        )
        .unwrap();
        let err = format!("{:#}", CatalogSpec::from_file(&path).unwrap_err());
        assert!(
            err.contains("shop.toml")
                && err.contains("imgae")
                && err.contains("did you mean `image`?"),
            "{err}"
        );
        assert!(err.contains("line 6"), "names the line: {err}");
    }

    #[test]
    fn the_data_path_is_absolute_whatever_the_working_directory() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogs/myntra.toml");
        let spec = CatalogSpec::from_file(&path).unwrap();
        assert!(spec.data.is_absolute(), "{}", spec.data.display());
        assert!(spec.image_path("1").unwrap().is_absolute());
    }
}
