//! `inkling eval probe`: what a shopper sees, checked query by query.
//!
//! A probe file holds queries over one catalog (the bundled demo, or a file such as the whole
//! Flipkart catalog), each with a machine-checkable expectation for its top results. Every
//! query goes through `POST /v1/search` of a real node (the catalog on a temporary folder,
//! or a running node with `--url`); queries that share a session name run in file order in
//! one session, so follow-ups are checked turn by turn. The answer is the list of cases
//! that fail, with what came back.
//!
//! The file is tab-separated: `session<TAB>query<TAB>expectation`, `#` starts a comment, and
//! a session of `-` is a fresh shopper. The expectation is `;`-separated clauses:
//!
//! * `top=N`: how many of the first results the other clauses check (default 3); fewer
//!   results are fine, none fails;
//! * `path=A|B`: every checked result has `A` or `B` as a level of its category path;
//! * `title=a|b`: every checked result's title contains `a` or `b` (case-insensitive);
//! * `brand=X`: every checked result is of brand `X`;
//! * `price<=N`, `price>=N`: every checked result's price is within the bound;
//! * `first=id`: the first result is the product `id`;
//! * `notice=text`: the answer's notices contain `text`;
//! * `understood.FIELD=V`: the constraints the search applied (`understanding.constraints`
//!   of the answer) have `FIELD` equal to `V`: `understood.price_max=1500`,
//!   `understood.preference=cheapest`. It checks understanding where a catalog lacks the
//!   field itself (openbg-zh has no prices).

use std::path::Path;

use anyhow::{Context, Result, bail};
use inkling_actors::ActorConfig;
use inkling_api::{Client, ClientConfig, RankedAnswer, SearchBody};

use inkling_node::{CatalogSource, LocalNode};

/// Results asked for per query; expectations check the first `top` of them.
const RESULTS: usize = 10;
const DEFAULT_TOP: usize = 3;

/// One line of a probe file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeCase {
    /// Line number in the file, for messages.
    pub line: usize,
    /// Queries with the same session run in order in one session; `None` is a fresh shopper.
    pub session: Option<String>,
    pub query: String,
    pub expect: Expectation,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expectation {
    pub top: usize,
    pub path: Vec<String>,
    pub title: Vec<String>,
    pub brand: Option<String>,
    pub price_max: Option<f64>,
    pub price_min: Option<f64>,
    /// At least this many results: a guess must not starve the page (`count>=N`).
    pub min_count: usize,
    pub first: Option<String>,
    pub notice: Option<String>,
    /// `(field, value)` pairs the applied constraints must hold.
    pub understood: Vec<(String, String)>,
}

impl std::str::FromStr for Expectation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut expect = Expectation {
            top: DEFAULT_TOP,
            ..Default::default()
        };
        let alternatives = |value: &str| value.split('|').map(|v| v.trim().to_string()).collect();
        let number = |value: &str| {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("`{value}` is not a number"))
        };
        for clause in text.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            if let Some(value) = clause.strip_prefix("price<=") {
                expect.price_max = Some(number(value)?);
            } else if let Some(value) = clause.strip_prefix("price>=") {
                expect.price_min = Some(number(value)?);
            } else if let Some(value) = clause.strip_prefix("count>=") {
                expect.min_count = number(value)? as usize;
            } else if let Some((key, value)) = clause.split_once('=') {
                match key.trim() {
                    "top" => {
                        expect.top = value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|top| (1..=RESULTS).contains(top))
                            .ok_or(format!("top must be between 1 and {RESULTS}"))?
                    }
                    "path" => expect.path = alternatives(value),
                    "title" => expect.title = alternatives(value),
                    "brand" => expect.brand = Some(value.trim().to_string()),
                    "first" => expect.first = Some(value.trim().to_string()),
                    "notice" => expect.notice = Some(value.trim().to_string()),
                    key if key.starts_with("understood.") => expect.understood.push((
                        key["understood.".len()..].to_string(),
                        value.trim().to_string(),
                    )),
                    other => return Err(format!("unknown clause `{other}`")),
                }
            } else {
                return Err(format!("cannot read clause `{clause}`"));
            }
        }
        Ok(expect)
    }
}

/// Reads a probe file, naming the line of the first bad case.
pub fn read(path: &Path) -> Result<Vec<ProbeCase>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse(text: &str) -> Result<Vec<ProbeCase>> {
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').map(str::trim).collect();
        let [session, query, expect] = columns.as_slice() else {
            bail!("line {number}: expected `session<TAB>query<TAB>expectation`");
        };
        if query.is_empty() {
            bail!("line {number}: empty query");
        }
        let expect = expect
            .parse::<Expectation>()
            .map_err(|error| anyhow::anyhow!("line {number}: {error}"))?;
        cases.push(ProbeCase {
            line: number,
            session: (*session != "-").then(|| session.to_string()),
            query: query.to_string(),
            expect,
        });
    }
    if cases.is_empty() {
        bail!("no probe cases");
    }
    Ok(cases)
}

/// A case that failed: the case, why, and the titles that came back.
#[derive(Debug)]
pub struct Failure {
    pub case: ProbeCase,
    pub why: String,
    pub titles: Vec<String>,
}

#[derive(Debug)]
pub struct ProbeReport {
    pub cases: usize,
    pub failures: Vec<Failure>,
}

/// Runs `cases` against the demo catalog on a fresh local node with `actors`.
/// Runs `cases` against a fresh local node serving `catalog`.
pub async fn evaluate(
    cases: Vec<ProbeCase>,
    catalog: CatalogSource,
    actors: ActorConfig,
) -> Result<ProbeReport> {
    let node = LocalNode::start(catalog, actors).await?;
    let base = node.base_url.clone();
    let report = tokio::task::spawn_blocking(move || run(&base, &cases)).await??;
    node.stop().await?;
    Ok(report)
}

/// Runs `cases` in file order against the node at `base`.
pub fn run(base: &str, cases: &[ProbeCase]) -> Result<ProbeReport> {
    let client = Client::new(base, ClientConfig::timeout(super::CALL_TIMEOUT))?;
    // Every run gets its own shoppers, so a rerun against one node starts fresh sessions.
    let run_id = std::process::id();
    let mut failures = Vec::new();
    for case in cases {
        let user = match &case.session {
            Some(session) => format!("probe-{run_id}-{session}"),
            None => format!("probe-{run_id}-line-{}", case.line),
        };
        let body = SearchBody {
            session_id: Some(format!("{user}-session")),
            ..SearchBody::new(&user, case.query.as_str(), RESULTS)
        };
        let answer = client
            .search(&body)
            .with_context(|| format!("line {}: search failed", case.line))?;
        if let Err(why) = check(&case.expect, &answer) {
            failures.push(Failure {
                case: case.clone(),
                why,
                titles: answer
                    .items
                    .iter()
                    .take(case.expect.top)
                    .map(|item| item.product.title.clone())
                    .collect(),
            });
        }
    }
    Ok(ProbeReport {
        cases: cases.len(),
        failures,
    })
}

/// Checks one answer against its expectation; the error names the first broken clause.
fn check(expect: &Expectation, answer: &RankedAnswer) -> Result<(), String> {
    if answer.items.is_empty() {
        return Err("no results".to_string());
    }
    if answer.items.len() < expect.min_count {
        return Err(format!(
            "{} results, fewer than {}",
            answer.items.len(),
            expect.min_count
        ));
    }
    if let Some(first) = &expect.first
        && &answer.items[0].product.id != first
    {
        return Err(format!(
            "first is {}, not {first}",
            answer.items[0].product.id
        ));
    }
    if let Some(notice) = &expect.notice
        && !answer.notices.iter().any(|given| given.contains(notice))
    {
        return Err(format!("no notice \"{notice}\" in {:?}", answer.notices));
    }
    for (field, wanted) in &expect.understood {
        check_understood(answer, field, wanted)?;
    }
    for (rank, item) in answer.items.iter().take(expect.top).enumerate() {
        let product = &item.product;
        let at = |what: String| format!("#{} {:?}: {what}", rank + 1, product.title);
        if !expect.path.is_empty()
            && !product.category_path.iter().any(|level| {
                expect
                    .path
                    .iter()
                    .any(|wanted| level.eq_ignore_ascii_case(wanted))
            })
        {
            return Err(at(format!(
                "path {:?} has none of {:?}",
                product.category_path, expect.path
            )));
        }
        let title = product.title.to_lowercase();
        if !expect.title.is_empty()
            && !expect
                .title
                .iter()
                .any(|word| title.contains(&word.to_lowercase()))
        {
            return Err(at(format!("title has none of {:?}", expect.title)));
        }
        if let Some(brand) = &expect.brand
            && !product
                .brand
                .as_deref()
                .is_some_and(|given| given.eq_ignore_ascii_case(brand))
        {
            return Err(at(format!("brand {:?}, not {brand}", product.brand)));
        }
        if expect.price_max.is_some_and(|max| product.price > max)
            || expect.price_min.is_some_and(|min| product.price < min)
        {
            return Err(at(format!("price {} out of bounds", product.price)));
        }
    }
    Ok(())
}

/// Checks that the answer's applied constraints hold `field` = `wanted`: text compared
/// without case, numbers by value.
fn check_understood(answer: &RankedAnswer, field: &str, wanted: &str) -> Result<(), String> {
    // By name, as the answer's JSON has it: probe files name fields as clients see them.
    let constraints = answer
        .understanding
        .as_ref()
        .and_then(|understanding| serde_json::to_value(&understanding.constraints).ok());
    let given = constraints
        .as_ref()
        .and_then(|constraints| constraints.get(field));
    let holds = match given {
        Some(serde_json::Value::String(text)) => text.eq_ignore_ascii_case(wanted),
        Some(serde_json::Value::Number(number)) => wanted.parse::<f64>().ok() == number.as_f64(),
        _ => false,
    };
    if holds {
        return Ok(());
    }
    Err(format!("understood {field} is {given:?}, not {wanted}"))
}

/// Prints every failing case and the tally.
pub fn print_report(report: &ProbeReport) {
    for failure in &report.failures {
        println!(
            "FAIL line {} [{}] {:?}: {}\n     got: {}",
            failure.case.line,
            failure.case.session.as_deref().unwrap_or("-"),
            failure.case.query,
            failure.why,
            failure.titles.join(" | ")
        );
    }
    println!(
        "{} of {} probe cases pass",
        report.cases - report.failures.len(),
        report.cases
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_or_name_the_bad_clause() {
        let cases: [(&str, Result<Expectation, &str>); 5] = [
            (
                "top=5; path=Coffee Mugs|Mugs; price<=300",
                Ok(Expectation {
                    top: 5,
                    path: vec!["Coffee Mugs".into(), "Mugs".into()],
                    price_max: Some(300.0),
                    ..Default::default()
                }),
            ),
            (
                "first=xiaomi-12",
                Ok(Expectation {
                    top: DEFAULT_TOP,
                    first: Some("xiaomi-12".into()),
                    ..Default::default()
                }),
            ),
            (
                "understood.price_max=1500; understood.preference=cheapest",
                Ok(Expectation {
                    top: DEFAULT_TOP,
                    understood: vec![
                        ("price_max".into(), "1500".into()),
                        ("preference".into(), "cheapest".into()),
                    ],
                    ..Default::default()
                }),
            ),
            ("colour=red", Err("unknown clause `colour`")),
            ("price<=cheap", Err("`cheap` is not a number")),
        ];
        for (text, expected) in cases {
            assert_eq!(
                text.parse::<Expectation>(),
                expected.map_err(String::from),
                "{text}"
            );
        }
    }
}
