//! The store's full-text index: BM25 over product titles and the values of their
//! categories and attributes, for keyword and hybrid search.
//!
//! Like facets, it is derived from the products and built on first use per store
//! version (a folder store's snapshot, a PostgreSQL table's change counter): about
//! 0.2 s for 44k products on one core (README, Ranking). Written here rather than taken
//! from tantivy because the store already owns the products, their ids, filters and
//! versions; tantivy would add a second store of the same products to keep in step (and
//! ~40 s of cold build) for an index of a few hundred lines.
//!
//! Scoring is BM25F (Robertson & Zaragoza, "The Probabilistic Relevance Framework:
//! BM25 and Beyond", 2009) with two fields: the title (weight 1) and the category and
//! attribute values (weight [`Bm25Params::attribute_weight`]). Per term and document:
//!
//! ```text
//! tf~   = sum over fields f of  w_f * tf_f / (1 - b + b * len_f / avg_len_f)
//! score = idf * tf~ / (k1 + tf~),      idf = ln(1 + (N - df + 0.5) / (df + 0.5))
//! ```
//!
//! (Lucene's form: the constant `(k1 + 1)` numerator factor is left out; it changes no
//! ranking.) Terms are lowercased, plural-stemmed tokens (see [`stem`]). A query word
//! the catalogue never uses is matched to the catalogue's words within one edit
//! (insertion, deletion, substitution or transposition of two neighbours), so
//! "leathr belt" finds leather belts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::store::{Candidates, Hit, StoredProduct};

/// BM25 parameters. The defaults are the usual ones (k1 1.2, b 0.75); the attribute
/// field weight was chosen on the Myntra train split (README, Ranking).
#[derive(Debug, Clone, Copy)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
    pub attribute_weight: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params {
            k1: 1.2,
            b: 0.75,
            attribute_weight: 0.5,
        }
    }
}

/// A misspelt word (one edit from a catalogue word) counts this much of the word it is
/// taken for, so that words typed right weigh more than guesses.
const TYPO_WEIGHT: f32 = 0.8;
/// Words shorter than this are not corrected: one edit from a three-letter word is
/// too many other words.
const TYPO_MIN_CHARS: usize = 4;

/// Lowercased runs of letters and digits. Single characters count ("3/4 pant" is
/// `3 4 pant`), unlike the TF-IDF baseline's scikit-learn pattern: sizes and fractions
/// are words shoppers type.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Plurals only: Porter's step 1a ("dresses" -> "dress", "shoes" -> "shoe",
/// "accessories" -> "accessory", "dress" and "status" kept) plus "-ches", "-shes" and
/// "-xes" ("watches" -> "watch"), so a shopper's singular finds plural titles and back.
/// A full stemmer also folds words that name different things in a catalogue and is
/// tuned for prose, not titles; this one only undoes English plurals.
pub fn stem(token: &str) -> String {
    let n = token.len();
    let cut = |k: usize, add: &str| format!("{}{add}", &token[..n - k]);
    if n <= 3 || !token.ends_with('s') || token.ends_with("ss") || token.ends_with("us") {
        return token.to_string();
    }
    if token.ends_with("sses") {
        cut(2, "")
    } else if token.ends_with("ies") && n > 4 {
        cut(3, "y")
    } else if token.ends_with("ches") || token.ends_with("shes") || token.ends_with("xes") {
        cut(2, "")
    } else {
        cut(1, "")
    }
}

/// Tokens of `text`, stemmed: the terms the index stores and queries look up.
pub fn terms(text: &str) -> Vec<String> {
    tokenize(text).iter().map(|t| stem(t)).collect()
}

/// What a keyword query asks, parsed from the shopper's text by the search layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextQuery {
    /// Free words: a product matching more of them (and rarer ones) ranks higher.
    pub words: String,
    /// Each must appear in the title as written, words adjacent and in order.
    pub phrases: Vec<String>,
    /// A product whose title has any of these words is left out.
    pub excluded: Vec<String>,
}

impl TextQuery {
    /// Plain words, no operators (a product's own title in "more like this").
    pub fn words(text: &str) -> Self {
        TextQuery {
            words: text.to_string(),
            ..TextQuery::default()
        }
    }

    /// Whether the query restricts which products may be returned (phrases, exclusions).
    pub fn constrains(&self) -> bool {
        !self.phrases.is_empty() || !self.excluded.is_empty()
    }
}

/// Words of a query that name a value of a product field ("red" -> baseColour Red),
/// learned from the catalogue's own values: search prefers products with that value
/// (a soft boost, not a filter) and the page shows it as a removable chip.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Understood {
    /// The query's words (lowercase).
    pub words: String,
    pub field: String,
    pub value: String,
}

/// One occurrence list entry: a document and how often the term occurs in each field.
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    title_tf: u16,
    attribute_tf: u16,
}

/// A query resolved against the index's vocabulary.
struct Resolved {
    /// Per query word: the catalogue terms it stands for, with weights (one exact term,
    /// or the terms within one edit of a misspelling; empty if none).
    words: Vec<Vec<(u32, f32)>>,
    /// Per phrase: its terms (`None`: a word the catalogue never uses, so nothing
    /// matches).
    phrases: Vec<Option<Vec<u32>>>,
    excluded: Vec<u32>,
}

/// The BM25 index of one version of a store.
pub struct TextIndex {
    params: Bm25Params,
    products: Vec<StoredProduct>,
    by_id: HashMap<String, u32>,
    vocabulary: HashMap<String, u32>,
    terms: Vec<String>,
    /// Each term as first written in a title or value (lowercase, before stemming):
    /// what a corrected query shows and embeds.
    surface: Vec<String>,
    postings: Vec<Vec<Posting>>,
    /// Each document's title as term ids, in order (phrases and exclusions).
    titles: Vec<Box<[u32]>>,
    title_len: Vec<u16>,
    attribute_len: Vec<u16>,
    avg_title_len: f32,
    avg_attribute_len: f32,
    /// Every distinct text value of every field (numbers, such as years, left out),
    /// with its terms, longest first: what query words may name.
    values: Vec<FieldValue>,
}

struct FieldValue {
    field: String,
    value: String,
    terms: Vec<String>,
}

impl TextIndex {
    pub fn build(products: Vec<StoredProduct>, params: Bm25Params) -> Self {
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut terms: Vec<String> = Vec::new();
        let mut surface: Vec<String> = Vec::new();
        let mut postings: Vec<Vec<Posting>> = Vec::new();
        let mut titles = Vec::with_capacity(products.len());
        let mut title_len = Vec::with_capacity(products.len());
        let mut attribute_len = Vec::with_capacity(products.len());
        let mut by_id = HashMap::with_capacity(products.len());
        let mut id_of = |token: String| -> u32 {
            let term = stem(&token);
            if let Some(&t) = vocabulary.get(&term) {
                return t;
            }
            let t = terms.len() as u32;
            vocabulary.insert(term.clone(), t);
            terms.push(term);
            surface.push(token);
            t
        };
        let mut counts: HashMap<u32, (u16, u16)> = HashMap::new();
        for (doc, p) in products.iter().enumerate() {
            by_id.insert(p.id().to_string(), doc as u32);
            let title: Vec<u32> = tokenize(&p.product.text)
                .into_iter()
                .map(&mut id_of)
                .collect();
            let values = p.product.fields().map(|(_, value)| value);
            let attributes: Vec<u32> = values.flat_map(tokenize).map(&mut id_of).collect();
            counts.clear();
            for &t in &title {
                counts.entry(t).or_default().0 += 1;
            }
            for &t in &attributes {
                counts.entry(t).or_default().1 += 1;
            }
            let mut entries: Vec<(u32, (u16, u16))> = counts.drain().collect();
            entries.sort_unstable_by_key(|&(t, _)| t);
            for (t, (title_tf, attribute_tf)) in entries {
                if postings.len() <= t as usize {
                    postings.resize_with(t as usize + 1, Vec::new);
                }
                postings[t as usize].push(Posting {
                    doc: doc as u32,
                    title_tf,
                    attribute_tf,
                });
            }
            title_len.push(clamp_u16(title.len()));
            attribute_len.push(clamp_u16(attributes.len()));
            titles.push(title.into_boxed_slice());
        }
        let mut distinct: BTreeSet<(&str, &str)> = BTreeSet::new();
        for p in &products {
            distinct.extend(p.product.fields());
        }
        let mut values: Vec<FieldValue> = distinct
            .into_iter()
            .filter(|(_, v)| v.trim().parse::<f64>().is_err())
            .map(|(field, value)| FieldValue {
                field: field.to_string(),
                value: value.to_string(),
                terms: terms_of(value).collect(),
            })
            .filter(|v| !v.terms.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.terms.len()));
        let mean = |lens: &[u16]| {
            (lens.iter().map(|&l| l as f64).sum::<f64>() / lens.len().max(1) as f64).max(1.0) as f32
        };
        TextIndex {
            params,
            avg_title_len: mean(&title_len),
            avg_attribute_len: mean(&attribute_len),
            products,
            by_id,
            vocabulary,
            terms,
            surface,
            postings,
            titles,
            title_len,
            attribute_len,
            values,
        }
    }

    /// The runs of query words that name a field's value, longest first per field
    /// ("sports shoes": fine Sports Shoes, broad Shoes, usage Sports). Words are matched
    /// as the index matches them (lowercase, plurals folded, adjacent, in order).
    pub fn understand(&self, words: &str) -> Vec<Understood> {
        let tokens = tokenize(words);
        let terms: Vec<String> = tokens.iter().map(|t| stem(t)).collect();
        let mut found = Vec::new();
        for v in &self.values {
            let n = v.terms.len();
            if let Some(at) = terms.windows(n).position(|w| w == v.terms.as_slice()) {
                found.push(Understood {
                    words: tokens[at..at + n].join(" "),
                    field: v.field.clone(),
                    value: v.value.clone(),
                });
            }
        }
        found
    }

    /// For each field of `understood`, whether the product `id` has one of the values
    /// named: the share of fields it matches (0 when the index does not know it).
    pub fn agreement(&self, id: &str, understood: &BTreeMap<String, Vec<String>>) -> f32 {
        let Some(&doc) = self.by_id.get(id) else {
            return 0.0;
        };
        let q = &self.products[doc as usize].product;
        let matched = understood
            .iter()
            .filter(|(field, values)| {
                q.field(field)
                    .is_some_and(|v| values.iter().any(|x| x == v))
            })
            .count();
        matched as f32 / understood.len().max(1) as f32
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Inverse document frequency of a term (Lucene's BM25 form, never negative).
    fn idf(&self, term: u32) -> f32 {
        let n = self.products.len() as f32;
        let df = self.postings[term as usize].len() as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The terms a query word stands for: itself if the catalogue uses it, else the
    /// catalogue's most frequent term one edit away (the noisy-channel choice with equal
    /// error costs, as in Norvig's corrector: "sneekers" is "sneakers", found in
    /// hundreds of titles, not "sleeker", found in one); equally frequent ones all count.
    fn expand(&self, term: &str) -> Vec<(u32, f32)> {
        if let Some(&t) = self.vocabulary.get(term) {
            return vec![(t, 1.0)];
        }
        if term.chars().count() < TYPO_MIN_CHARS {
            return Vec::new();
        }
        let near: Vec<u32> = self
            .terms
            .iter()
            .enumerate()
            .filter(|(_, known)| known.len().abs_diff(term.len()) <= 4)
            .filter(|(_, known)| strsim::osa_distance(term, known) == 1)
            .map(|(t, _)| t as u32)
            .collect();
        let df = |t: u32| self.postings[t as usize].len();
        let most = near.iter().map(|&t| df(t)).max().unwrap_or(0);
        near.into_iter()
            .filter(|&t| df(t) == most)
            .map(|t| (t, TYPO_WEIGHT))
            .collect()
    }

    /// `text` with each word the catalogue never uses replaced by the word it is taken
    /// for (see [`TextIndex::expand`]); `None` when nothing changed. Hybrid search
    /// embeds the corrected text, since a misspelling also misleads the text tower.
    pub fn correct(&self, text: &str) -> Option<String> {
        let mut changed = false;
        let words: Vec<String> = text
            .split_whitespace()
            .map(|word| {
                let tokens = tokenize(word);
                if let [token] = tokens.as_slice() {
                    if !self.vocabulary.contains_key(&stem(token)) {
                        if let Some(&(t, _)) = self.expand(&stem(token)).first() {
                            changed = true;
                            return self.surface[t as usize].clone();
                        }
                    }
                }
                word.to_string()
            })
            .collect();
        changed.then(|| words.join(" "))
    }

    fn resolve(&self, query: &TextQuery) -> Resolved {
        let mut words: Vec<Vec<(u32, f32)>> =
            terms_of(&query.words).map(|t| self.expand(&t)).collect();
        // Phrase words also rank (exactly, no typos): a product must hold the phrase,
        // and among those the usual scores order them.
        let phrases: Vec<Option<Vec<u32>>> = query
            .phrases
            .iter()
            .map(|phrase| {
                terms_of(phrase)
                    .map(|t| self.vocabulary.get(&t).copied())
                    .collect::<Option<Vec<u32>>>()
            })
            .collect();
        for phrase in phrases.iter().flatten() {
            words.extend(phrase.iter().map(|&t| vec![(t, 1.0)]));
        }
        let excluded = query
            .excluded
            .iter()
            .flat_map(|w| terms_of(w))
            .filter_map(|t| self.vocabulary.get(&t).copied())
            .collect();
        Resolved {
            words,
            phrases,
            excluded,
        }
    }

    /// Whether a document passes the query's phrases and exclusions.
    fn passes(&self, doc: u32, query: &Resolved) -> bool {
        let title = &self.titles[doc as usize];
        if query.excluded.iter().any(|t| title.contains(t)) {
            return false;
        }
        query.phrases.iter().all(|phrase| match phrase {
            None => false,
            Some(p) if p.is_empty() => true,
            Some(p) => title.windows(p.len()).any(|w| w == p.as_slice()),
        })
    }

    /// Whether the product `id` passes the query's phrases and exclusions (a vector
    /// search's results are held to them); products the index does not know pass.
    pub fn admits(&self, id: &str, query: &TextQuery) -> bool {
        self.admits_all(query)(id)
    }

    /// [`TextIndex::admits`] for many ids, resolving the query once.
    pub fn admits_all<'a>(&'a self, query: &TextQuery) -> impl Fn(&str) -> bool + 'a {
        let resolved = self.resolve(query);
        move |id: &str| match self.by_id.get(id) {
            Some(&doc) => self.passes(doc, &resolved),
            None => true,
        }
    }

    /// The BM25F score of one term in one document.
    fn term_score(&self, posting: &Posting, idf: f32) -> f32 {
        let Bm25Params {
            k1,
            b,
            attribute_weight,
        } = self.params;
        let d = posting.doc as usize;
        let norm = |len: u16, avg: f32| 1.0 - b + b * len as f32 / avg;
        let tf = posting.title_tf as f32 / norm(self.title_len[d], self.avg_title_len)
            + attribute_weight * posting.attribute_tf as f32
                / norm(self.attribute_len[d], self.avg_attribute_len);
        idf * tf / (k1 + tf)
    }

    /// The `k` best products for the query among `candidates`, best first (equal
    /// scores in id order). Products sharing no word with the query are not returned.
    pub fn search(&self, query: &TextQuery, k: usize, candidates: &Candidates) -> Vec<Hit> {
        let resolved = self.resolve(query);
        // Dense accumulators: a query word like "men" touches a third of a catalogue,
        // where hashing every posting costs more than the scoring.
        let n = self.products.len();
        let mut scores = vec![0f32; n];
        let mut best = vec![0f32; n];
        let mut touched: Vec<u32> = Vec::new();
        for alternatives in &resolved.words {
            // A misspelt word's alternatives: a document counts its best one.
            for &(t, weight) in alternatives {
                let idf = self.idf(t) * weight;
                for posting in &self.postings[t as usize] {
                    let d = posting.doc as usize;
                    let s = self.term_score(posting, idf);
                    if best[d] == 0.0 {
                        touched.push(posting.doc);
                    }
                    best[d] = best[d].max(s);
                }
            }
            for &d in &touched {
                scores[d as usize] += std::mem::take(&mut best[d as usize]);
            }
            touched.clear();
        }
        // Ids are made only for the k returned: a common word scores thousands.
        let mut scored: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .filter(|&(doc, &score)| {
                score > 0.0
                    && self.passes(doc as u32, &resolved)
                    && candidates.admits(&self.products[doc])
            })
            .map(|(doc, &score)| (doc as u32, score))
            .collect();
        let id = |d: u32| self.products[d as usize].id();
        let order =
            |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then_with(|| id(a.0).cmp(id(b.0)));
        if scored.len() > k {
            scored.select_nth_unstable_by(k, order);
            scored.truncate(k);
        }
        scored.sort_by(order);
        scored
            .into_iter()
            .map(|(doc, score)| Hit {
                id: id(doc).to_string(),
                score,
            })
            .collect()
    }
}

fn terms_of(text: &str) -> impl Iterator<Item = String> + '_ {
    tokenize(text).into_iter().map(|t| stem(&t))
}

fn clamp_u16(n: usize) -> u16 {
    n.min(u16::MAX as usize) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Product;

    fn product(id: &str, title: &str, fine: Option<&str>) -> StoredProduct {
        StoredProduct {
            product: Product {
                id: id.into(),
                text: title.into(),
                fine: fine.map(str::to_string),
                ..Product::default()
            },
            has_image: true,
            content_hash: 0,
        }
    }

    #[test]
    fn tokens_keep_single_characters() {
        assert_eq!(
            tokenize("Men's Blue T-shirt, 3/4 Pant"),
            ["men", "s", "blue", "t", "shirt", "3", "4", "pant"]
        );
    }

    #[test]
    fn plural_stemming_is_conservative() {
        for (word, stemmed) in [
            ("dresses", "dress"),
            ("shoes", "shoe"),
            ("accessories", "accessory"),
            ("jeans", "jean"),
            ("watches", "watch"),
            ("sunglasses", "sunglass"),
            ("dress", "dress"),
            ("status", "status"),
            ("bus", "bus"),
            ("ties", "tie"),
        ] {
            assert_eq!(stem(word), stemmed, "{word}");
        }
    }

    #[test]
    fn bm25_scores_match_a_hand_computation() {
        // Title field only (no categories), k1 = 1.2, b = 0.75.
        let docs = vec![
            product("a", "red dress", None),
            product("b", "red red shirt", None),
            product("c", "blue shirt with long sleeve", None),
        ];
        let index = TextIndex::build(docs, Bm25Params::default());
        let hits = index.search(&TextQuery::words("red"), 10, &Candidates::default());
        // N = 3, df(red) = 2: idf = ln(1 + 1.5 / 2.5); lengths 2, 3, 5 (avg 10/3).
        let idf = (1.0f32 + 1.5 / 2.5).ln();
        let bm25 = |tf: f32, len: f32| {
            let t = tf / (1.0 - 0.75 + 0.75 * len / (10.0 / 3.0));
            idf * t / (1.2 + t)
        };
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].id, "b", "two occurrences beat one");
        assert!((hits[0].score - bm25(2.0, 3.0)).abs() < 1e-5, "{hits:?}");
        assert!((hits[1].score - bm25(1.0, 2.0)).abs() < 1e-5, "{hits:?}");
        // Two words add up.
        let hits = index.search(&TextQuery::words("red dress"), 10, &Candidates::default());
        let idf_dress = (1.0f32 + 2.5 / 1.5).ln();
        let t = 1.0 / (1.0 - 0.75 + 0.75 * 2.0 / (10.0 / 3.0));
        let expected = bm25(1.0, 2.0) + idf_dress * t / (1.2 + t);
        assert_eq!(hits[0].id, "a");
        assert!((hits[0].score - expected).abs() < 1e-5);
    }

    #[test]
    fn categories_count_at_their_weight() {
        let docs = vec![
            product("1", "Puma Running Trainers", Some("Sports Shoes")),
            product("2", "Shoe Horn", None),
            product("3", "Nike Cap", Some("Caps")),
        ];
        let index = TextIndex::build(docs, Bm25Params::default());
        let hits = index.search(&TextQuery::words("sports shoe"), 10, &Candidates::default());
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["1", "2"], "the category names the trainers");
        let none = Bm25Params {
            attribute_weight: 0.0,
            ..Bm25Params::default()
        };
        let index = TextIndex::build(index.products.clone(), none);
        let hits = index.search(&TextQuery::words("sports shoe"), 10, &Candidates::default());
        assert_eq!(hits[0].id, "2", "without categories only the title counts");
    }

    #[test]
    fn phrases_exclusions_and_typos() {
        let docs = vec![
            product("1", "Black Leather Belt", None),
            product("2", "Brown Leather Belt", None),
            product("3", "Belt Black Leather", None),
            product("4", "Black Party Dress", None),
            product("5", "Red Party Dress", None),
        ];
        let index = TextIndex::build(docs, Bm25Params::default());
        let all = Candidates::default();
        let ids = |hits: Vec<Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
        let q = TextQuery {
            phrases: vec!["leather belt".into()],
            ..TextQuery::default()
        };
        assert_eq!(ids(index.search(&q, 10, &all)), ["1", "2"]);
        let q = TextQuery {
            words: "dress".into(),
            excluded: vec!["black".into()],
            ..TextQuery::default()
        };
        assert_eq!(ids(index.search(&q, 10, &all)), ["5"]);
        assert!(!index.admits("4", &q) && index.admits("5", &q) && index.admits("zz", &q));
        let mut found = ids(index.search(&TextQuery::words("leathr blet"), 10, &all));
        found.sort();
        assert_eq!(
            found,
            ["1", "2", "3"],
            "one edit each: deletion, transposition"
        );
        assert!(index.search(&TextQuery::words("lether"), 10, &all).len() == 3);
        let q = TextQuery {
            phrases: vec!["leathr belt".into()],
            ..TextQuery::default()
        };
        assert!(index.search(&q, 10, &all).is_empty(), "phrases are exact");
        assert_eq!(
            index.correct("Leathr  belt").as_deref(),
            Some("leather belt")
        );
        assert_eq!(index.correct("leather belt"), None);
    }

    #[test]
    fn query_words_that_name_values_are_understood() {
        let mut dress = product("1", "Rose Party Dress", Some("Dresses"));
        dress
            .product
            .attributes
            .insert("baseColour".into(), "Red".into());
        dress
            .product
            .attributes
            .insert("year".into(), "2012".into());
        let mut shoe = product("2", "Trainers", Some("Sports Shoes"));
        shoe.product.broad = Some("Shoes".into());
        shoe.product
            .attributes
            .insert("usage".into(), "Sports".into());
        let index = TextIndex::build(vec![dress, shoe], Bm25Params::default());
        let named = |q: &str| {
            let mut u: Vec<(String, String, String)> = index
                .understand(q)
                .into_iter()
                .map(|u| (u.words, u.field, u.value))
                .collect();
            u.sort();
            u
        };
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            named("RED party dress"),
            [t("dress", "fine", "Dresses"), t("red", "baseColour", "Red")]
        );
        assert_eq!(
            named("sports shoe"),
            [
                t("shoe", "broad", "Shoes"),
                t("sports", "usage", "Sports"),
                t("sports shoe", "fine", "Sports Shoes"),
            ]
        );
        assert!(
            named("2012 shoes sports").len() == 2,
            "years are not words; order counts"
        );
        let mut want = BTreeMap::new();
        want.insert("baseColour".to_string(), vec!["Red".to_string()]);
        want.insert("fine".to_string(), vec!["Sports Shoes".to_string()]);
        assert_eq!(index.agreement("1", &want), 0.5);
        assert_eq!(index.agreement("2", &want), 0.5);
        assert_eq!(index.agreement("3", &want), 0.0);
    }
}
