//! The train/test split: decided by a hash of the product id alone, so it is the same
//! in every command, on every machine, whatever the file order or row count. A model
//! trained on `train` is therefore never evaluated on a product it saw.

use clap::ValueEnum;

/// Which products a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// About 80% of the products.
    Train,
    /// The other ~20%.
    Test,
    /// Every product.
    All,
}

/// Share of products (in percent) that go to the test split.
pub const TEST_PERCENT: u64 = 20;

impl Split {
    /// Whether a product id belongs to this split.
    pub fn contains(self, id: &str) -> bool {
        let is_test = fnv1a64(id.as_bytes()) % 100 < TEST_PERCENT;
        match self {
            Split::Train => !is_test,
            Split::Test => is_test,
            Split::All => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::All => "all",
        }
    }
}

/// FNV-1a, 64 bit. Written out because the split must never change with a crate's
/// version (std's hasher is explicitly unstable across releases); it is six lines.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn split_is_a_partition_near_80_20() {
        let ids: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let test = ids.iter().filter(|id| Split::Test.contains(id)).count();
        let train = ids.iter().filter(|id| Split::Train.contains(id)).count();
        assert_eq!(test + train, ids.len());
        assert!((1_800..2_200).contains(&test), "test share {test}");
    }
}
