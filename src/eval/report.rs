//! The evaluation's tables: Markdown for people (stdout, README), CSV for tools.

use std::fmt::Write;

use super::{EvalReport, KS};

/// A table writer of one part of the report.
type Table = fn(&EvalReport) -> String;

/// The whole report as Markdown (`results.md`, and what `eval` prints): the precision
/// and variety tables, then each part that was run, then the notes.
pub fn results_markdown(report: &EvalReport) -> String {
    let mut md = format!(
        "# vitrina eval: `{}` ({} split)\n\nModel `{}`; {} products ({} with an image); {} queries (random product titles, seed {}), \
         each query's own product excluded.\n\n## Precision@k (category match)\n\n{}\n## Diversification and variety (top 10)\n\n{}",
        report.catalog,
        report.split,
        report.model,
        report.products,
        report.products_with_image,
        report.queries,
        report.seed,
        precision_table(report),
        diversity_table(report),
    );
    let photos = format!(
        "Photo queries ({} products' own photos, each one's product excluded; re-framed \
         upload: the same photo 10x larger, off-centre on white, JPEG; on grey: the same \
         upload against a plain grey backdrop)",
        report.photo_query_count
    );
    // Each part that was run: whether it was, its heading, its table.
    let sections: [(bool, &str, Table); 5] = [
        (
            !report.alpha_sweep.is_empty(),
            "Average mode: product text weight alpha",
            alpha_table,
        ),
        (!report.photo_queries.is_empty(), &photos, photo_table),
        (
            !report.diversity_curve.is_empty(),
            "Diversification: the precision/variety trade-off",
            curve_table,
        ),
        (
            !report.feedback_sweep.is_empty(),
            "Visual and title feedback settings (P@10)",
            feedback_table,
        ),
        (
            !report.fusion_sweep.is_empty(),
            "Fusion and attribute-boost settings (P@10)",
            fusion_table,
        ),
    ];
    for (run, heading, table) in sections {
        if run {
            let _ = write!(md, "\n## {heading}\n\n{}", table(report));
        }
    }
    for note in &report.notes {
        let _ = write!(md, "\nNote: {note}\n");
    }
    md
}

/// Methods without diversification, in report order: the reference's table.
fn plain(report: &EvalReport) -> impl Iterator<Item = &super::MethodFigures> {
    report.methods.iter().filter(|m| m.diversify == "none")
}

/// Precision@k, one row per k, a broad and a fine column per search type.
pub fn precision_table(report: &EvalReport) -> String {
    table(&plain(report).collect::<Vec<_>>())
}

/// Precision@k of photo queries, per vector mode ("" when none were run).
pub fn photo_table(report: &EvalReport) -> String {
    table(&report.photo_queries.iter().collect::<Vec<_>>())
}

fn table(methods: &[&super::MethodFigures]) -> String {
    let mut s = String::new();
    s.push_str("| k |");
    for m in methods {
        let _ = write!(s, " {} broad | {} fine |", m.method, m.method);
    }
    s.push_str("\n|---:|");
    s.push_str(&"---:|---:|".repeat(methods.len()));
    s.push('\n');
    for k in KS {
        let _ = write!(s, "| {k} |");
        for m in methods {
            let _ = write!(s, " {:.3} | {:.3} |", m.broad[&k], m.fine[&k]);
        }
        s.push('\n');
    }
    s
}

/// What diversification costs (precision) and buys (variety), per search type.
pub fn diversity_table(report: &EvalReport) -> String {
    let mut s = String::from(
        "| method | P@10 broad | P@10 fine | P@20 fine | visual distance@10 | distinct fine@10 | near-duplicate pairs@10 | ms/query |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in &report.methods {
        let v = &m.variety;
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {:.2} |",
            m.method,
            m.broad[&10],
            m.fine[&10],
            m.fine[&20],
            fmt(v.visual_distance),
            fmt(Some(v.distinct_fine)),
            fmt(v.near_duplicate_pairs),
            m.ms_per_query
        );
    }
    s
}

/// Precision@10 for each product-side text weight.
pub fn alpha_table(report: &EvalReport) -> String {
    let mut s =
        String::from("| alpha (text weight) | P@10 broad | P@10 fine |\n|---:|---:|---:|\n");
    for p in &report.alpha_sweep {
        let _ = writeln!(s, "| {:.1} | {:.3} | {:.3} |", p.alpha, p.broad, p.fine);
    }
    s
}

/// Precision@10 for each fusion and boost setting of `--sweep-fusion`.
pub fn fusion_table(report: &EvalReport) -> String {
    let mut s = String::from(
        "| mode | fusion (keyword weight) | boost | P@10 broad | P@10 fine |\n|---|---|---:|---:|---:|\n",
    );
    for p in &report.fusion_sweep {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.3} | {:.3} |",
            p.mode.name(),
            p.fusion.as_deref().unwrap_or("-"),
            p.boost,
            p.broad,
            p.fine
        );
    }
    s
}

/// Precision@10 for each feedback setting of `--sweep-feedback` (visual feedback's depth
/// 0 and title weight 0: off).
pub fn feedback_table(report: &EvalReport) -> String {
    let mut s = String::from(
        "| queries | mode | depth | query weight | title weight | P@10 broad | P@10 fine |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for p in &report.feedback_sweep {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3} |",
            p.queries,
            p.mode.name(),
            p.depth,
            p.query_weight,
            p.title_weight,
            p.broad,
            p.fine
        );
    }
    s
}

/// The precision/variety trade-off of `--sweep-diversity`, each row against the first
/// (the undiversified ranking).
pub fn curve_table(report: &EvalReport) -> String {
    let mut s = String::from(
        "| method | P@10 broad | P@10 fine | change in P@10 fine | visual distance@10 | change in visual distance | near-duplicate pairs@10 | ms/query |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let Some(base) = report.diversity_curve.first() else {
        return s;
    };
    let visual = |m: &super::MethodFigures| m.variety.visual_distance.unwrap_or(0.0);
    for m in &report.diversity_curve {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:+.3} | {:.3} | {:+.0}% | {:.3} | {:.2} |",
            m.method,
            m.broad[&10],
            m.fine[&10],
            m.fine[&10] - base.fine[&10],
            visual(m),
            100.0 * (visual(m) / visual(base).max(1e-9) - 1.0),
            m.variety.near_duplicate_pairs.unwrap_or(0.0),
            m.ms_per_query
        );
    }
    s
}

/// Long format: method, diversify, k, category level, precision.
pub fn precision_csv(report: &EvalReport) -> String {
    let mut s = String::from("method,diversify,k,level,precision\n");
    for m in &report.methods {
        for k in KS {
            let _ = writeln!(
                s,
                "\"{}\",{},{k},broad,{:.4}",
                m.method, m.diversify, m.broad[&k]
            );
            let _ = writeln!(
                s,
                "\"{}\",{},{k},fine,{:.4}",
                m.method, m.diversify, m.fine[&k]
            );
        }
    }
    s
}
