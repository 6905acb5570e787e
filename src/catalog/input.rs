//! Products given one at a time (`vitrina upsert` JSON lines, `PUT /api/products/{id}`)
//! rather than through a catalogue file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::Value;

use super::load::{clean_text, Product};

/// One product as JSON: `{"id": "...", "text": "...", "image": "path", "broad": "...",
/// "fine": "...", "attributes": {"gender": "Men", "year": 2016}}`. Unknown keys are
/// refused, so a typo (`"titel"`) is an error rather than a silently empty field.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    #[serde(default, deserialize_with = "id_string")]
    #[schema(value_type = Option<String>)]
    pub id: Option<String>,
    pub text: String,
    /// A path, relative to the file the product was read from. Over HTTP, where a
    /// client must not name files on the server, images come as `image_base64`.
    #[serde(default)]
    pub image: Option<String>,
    /// The image's bytes, base64 (HTTP only).
    #[serde(default)]
    pub image_base64: Option<String>,
    #[serde(default)]
    pub broad: Option<String>,
    #[serde(default)]
    pub fine: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, Value>,
}

/// Ids may be given as numbers (`"id": 15970`), as in many shop exports.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

impl ProductInput {
    /// The product, with its image path resolved against `base` (the JSONL file's
    /// folder) and made absolute, so it resolves from any working directory.
    pub fn into_product(self, base: Option<&Path>) -> Result<(Product, bool)> {
        let Some(id) = self
            .id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
        else {
            bail!("field `id` is missing or empty");
        };
        let (text, cut) = clean_text(&self.text);
        if text.is_empty() {
            bail!("product {id:?}: field `text` is empty");
        }
        let mut attributes = BTreeMap::new();
        for (k, v) in self.attributes {
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                other => bail!(
                    "product {id:?}: attribute `{k}` is {other}; attributes are strings, numbers or booleans"
                ),
            };
            attributes.insert(k, v);
        }
        let image = match (self.image, base) {
            (Some(p), Some(base)) => Some(absolute(&base.join(p))),
            (Some(p), None) => Some(absolute(Path::new(&p))),
            (None, _) => None,
        };
        let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Ok((
            Product {
                id,
                text,
                broad: clean(self.broad),
                fine: clean(self.fine),
                attributes,
                image,
            },
            cut,
        ))
    }
}

/// `path` made absolute against the working directory (without resolving links, and
/// without requiring the file to exist).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
