//! One search request as every front end states it: the HTTP API reads it from a query
//! string or a JSON body, the CLI fills it from its flags, and both turn it into a
//! [`Ranking`] and a [`Query`] here, so a parameter has one name, one default, one
//! range and one error message everywhere. (Evaluation builds its [`Ranking`]s
//! directly: it sweeps settings rather than taking a shopper's request.)

use anyhow::{ensure, Result};
use image::DynamicImage;
use serde::Deserialize;

use super::{
    check_boost, title_feedback, Diversify, Feedback, Fusion, Mode, Query, Ranking, DEFAULT_K,
};
use crate::store::{Filter, Method, StoreMeta};

/// How deep a list may be paged: `offset + k` at most this.
pub const MAX_DEPTH: usize = 1000;

/// The parameters of a search; every one optional, with the defaults below.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct SearchRequest {
    /// The shopper's words (optional with a photo).
    pub q: Option<String>,
    /// `description`, `image`, `average`, `keyword` or `hybrid` (default: hybrid).
    pub mode: Option<String>,
    /// Results wanted, 1..=200 (default 10).
    pub k: Option<usize>,
    /// Results to skip, for the next page ("load more"): `offset + k` at most 1000.
    pub offset: Option<usize>,
    /// `none` (default), `kmeans`, `mmr` or `dedup`: visual diversification of the top 50.
    pub diversify: Option<String>,
    /// MMR's relevance weight (default 0.8).
    pub lambda: Option<f32>,
    /// Dedup's near-duplicate threshold, image cosine (default 0.97).
    pub threshold: Option<f32>,
    /// Average mode: the products' text weight (default 0.5, the stored average).
    pub alpha: Option<f32>,
    /// Text and photo together: the text's weight in the query (default 0.5).
    pub text_weight: Option<f32>,
    /// `auto` (the graph where the index has one), `exact` or `ann`.
    pub method: Option<String>,
    /// Candidates explored per graph search.
    pub ef: Option<usize>,
    /// Hybrid mode: `rrf` or `blend` (default: the setting chosen on the train split).
    pub fusion: Option<String>,
    /// Hybrid mode: the keyword list's weight, 0..1.
    pub keyword_weight: Option<f32>,
    /// How much more products with the field values the words name score (0 = off;
    /// default 0.5).
    pub boost: Option<f32>,
    /// Comma-separated fields whose named values are not boosted (removed chips).
    pub ignore: Option<String>,
    /// Visual feedback: how many first results of the vector search refine the query
    /// before it is searched again, 0..=100 (0: off; default 5 where photos are
    /// compared: image, average and hybrid mode; off in description mode, where it
    /// does not help).
    pub feedback: Option<usize>,
    /// Visual feedback: the query's own weight against its first results' mean, 0..1
    /// (default 0.5).
    pub feedback_weight: Option<f32>,
    /// Title feedback: the weight with which the list's products are re-scored by how
    /// well their titles agree with its first 5 results' titles, 0..10 (0: off; default
    /// 1 in image mode, off in the others, whose vectors already hold the titles).
    pub title_feedback: Option<f32>,
    /// Filters, every one must hold: `field:value[,value..]`, `field=value`, or a
    /// numeric comparison (`year>=2015`). In a query string, repeat `filter=`; in a
    /// JSON body, a list `filter`.
    #[serde(skip)]
    pub filters: Vec<String>,
}

impl SearchRequest {
    /// The ranking asked for, unset parameters at their defaults and the mode's from the
    /// index being searched (`meta`). Every error is the request's fault.
    pub fn ranking(&self, meta: &StoreMeta) -> Result<Ranking> {
        let mode = self.mode.as_deref().map(Mode::parse).transpose()?;
        let mut ranking = Ranking::for_index(meta, mode, self.k.unwrap_or(DEFAULT_K))?;
        ranking.offset = self.offset.unwrap_or(0);
        ensure!(
            ranking.offset + ranking.k <= MAX_DEPTH,
            "offset + k must be at most {MAX_DEPTH} (got {} + {})",
            ranking.offset,
            ranking.k
        );
        ranking.diversify = Diversify::parse(
            self.diversify.as_deref().unwrap_or("none"),
            self.lambda,
            self.threshold,
            0,
        )?;
        ranking.alpha = self.alpha.unwrap_or(0.5);
        ensure!(
            (0.0..=1.0).contains(&ranking.alpha),
            "alpha must be within 0..1 (got {})",
            ranking.alpha
        );
        ranking.filter = Filter::parse(&self.filters)?;
        ranking.method = Method::parse(self.method.as_deref().unwrap_or("auto"))?;
        ensure!(
            self.ef.is_none_or(|ef| (1..=10_000).contains(&ef)),
            "ef must be within 1..=10000"
        );
        ranking.ef_search = self.ef;
        ranking.fusion = Fusion::parse(self.fusion.as_deref(), self.keyword_weight)?;
        ranking.boost = check_boost(self.boost)?;
        ranking.feedback = Feedback::requested(self.feedback, self.feedback_weight)?;
        if let Some(weight) = self.title_feedback {
            title_feedback::check(weight)?;
        }
        ranking.title_feedback = self.title_feedback;
        ranking.ignore = self
            .ignore
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        Ok(ranking)
    }

    /// The query: the words (blank is none) and `image`; at least one of them.
    pub fn query(&self, image: Option<DynamicImage>) -> Result<Query> {
        let text = self.q.clone().filter(|q| !q.trim().is_empty());
        ensure!(
            text.is_some() || image.is_some(),
            "give a text query, a photo, or both"
        );
        let text_weight = self.text_weight.unwrap_or(0.5);
        ensure!(
            (0.0..=1.0).contains(&text_weight),
            "text_weight must be within 0..1 (got {text_weight})"
        );
        Ok(Query {
            text,
            image,
            text_weight,
        })
    }

    /// Where the next page starts, given how many results this page returned: none once
    /// a page comes back short or the depth limit is reached.
    pub fn next_offset(ranking: &Ranking, returned: usize) -> Option<usize> {
        let next = ranking.offset + ranking.k;
        (returned == ranking.k && next < MAX_DEPTH).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> StoreMeta {
        StoreMeta {
            model: "m".into(),
            model_dir: None,
            dim: 4,
            kinds: vec![crate::store::VectorKind::Text],
            catalog: "c".into(),
        }
    }

    #[test]
    fn defaults_and_ranges_are_shared() {
        let r = SearchRequest::default().ranking(&meta()).unwrap();
        assert_eq!((r.mode, r.k, r.offset), (Mode::Hybrid, DEFAULT_K, 0));
        assert_eq!(r.diversify, Diversify::None);
        let bad = |req: SearchRequest| req.ranking(&meta()).unwrap_err().to_string();
        assert!(bad(SearchRequest {
            k: Some(0),
            ..Default::default()
        })
        .contains("k must"));
        assert!(bad(SearchRequest {
            offset: Some(995),
            ..Default::default()
        })
        .contains("offset + k"));
        assert!(bad(SearchRequest {
            mode: Some("colour".into()),
            ..Default::default()
        })
        .contains("colour"));
        assert!(bad(SearchRequest {
            lambda: Some(f32::NAN),
            diversify: Some("mmr".into()),
            ..Default::default()
        })
        .contains("lambda"));
        assert!(bad(SearchRequest {
            method: Some("fast".into()),
            ..Default::default()
        })
        .contains("auto, exact or ann"));
        assert_eq!(r.feedback, None, "unset: the mode's default");
        assert!(bad(SearchRequest {
            feedback: Some(1000),
            ..Default::default()
        })
        .contains("feedback"));
        let off = SearchRequest {
            feedback: Some(0),
            ..Default::default()
        };
        assert!(!off.ranking(&meta()).unwrap().feedback.unwrap().is_on());
        assert_eq!(r.title_feedback, None, "unset: the mode's default");
        assert!(bad(SearchRequest {
            title_feedback: Some(-1.0),
            ..Default::default()
        })
        .contains("title_feedback"));
        let titles_off = SearchRequest {
            title_feedback: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            titles_off.ranking(&meta()).unwrap().title_feedback,
            Some(0.0)
        );
        let query = |q: Option<&str>, w: Option<f32>| {
            SearchRequest {
                q: q.map(String::from),
                text_weight: w,
                ..Default::default()
            }
            .query(None)
        };
        assert!(query(Some("  "), None).is_err());
        assert!(query(Some("red dress"), Some(1.5)).is_err());
        assert_eq!(query(Some("red dress"), None).unwrap().text_weight, 0.5);
    }

    #[test]
    fn pages_end_when_short_or_deep() {
        let mut r = Ranking::new(Mode::Hybrid, 10);
        assert_eq!(SearchRequest::next_offset(&r, 10), Some(10));
        assert_eq!(SearchRequest::next_offset(&r, 7), None);
        r.offset = 990;
        assert_eq!(SearchRequest::next_offset(&r, 10), None);
    }
}
