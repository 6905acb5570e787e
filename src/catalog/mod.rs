//! Catalogue loading: a TOML description, the data file it points to, and the
//! deterministic train/test split.

mod load;
mod spec;
mod split;

pub use load::{Catalog, Product, Rejected};
pub use spec::{CatalogSpec, CategorySpec, DataFormat, FieldSpec};
pub use split::{fnv1a64, Split, TEST_PERCENT};
