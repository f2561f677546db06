//! User text to an FTS5 MATCH expression.
//!
//! Every operand is emitted as a double-quoted string of letters and
//! digits only, so no user text can reach FTS5's query syntax: a stray
//! quote, a bracket, `col:`, `NEAR(`, `*`, a NUL byte or any other control
//! character is a separator, never syntax. What the user meant as syntax
//! survives: `AND`, `OR` and `NOT` (upper case, between two operands) stay
//! operators, and a `"quoted phrase"` stays a phrase.
//!
//! Recall drops stop words and lets any remaining word match (`OR`), so a
//! natural question ("When did Calvin first travel to Tokyo?") finds the
//! rows that share any of its content words, ranked by how much of the
//! question they match (`store::search::keyword_any`); forget by
//! query joins them with `AND` (every word must match), keeps every word
//! and looks at the content only (`content_only`), so a loosely phrased
//! forget never selects more than it names.

/// Signet's stop words (the prompt hook's list, SPEC-agents §1.2), plus the
/// stems contractions leave behind once their apostrophe suffix is cut
/// (`didn't` → `didn`). Sorted, for a binary search.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "actually",
    "after",
    "ain",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren",
    "as",
    "at",
    "be",
    "been",
    "before",
    "but",
    "by",
    "can",
    "could",
    "couldn",
    "did",
    "didn",
    "do",
    "does",
    "doesn",
    "doing",
    "don",
    "done",
    "for",
    "from",
    "get",
    "go",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "hey",
    "hi",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "just",
    "kind",
    "like",
    "make",
    "me",
    "more",
    "my",
    "need",
    "now",
    "of",
    "ok",
    "okay",
    "on",
    "or",
    "our",
    "out",
    "please",
    "pretty",
    "really",
    "right",
    "say",
    "should",
    "shouldn",
    "so",
    "some",
    "something",
    "still",
    "sure",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "to",
    "too",
    "uh",
    "um",
    "use",
    "very",
    "want",
    "was",
    "wasn",
    "we",
    "well",
    "were",
    "weren",
    "what",
    "when",
    "which",
    "who",
    "why",
    "will",
    "with",
    "won",
    "would",
    "wouldn",
    "yeah",
    "yes",
    "you",
    "your",
];

/// Suffixes cut after an apostrophe (`Caroline's` → `Caroline`).
const CONTRACTIONS: &[&str] = &["d", "ll", "m", "re", "s", "t", "ve"];

/// Most operands one expression holds; the rest of a very long query is
/// ignored (each operand is a doclist FTS5 must read).
pub const MAX_OPERANDS: usize = 32;

/// Whether `word` (any case) is a stop word.
pub fn is_stop_word(word: &str) -> bool {
    let lower = word.to_lowercase();
    STOP_WORDS.binary_search(&lower.as_str()).is_ok()
}

/// How the operands of a query are joined where the user wrote no
/// operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// `OR`, stop words and one-letter words dropped: recall.
    Any,
    /// FTS5's implicit `AND`, every word kept: forget by query.
    All,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// One bare word.
    Word(String),
    /// Several words that must appear in order: a quoted phrase, or a
    /// token that punctuation splits (`us-east-1`).
    Phrase(Vec<String>, bool),
    Op(&'static str),
}

/// Runs of letters and digits in `s`.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// One whitespace-free bare token to an item (`None`: nothing searchable).
fn bare(token: &str) -> Option<Item> {
    match token {
        "AND" => return Some(Item::Op("AND")),
        "OR" => return Some(Item::Op("OR")),
        "NOT" => return Some(Item::Op("NOT")),
        _ => {}
    }
    let mut token = token;
    if let Some(i) = token.rfind(['\'', '\u{2019}']) {
        let suffix = &token[i..].trim_start_matches(['\'', '\u{2019}']);
        let suffix = suffix.trim_end_matches(|c: char| !c.is_alphanumeric());
        if CONTRACTIONS.contains(&suffix.to_lowercase().as_str()) {
            token = &token[..i];
        }
    }
    let mut w = words(token);
    match w.len() {
        0 => None,
        1 => w.pop().map(Item::Word),
        _ => Some(Item::Phrase(w, false)),
    }
}

/// Split user text into words, phrases and operators. Control characters
/// are separators.
fn lex(text: &str) -> Vec<Item> {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut items = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix('"') {
            if let Some(end) = after.find('"') {
                let w = words(&after[..end]);
                if !w.is_empty() {
                    items.push(Item::Phrase(w, true));
                }
                rest = &after[end + 1..];
                continue;
            }
            // An unbalanced quote is only a separator.
            rest = after;
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        if let Some(item) = bare(&rest[..end]) {
            items.push(item);
        }
        rest = &rest[end..];
    }
    items
}

/// Whether a word is worth a keyword match under `join`.
fn keep(word: &str, join: Join) -> bool {
    match join {
        Join::All => true,
        Join::Any => {
            let one_letter = word.chars().count() < 2 && !word.chars().all(|c| c.is_numeric());
            !one_letter && !is_stop_word(word)
        }
    }
}

/// The MATCH expression for `text`, or `None` when nothing searchable is
/// left (only stop words, punctuation or operators).
pub fn match_expr(text: &str, join: Join) -> Option<String> {
    let out = tokens(text, join);
    if out.is_empty() {
        None
    } else {
        Some(out.join(" "))
    }
}

/// `expr` limited to the memory's text (the index also holds `who`):
/// forget by query and the pipeline's neighbour search select by what a
/// memory says, never by who said it.
pub fn content_only(expr: String) -> String {
    format!("content : ({expr})")
}

/// The operands of a plain recall query, each an FTS5 expression of its
/// own (a quoted word or phrase), distinct: what the any-term keyword leg
/// looks up one by one. `None` when the user wrote `AND` or `NOT` between
/// operands (such a query runs as one expression, ranked by FTS5).
pub fn plain_operands(text: &str) -> Option<Vec<String>> {
    let out = tokens(text, Join::Any);
    if out.iter().any(|t| t == "AND" || t == "NOT") {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    Some(
        out.into_iter()
            .filter(|t| t != "OR" && seen.insert(t.to_lowercase()))
            .collect(),
    )
}

/// Operands (quoted) and the operators placed between them.
fn tokens(text: &str, join: Join) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending: Option<&'static str> = None;
    let mut operands = 0;
    for item in lex(text) {
        let operand = match item {
            Item::Op(op) => {
                if !out.is_empty() {
                    pending = Some(op);
                }
                continue;
            }
            Item::Word(w) if keep(&w, join) => format!("\"{w}\""),
            Item::Word(_) => continue,
            // A quoted phrase is what the user asked for; a split token
            // (`what's` is cut before, so these are `us-east-1` and the
            // like) is kept unless every word of it is a stop word.
            Item::Phrase(w, quoted) if quoted || w.iter().any(|w| keep(w, join)) => {
                format!("\"{}\"", w.join(" "))
            }
            Item::Phrase(..) => continue,
        };
        if operands == MAX_OPERANDS {
            break;
        }
        if !out.is_empty() {
            match (pending.take(), join) {
                (Some(op), _) => out.push(op.to_string()),
                (None, Join::Any) => out.push("OR".to_string()),
                (None, Join::All) => {}
            }
        }
        out.push(operand);
        operands += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_stop_word("The"));
        assert!(!is_stop_word("tokyo"));
    }

    #[test]
    fn natural_questions_become_or_of_content_words() {
        assert_eq!(
            match_expr("When did Calvin first travel to Tokyo?", Join::Any).as_deref(),
            Some("\"Calvin\" OR \"first\" OR \"travel\" OR \"Tokyo\"")
        );
        assert_eq!(
            match_expr("What's Caroline's job?", Join::Any).as_deref(),
            Some("\"Caroline\" OR \"job\"")
        );
        assert_eq!(match_expr("what is it?", Join::Any), None);
        assert_eq!(match_expr("didn't we", Join::Any), None);
        // Numbers are content; single letters are not.
        assert_eq!(
            match_expr("x in 2022", Join::Any).as_deref(),
            Some("\"2022\"")
        );
    }

    #[test]
    fn explicit_operators_and_phrases_keep_their_meaning() {
        assert_eq!(
            match_expr("cats AND dogs", Join::Any).as_deref(),
            Some("\"cats\" AND \"dogs\"")
        );
        assert_eq!(
            match_expr("deploy NOT friday staging", Join::Any).as_deref(),
            Some("\"deploy\" NOT \"friday\" OR \"staging\"")
        );
        assert_eq!(
            match_expr("\"support group\" yesterday", Join::Any).as_deref(),
            Some("\"support group\" OR \"yesterday\"")
        );
        // A quoted stop word is what the user asked for.
        assert_eq!(match_expr("\"the\"", Join::Any).as_deref(), Some("\"the\""));
        // Operators at the edges or doubled cannot stand.
        assert_eq!(match_expr("OR a NOT", Join::All).as_deref(), Some("\"a\""));
        assert_eq!(
            match_expr("alpha AND OR bravo", Join::Any).as_deref(),
            Some("\"alpha\" OR \"bravo\"")
        );
        // Lower case is a word (a stop word here).
        assert_eq!(
            match_expr("salt and pepper", Join::Any).as_deref(),
            Some("\"salt\" OR \"pepper\"")
        );
    }

    #[test]
    fn plain_queries_give_their_distinct_operands_and_operators_opt_out() {
        assert_eq!(
            plain_operands("Did Tokyo's \"support group\" meet tokyo OR Kyoto?"),
            Some(vec![
                "\"Tokyo\"".to_string(),
                "\"support group\"".to_string(),
                "\"meet\"".to_string(),
                "\"Kyoto\"".to_string(),
            ])
        );
        assert_eq!(plain_operands("what is it"), Some(vec![]));
        assert_eq!(plain_operands("cats AND dogs"), None);
        assert_eq!(plain_operands("deploy NOT friday"), None);
        // An operator that cannot stand is no operator.
        assert_eq!(
            plain_operands("NOT deploy"),
            Some(vec!["\"deploy\"".to_string()])
        );
    }

    #[test]
    fn all_join_keeps_every_word_and_implicit_and() {
        assert_eq!(
            match_expr("the deploy key", Join::All).as_deref(),
            Some("\"the\" \"deploy\" \"key\"")
        );
    }

    #[test]
    fn no_text_breaks_the_syntax() {
        assert_eq!(
            match_expr("say \"hi\"*(", Join::All).as_deref(),
            Some("\"say\" \"hi\"")
        );
        assert_eq!(match_expr("  \"\" ** ( ) ", Join::Any), None);
        assert_eq!(
            match_expr("col:val -x NEAR(a b)", Join::Any).as_deref(),
            Some("\"col val\" OR \"NEAR a\"")
        );
        assert_eq!(
            match_expr("us-east-1 outage", Join::Any).as_deref(),
            Some("\"us east 1\" OR \"outage\"")
        );
        assert_eq!(
            match_expr("alpha\u{0}beta", Join::Any).as_deref(),
            Some("\"alpha\" OR \"beta\"")
        );
        assert_eq!(
            match_expr("unbalanced \"quote here", Join::Any).as_deref(),
            Some("\"unbalanced\" OR \"quote\" OR \"here\"")
        );
    }

    #[test]
    fn long_queries_are_capped() {
        let text: String = (0..100).map(|i| format!("word{i} ")).collect();
        let expr = match_expr(&text, Join::Any).expect("terms");
        assert_eq!(expr.matches('"').count(), 2 * MAX_OPERANDS);
    }

    /// A table shaped like the keyword index, to run expressions against.
    fn index() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        c.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(content, who, tokenize='porter unicode61');
             INSERT INTO t VALUES ('the heron nests by the river', 'Ann'), ('us-east-1 outage', NULL);",
        )
        .expect("fts5");
        c
    }

    fn run(c: &rusqlite::Connection, expr: &str) -> rusqlite::Result<i64> {
        c.query_row("SELECT count(*) FROM t WHERE t MATCH ?1", [expr], |r| {
            r.get(0)
        })
    }

    #[test]
    fn content_only_expressions_ignore_who() {
        let c = index();
        let n = |q: &str, join| {
            run(&c, &content_only(match_expr(q, join).expect("expr"))).expect("runs")
        };
        assert_eq!(n("Ann", Join::All), 0, "Ann is only a who");
        assert_eq!(n("heron river", Join::All), 1);
        assert_eq!(n("heron OR outage", Join::Any), 2);
        assert_eq!(n("heron NOT river", Join::Any), 0);
    }

    #[test]
    fn expressions_run_and_find_what_they_name() {
        let c = index();
        let n = |q: &str| run(&c, &match_expr(q, Join::Any).expect("expr")).expect("runs");
        assert_eq!(n("Where does the heron nest?"), 1, "stemmed, any term");
        assert_eq!(n("Ann"), 1, "who is indexed");
        assert_eq!(n("us-east-1"), 1);
        assert_eq!(n("heron OR outage"), 2);
        assert_eq!(n("heron AND outage"), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// No user text, however hostile, makes FTS5 fail to parse.
        #[test]
        fn any_text_is_a_valid_match_expression(
            text in "(\\PC|[\"*():^+\\-]|AND|OR|NOT|NEAR| |\\x00|\\x1b){0,40}",
        ) {
            let c = index();
            for join in [Join::Any, Join::All] {
                if let Some(expr) = match_expr(&text, join) {
                    proptest::prop_assert!(run(&c, &expr).is_ok(), "{:?} -> {:?}", text, expr);
                }
            }
        }

        #[test]
        fn any_unicode_is_a_valid_match_expression(text in proptest::prelude::any::<String>()) {
            let c = index();
            if let Some(expr) = match_expr(&text, Join::Any) {
                proptest::prop_assert!(run(&c, &expr).is_ok(), "{:?} -> {:?}", text, expr);
            }
        }
    }
}
