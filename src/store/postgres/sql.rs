//! Candidates and vector spaces as SQL. Values always travel as bind parameters; the
//! only names written into the SQL text are our own column names and a checked table
//! name.

use ::postgres::types::ToSql;
use serde_json::{json, Map, Value};

use super::schema::column;
use crate::catalog::Product;
use crate::store::filter::Test;
use crate::store::{Candidates, Space, VectorKind};

/// Bind parameters, numbered as they are pushed.
#[derive(Default)]
pub struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds a value; returns its placeholder (`$n`).
    pub fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The filterable fields of a product, as the filter compares them: text values
/// trimmed and lower-cased (ASCII, as [`crate::store::Filter::matches`] does), and
/// the values that read as finite numbers, as numbers.
pub fn fields(p: &Product) -> (Value, Value) {
    let mut text = Map::new();
    let mut nums = Map::new();
    let named = [("broad", p.broad.as_ref()), ("fine", p.fine.as_ref())];
    let all = named
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .chain(p.attributes.iter().map(|(k, v)| (k.as_str(), v)));
    for (field, value) in all {
        let value = value.trim();
        text.insert(field.to_string(), json!(value.to_ascii_lowercase()));
        if let Some(n) = value.parse::<f64>().ok().filter(|n| n.is_finite()) {
            nums.insert(field.to_string(), json!(n));
        }
    }
    (Value::Object(text), Value::Object(nums))
}

/// `WHERE` conditions for the candidates (always at least `TRUE`).
pub fn conditions(c: &Candidates, params: &mut Params) -> String {
    let mut parts = vec!["TRUE".to_string()];
    if c.with_image_only {
        parts.push("has_image".into());
    }
    if !c.exclude.is_empty() {
        let ids: Vec<String> = c.exclude.iter().map(|s| s.to_string()).collect();
        parts.push(format!("NOT (id = ANY({}))", params.push(ids)));
    }
    for clause in c.filter.map(|f| f.clauses.as_slice()).unwrap_or_default() {
        let field = &clause.field;
        let any = |values: &[String], params: &mut Params| {
            let each: Vec<String> = values
                .iter()
                .map(|v| {
                    let doc = json!({ field.as_str(): v.trim().to_ascii_lowercase() });
                    format!("fields @> {}", params.push(doc))
                })
                .collect();
            format!("({})", each.join(" OR "))
        };
        parts.push(match &clause.test {
            Test::AnyOf(values) => any(values, params),
            Test::NoneOf(values) => format!("NOT {}", any(values, params)),
            Test::Number(op, bound) => format!(
                "(nums ->> {})::float8 {} {}",
                params.push(field.clone()),
                op.symbol(),
                params.push(*bound)
            ),
        });
    }
    parts.join(" AND ")
}

/// The distance to order by (smaller is better; the score is its negation) for a
/// query bound as `q`. Blends score `(a q.t + b q.i) / |a t + b i|`, whose norm needs
/// only the stored `ti`, as in the embedded store.
pub fn distance(space: Space, q: &str, params: &mut Params) -> String {
    match space {
        Space::Kind(kind) => format!("({} <#> {q})", column(kind)),
        Space::Blend { alpha } => {
            let a = format!("{}::float8", params.push(f64::from(alpha)));
            let b = format!("{}::float8", params.push(1.0 - f64::from(alpha)));
            format!(
                "(CASE WHEN {a}*{a} + {b}*{b} + 2*{a}*{b}*ti > 0 \
                  THEN ({a} * ({t} <#> {q}) + {b} * ({i} <#> {q})) / sqrt({a}*{a} + {b}*{b} + 2*{a}*{b}*ti) \
                  ELSE 0 END)",
                t = column(VectorKind::Text),
                i = column(VectorKind::Image),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Filter;

    #[test]
    fn filters_become_parameterised_conditions() {
        let f = Filter::parse(&["gender=Men,Unisex", "year>=2015", "colour!=Black"]).unwrap();
        let c = Candidates {
            filter: Some(&f),
            with_image_only: true,
            ..Default::default()
        };
        let mut p = Params::default();
        let sql = conditions(&c, &mut p);
        assert_eq!(
            sql,
            "TRUE AND has_image AND (fields @> $1 OR fields @> $2) AND (nums ->> $3)::float8 >= $4 \
             AND NOT (fields @> $5)"
        );
        assert_eq!(p.refs().len(), 5);
    }

    #[test]
    fn fields_are_lower_cased_and_numbers_kept_apart() {
        let mut p = Product {
            id: "1".into(),
            text: "t".into(),
            broad: Some(" Shoes ".into()),
            fine: None,
            attributes: Default::default(),
            image: None,
        };
        p.attributes.insert("year".into(), "2015".into());
        p.attributes.insert("size".into(), "inf".into());
        let (text, nums) = fields(&p);
        assert_eq!(
            text,
            json!({"broad": "shoes", "year": "2015", "size": "inf"})
        );
        assert_eq!(nums, json!({"year": 2015.0}));
    }
}
