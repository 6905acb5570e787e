//! Catalogue loading: a TOML description, the data file it points to, and the
//! deterministic train/test split.

mod input;
mod load;
mod spec;
mod split;

pub use input::{absolute, ProductInput};
pub use load::{clean_text, is_placeholder, Catalog, Product, Rejected, MAX_TEXT_CHARS};
pub use spec::{CatalogSpec, CategorySpec, DataFormat, FieldSpec};
pub use split::{fnv1a64, Split, TEST_PERCENT};
