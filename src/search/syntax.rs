//! The query syntax shoppers expect from a search box: `"exact phrase"` and `-word`
//! (leave out products whose title has the word); everything else is free text.
//!
//! Parsed once per query into what the keyword index needs ([`TextQuery`]) and the text
//! the model embeds (the query without its operators: a vector cannot "not" a word, so
//! exclusions are applied to every result list instead).

use crate::store::TextQuery;

/// A shopper's query text, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuery {
    /// The query as typed, trimmed (a product id typed as the whole query finds it).
    pub raw: String,
    pub keywords: TextQuery,
    /// What the text tower embeds: the words and phrases, without quotes and exclusions.
    pub embed_text: String,
}

/// Parses a query. Never fails: an unclosed quote runs to the end, a lone `-` is a word.
pub fn parse(text: &str) -> ParsedQuery {
    let raw = text.trim().to_string();
    let mut words = Vec::new();
    let mut phrases = Vec::new();
    let mut excluded = Vec::new();
    let mut embedded = Vec::new();
    let mut rest = raw.as_str();
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"').unwrap_or(after.len());
            let phrase = after[..end].trim();
            if !phrase.is_empty() {
                phrases.push(phrase.to_string());
                embedded.push(phrase.to_string());
            }
            rest = after.get(end + 1..).unwrap_or("");
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        match word.strip_prefix('-') {
            Some(negated) if negated.starts_with(char::is_alphanumeric) => {
                excluded.push(negated.to_string())
            }
            _ => {
                words.push(word.to_string());
                embedded.push(word.to_string());
            }
        }
        rest = &rest[end..];
    }
    ParsedQuery {
        raw,
        keywords: TextQuery {
            words: words.join(" "),
            phrases,
            excluded,
        },
        embed_text: embedded.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_exclusions_and_words() {
        let q = parse(r#"  party dress -black "3/4th sleeve" t-shirt -  "#);
        assert_eq!(q.keywords.words, "party dress t-shirt -");
        assert_eq!(q.keywords.phrases, ["3/4th sleeve"]);
        assert_eq!(q.keywords.excluded, ["black"]);
        assert_eq!(q.embed_text, "party dress 3/4th sleeve t-shirt -");
        let q = parse(r#"belt "black leather"#);
        assert_eq!(q.keywords.phrases, ["black leather"], "unclosed quote");
        assert_eq!(q.embed_text, "belt black leather");
        let q = parse("\"\" -");
        assert!(q.keywords.phrases.is_empty());
        assert_eq!(q.raw, "\"\" -");
    }
}
