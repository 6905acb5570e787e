//! The shipped catalogue descriptions on the real data in ../shared/data.

use std::path::Path;

use vitrina::catalog::{Catalog, CatalogSpec, Split};

fn load(name: &str) -> Catalog {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("catalogs/{name}.toml"));
    Catalog::load(&CatalogSpec::from_file(&path).unwrap()).unwrap()
}

#[test]
fn myntra_loads_every_row_including_the_22_with_unquoted_commas() {
    let catalog = load("myntra");
    assert_eq!(catalog.products.len(), 44_446);
    assert!(
        catalog.rejected.is_empty(),
        "{:?}",
        &catalog.rejected[..3.min(catalog.rejected.len())]
    );
    assert_eq!(catalog.repaired_lines.len(), 22);
    let boss = catalog.products.iter().find(|p| p.id == "44065").unwrap();
    assert_eq!(
        boss.text,
        "Boss Men Perfume, After Shave Balm and Shower Gel Set"
    );
    assert_eq!(boss.broad.as_deref(), Some("Fragrance"));
    assert_eq!(boss.fine.as_deref(), Some("Perfume and Body Mist"));
    assert_eq!(boss.attributes["baseColour"], "Blue");
    let first = &catalog.products[0];
    assert_eq!(first.id, "15970");
    assert!(first.image.as_ref().unwrap().ends_with("images/15970.jpg"));
}

#[test]
fn fashion200k_takes_its_fine_category_from_the_id_path() {
    let catalog = load("fashion200k");
    assert_eq!(catalog.products.len(), 5_000);
    assert!(catalog.rejected.is_empty());
    let first = &catalog.products[0];
    assert_eq!(first.fine.as_deref(), Some("casual_and_day_dresses"));
    assert_eq!(first.broad.as_deref(), Some("dress"));
    assert!(first.image.is_none(), "Fashion200k ships no images here");
}

#[test]
fn the_split_is_about_80_20_and_pinned() {
    let mut catalog = load("myntra");
    let all = catalog.products.len();
    catalog.select(Split::Test, None);
    // Pinned against an independent FNV-1a in Python: a change to the split would
    // silently mix training and test products.
    assert_eq!(catalog.products.len(), 8_977, "of {all}");
    let first: Vec<&str> = catalog
        .products
        .iter()
        .take(3)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(first, ["15970", "30039", "51832"]);
    let mut train = load("myntra");
    train.select(Split::Train, None);
    assert_eq!(train.products.len(), all - 8_977);
    assert!(train.products.iter().all(|p| !Split::Test.contains(&p.id)));
}
