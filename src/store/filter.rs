//! Filters on product fields, applied inside the search ("men's shoes" under a query):
//! a filtered search returns k results whenever k products match, because the filter
//! decides which products are scored, rather than trimming a short list afterwards.
//!
//! Syntax (CLI `--filter`, HTTP `filter=`; repeat it, every clause must hold):
//! - `broad=Shoes`, `gender=Men,Unisex` (any of; `:` works as `=` in URLs);
//! - `gender!=Women` (none of);
//! - `year>=2015`, `year<2018`, `>`, `<=` (numbers, on attributes whose values are numbers).
//!
//! Fields are `broad`, `fine` and the catalogue's attributes. Text values compare without
//! regard to case. Each store translates a filter its own way (the embedded store tests
//! each product; PostgreSQL would write SQL), so this type stays plain data.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;

use super::StoredProduct;

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Compare {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = "<")]
    Below,
}

impl Compare {
    /// The operator as written (`>=`, `<=`, `>`, `<`), also valid SQL.
    pub fn symbol(self) -> &'static str {
        match self {
            Compare::AtLeast => ">=",
            Compare::AtMost => "<=",
            Compare::Above => ">",
            Compare::Below => "<",
        }
    }

    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Compare::AtLeast => value >= bound,
            Compare::AtMost => value <= bound,
            Compare::Above => value > bound,
            Compare::Below => value < bound,
        }
    }
}

/// What a clause asks of a field's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Equal (without regard to case) to one of these.
    AnyOf(Vec<String>),
    /// Equal to none of these.
    NoneOf(Vec<String>),
    Number(Compare, f64),
}

/// One condition: `field` passes `test`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clause {
    pub field: String,
    pub test: Test,
}

/// All clauses must hold. The empty filter admits every product.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

/// The fields products have, with their most common values: the page's filter chips,
/// and the list an unknown field is checked against.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Facets {
    /// Field -> facet, `broad` and `fine` first when present.
    pub fields: Vec<Facet>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Facet {
    pub field: String,
    /// Products with a value for this field.
    pub products: usize,
    /// Whether every value is a number (numeric comparisons allowed).
    pub numeric: bool,
    /// The most common values with their counts, most common first: `[value, count]`.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub values: Vec<(String, usize)>,
    /// How many distinct values there are in all.
    pub distinct: usize,
}

/// Field -> value -> products with that value.
pub type Counts = BTreeMap<String, BTreeMap<String, usize>>;

/// Values listed per facet.
const TOP_VALUES: usize = 50;

impl Facets {
    /// The facets of a set of products.
    pub fn of<'a>(products: impl Iterator<Item = &'a StoredProduct>) -> Facets {
        let mut counts: Counts = BTreeMap::new();
        for p in products {
            for (field, value) in p.product.fields() {
                *counts
                    .entry(field.into())
                    .or_default()
                    .entry(value.into())
                    .or_default() += 1;
            }
        }
        Facets::from_counts(counts)
    }

    /// The facets from each field's count of products per value (a database can
    /// count them without shipping every product).
    pub fn from_counts(counts: Counts) -> Facets {
        let mut fields: Vec<Facet> = counts
            .into_iter()
            .map(|(field, values)| {
                let numeric = values.keys().all(|v| v.trim().parse::<f64>().is_ok());
                let products = values.values().sum();
                let distinct = values.len();
                let mut values: Vec<(String, usize)> = values.into_iter().collect();
                values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                values.truncate(TOP_VALUES);
                Facet {
                    field,
                    products,
                    numeric,
                    values,
                    distinct,
                }
            })
            .collect();
        let rank = |f: &Facet| match f.field.as_str() {
            "broad" => 0,
            "fine" => 1,
            _ => 2,
        };
        fields.sort_by_key(rank);
        Facets { fields }
    }

    pub fn get(&self, field: &str) -> Option<&Facet> {
        self.fields.iter().find(|f| f.field == field)
    }
}

impl Filter {
    /// Parses filter expressions (see the module docs).
    pub fn parse<S: AsRef<str>>(expressions: &[S]) -> Result<Filter> {
        let mut clauses = Vec::new();
        for e in expressions {
            clauses.push(parse_clause(e.as_ref())?);
        }
        Ok(Filter { clauses })
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Checks the fields against what the products have: an unknown field, or a number
    /// comparison on a text field, is an error that lists the fields.
    pub fn check(&self, facets: &Facets) -> Result<()> {
        for c in &self.clauses {
            let Some(facet) = facets.get(&c.field) else {
                let known: Vec<&str> = facets.fields.iter().map(|f| f.field.as_str()).collect();
                bail!(
                    "filter on unknown field `{}`: this index's products have {}",
                    c.field,
                    if known.is_empty() {
                        "no fields to filter on".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            };
            if matches!(c.test, Test::Number(..)) && !facet.numeric {
                bail!(
                    "filter `{}`: field `{}` holds text (e.g. {:?}), not numbers; use `{}=VALUE`",
                    describe(c),
                    c.field,
                    facet.values.first().map(|v| v.0.as_str()).unwrap_or(""),
                    c.field
                );
            }
        }
        Ok(())
    }

    /// Whether a product passes every clause.
    pub fn matches(&self, p: &StoredProduct) -> bool {
        self.clauses
            .iter()
            .all(|c| match (&c.test, p.product.field(&c.field)) {
                (Test::AnyOf(options), Some(v)) => {
                    options.iter().any(|o| o.eq_ignore_ascii_case(v.trim()))
                }
                (Test::AnyOf(_), None) => false,
                (Test::NoneOf(options), Some(v)) => {
                    !options.iter().any(|o| o.eq_ignore_ascii_case(v.trim()))
                }
                (Test::NoneOf(_), None) => true,
                (Test::Number(op, bound), Some(v)) => {
                    v.trim().parse::<f64>().is_ok_and(|x| op.holds(x, *bound))
                }
                (Test::Number(..), None) => false,
            })
    }
}

/// The clause as the user would write it.
pub fn describe(c: &Clause) -> String {
    match &c.test {
        Test::AnyOf(v) => format!("{}={}", c.field, v.join(",")),
        Test::NoneOf(v) => format!("{}!={}", c.field, v.join(",")),
        Test::Number(op, n) => {
            format!("{}{}{n}", c.field, op.symbol())
        }
    }
}

fn parse_clause(expression: &str) -> Result<Clause> {
    let e = expression.trim();
    let usage = || {
        anyhow::anyhow!(
            "malformed filter {expression:?}: use FIELD=VALUE[,VALUE...], FIELD!=VALUE, or FIELD>=NUMBER \
             (also <=, >, <), e.g. broad=Shoes, gender=Men,Unisex, year>=2015"
        )
    };
    // The first operator character splits field from value; two-character operators first.
    let at = e.find(['=', ':', '<', '>', '!']).ok_or_else(usage)?;
    let field = e[..at].trim();
    let rest = &e[at..];
    let (op, value) = ["!=", ">=", "<=", "=", ":", ">", "<"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
        .ok_or_else(usage)?;
    if field.is_empty() || value.is_empty() || field.contains(char::is_whitespace) {
        return Err(usage());
    }
    let list = || -> Result<Vec<String>> {
        let values: Vec<String> = value
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(usage());
        }
        Ok(values)
    };
    let number = |op: Compare| -> Result<Test> {
        let n: f64 = value.parse().map_err(|_| {
            anyhow::anyhow!("malformed filter {expression:?}: {value:?} is not a number")
        })?;
        if !n.is_finite() {
            bail!("malformed filter {expression:?}: {value:?} is not a finite number");
        }
        Ok(Test::Number(op, n))
    };
    let test = match op {
        "=" | ":" => Test::AnyOf(list()?),
        "!=" => Test::NoneOf(list()?),
        ">=" => number(Compare::AtLeast)?,
        "<=" => number(Compare::AtMost)?,
        ">" => number(Compare::Above)?,
        "<" => number(Compare::Below)?,
        _ => return Err(usage()),
    };
    Ok(Clause {
        field: field.to_string(),
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Product;

    fn product(broad: &str, gender: &str, year: &str) -> StoredProduct {
        StoredProduct {
            product: Product {
                id: "x".into(),
                text: "t".into(),
                broad: Some(broad.into()),
                fine: None,
                attributes: [
                    ("gender".to_string(), gender.to_string()),
                    ("year".to_string(), year.to_string()),
                ]
                .into(),
                image: None,
            },
            has_image: true,
            content_hash: 0,
        }
    }

    #[test]
    fn clauses_parse_and_match() {
        let f = Filter::parse(&["broad=Shoes", "gender:men, unisex", "year>=2015"]).unwrap();
        assert!(f.matches(&product("Shoes", "Men", "2016")));
        assert!(f.matches(&product("shoes", "Unisex", "2015")));
        assert!(!f.matches(&product("Shoes", "Women", "2016")));
        assert!(!f.matches(&product("Shoes", "Men", "2014")));
        assert!(!f.matches(&product("Bags", "Men", "2016")));
        let f = Filter::parse(&["gender!=Women", "year<2013"]).unwrap();
        assert!(f.matches(&product("Bags", "Men", "2012")));
        assert!(!f.matches(&product("Bags", "Women", "2012")));
        assert!(!f.matches(&product("Bags", "Men", "2013")));
        assert!(Filter::default().matches(&product("A", "B", "C")));
        // A comparison on a value that is not a number never holds.
        assert!(!Filter::parse(&["year>1"])
            .unwrap()
            .matches(&product("A", "B", "soon")));
    }

    #[test]
    fn malformed_filters_and_unknown_fields_are_explained() {
        for bad in [
            "broad",
            "=Shoes",
            "broad=",
            "year>=abc",
            "year>=inf",
            "my field=x",
            "a=,",
        ] {
            let err = Filter::parse(&[bad]).unwrap_err().to_string();
            assert!(err.contains("malformed filter"), "{bad}: {err}");
        }
        let products = [
            product("Shoes", "Men", "2016"),
            product("Bags", "Women", "2011"),
        ];
        let facets = Facets::of(products.iter());
        assert_eq!(facets.fields[0].field, "broad");
        assert!(facets.get("year").unwrap().numeric);
        assert!(!facets.get("gender").unwrap().numeric);
        let err = Filter::parse(&["colour=Red"])
            .unwrap()
            .check(&facets)
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `colour`")
                && err.to_string().contains("broad, gender, year"),
            "{err}"
        );
        let err = Filter::parse(&["gender>=2"])
            .unwrap()
            .check(&facets)
            .unwrap_err();
        assert!(err.to_string().contains("holds text"), "{err}");
        Filter::parse(&["year>=2012", "broad=Bags"])
            .unwrap()
            .check(&facets)
            .unwrap();
    }
}
