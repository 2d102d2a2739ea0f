//! An evaluation's shareable report: `report.json` (the report as the evaluation prints it
//! with `--json`) and `report.html` beside it, one self-contained page (inline CSS and SVG,
//! no script, nothing fetched) with the summary table, the metrics against k, and a
//! histogram of request latencies.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// The cut-offs the metrics are plotted at, up to the evaluation's depth.
pub const CURVE_KS: [usize; 8] = [1, 3, 5, 10, 20, 30, 50, 100];

/// One metric at each cut-off.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub metric: String,
    /// `(k, value)`, k ascending.
    pub points: Vec<(usize, f64)>,
}

/// What a report shows.
pub struct Report<'a, T: Serialize> {
    pub title: String,
    /// The command that produced it, as the user would type it.
    pub command: String,
    /// Rows of the summary table: name, value.
    pub summary: Vec<(String, String)>,
    pub curves: Vec<Curve>,
    pub latencies_ms: &'a [f64],
    /// The evaluation's own report, written as `report.json` and quoted in the page.
    pub json: &'a T,
}

/// Writes `report.json` and `report.html` into `dir` (created if missing).
pub fn write<T: Serialize>(dir: &Path, report: &Report<T>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report.json)?;
    let json_path = dir.join("report.json");
    std::fs::write(&json_path, &json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, page(report, &json))
        .with_context(|| format!("cannot write {}", html_path.display()))?;
    println!(
        "report: {} and {}",
        html_path.display(),
        json_path.display()
    );
    Ok(())
}

fn page<T: Serialize>(report: &Report<T>, json: &str) -> String {
    let mut html = String::new();
    let title = escape(&report.title);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p><code>{}</code></p>\n<table>\n",
        escape(&report.command)
    );
    for (name, value) in &report.summary {
        let _ = writeln!(
            html,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    html.push_str("</table>\n<h2>Metrics against k</h2>\n");
    html.push_str(&line_chart(&report.curves));
    let _ = writeln!(
        html,
        "<h2>Latency of {} requests</h2>",
        report.latencies_ms.len()
    );
    html.push_str(&histogram(report.latencies_ms));
    let _ = writeln!(
        html,
        "<h2>report.json</h2>\n<pre>{}</pre>\n</body>\n</html>",
        escape(json)
    );
    html
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;max-width:980px}\
table{border-collapse:collapse}th,td{padding:3px 12px;border-bottom:1px solid #e3e6ec;text-align:left}\
td{font-variant-numeric:tabular-nums}pre{background:#f5f6f8;padding:12px;overflow:auto}\
svg text{font:12px system-ui,sans-serif;fill:#1d2330}";

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 4] = ["#2f6fed", "#e8590c", "#2b8a3e", "#ae3ec9"];

/// The curves on one chart: k on a log scale (the cut-offs spread evenly), values 0 to 1.
fn line_chart(curves: &[Curve]) -> String {
    let ks: Vec<usize> = curves
        .iter()
        .flat_map(|curve| curve.points.iter().map(|(k, _)| *k))
        .collect();
    let (Some(&low), Some(&high)) = (ks.iter().min(), ks.iter().max()) else {
        return "<p>No metrics.</p>\n".to_string();
    };
    let span = ((high as f64).ln() - (low as f64).ln()).max(f64::EPSILON);
    let x = |k: usize| LEFT + ((k as f64).ln() - (low as f64).ln()) / span * plot_width();
    let y = |value: f64| TOP + (1.0 - value.clamp(0.0, 1.0)) * plot_height();
    let mut svg = open_svg("metrics against k");
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let at = y(tick);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#e3e6ec\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{tick:.2}</text>",
            LEFT + plot_width(),
            LEFT - 6.0,
            at + 4.0
        );
    }
    let mut axis_ks = ks.clone();
    axis_ks.sort_unstable();
    axis_ks.dedup();
    for k in axis_ks {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{k}</text>",
            x(k),
            TOP + plot_height() + 18.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">k</text>",
        LEFT + plot_width() / 2.0,
        HEIGHT - 4.0
    );
    for (index, curve) in curves.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = curve
            .points
            .iter()
            .map(|(k, value)| format!("{:.1},{:.1}", x(*k), y(*value)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for (k, value) in &curve.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{} at {k}: {value:.4}</title></circle>",
                x(*k),
                y(*value),
                escape(&curve.metric)
            );
        }
        let legend_y = TOP + 14.0 + index as f64 * 20.0;
        let legend_x = LEFT + plot_width() + 16.0;
        let _ = write!(
            svg,
            "<rect x=\"{legend_x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{legend_y:.1}\">{}</text>",
            legend_y - 10.0,
            legend_x + 18.0,
            escape(&curve.metric)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// How many requests took how long: 24 equal bins up to the 99th percentile, and one for
/// everything slower.
fn histogram(latencies_ms: &[f64]) -> String {
    if latencies_ms.is_empty() {
        return "<p>No requests.</p>\n".to_string();
    }
    let mut sorted = latencies_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p99 = crate::bench::percentile(&sorted, 0.99).max(f64::EPSILON);
    const BINS: usize = 24;
    let width = p99 / BINS as f64;
    let mut counts = [0usize; BINS + 1];
    for latency in &sorted {
        let bin = ((latency / width) as usize).min(BINS);
        counts[bin] += 1;
    }
    let tallest = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bar_width = plot_width() / (BINS + 1) as f64;
    let mut svg = open_svg("latency histogram");
    for (bin, count) in counts.iter().enumerate() {
        let height = *count as f64 / tallest * plot_height();
        let (from, to) = (bin as f64 * width, (bin + 1) as f64 * width);
        let range = if bin == BINS {
            format!("over {from:.1} ms")
        } else {
            format!("{from:.1}–{to:.1} ms")
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"><title>{range}: {count}</title></rect>",
            LEFT + bin as f64 * bar_width + 1.0,
            TOP + plot_height() - height,
            bar_width - 2.0,
            if bin == BINS { "#adb5bd" } else { COLOURS[0] }
        );
    }
    for bin in (0..=BINS).step_by(6) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.1}</text>",
            LEFT + bin as f64 * bar_width,
            TOP + plot_height() + 18.0,
            bin as f64 * width
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">milliseconds (last bar: slower than p99 = {p99:.1} ms)</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        LEFT + plot_width() / 2.0,
        HEIGHT - 4.0,
        LEFT - 6.0,
        TOP + 10.0,
        tallest as usize,
        LEFT - 6.0,
        TOP + plot_height()
    );
    svg.push_str("</svg>\n");
    svg
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

fn open_svg(label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{label}\">"
    )
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_self_contained_page_beside_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let json = serde_json::json!({ "ndcg_at_k": 0.5, "note": "<b>" });
        let latencies: Vec<f64> = (1..=200).map(f64::from).collect();
        let report = Report {
            title: "Search <evaluation>".to_string(),
            command: "inkling eval search --report out".to_string(),
            summary: vec![("nDCG@10".to_string(), "0.5000".to_string())],
            curves: vec![Curve {
                metric: "nDCG".to_string(),
                points: vec![(1, 0.2), (10, 0.5), (100, 0.7)],
            }],
            latencies_ms: &latencies,
            json: &json,
        };
        write(dir.path(), &report).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        let cases = [
            ("the escaped title", "Search &lt;evaluation&gt;", true),
            ("one line per curve", "<polyline", true),
            ("a histogram bar per bin", "<rect", true),
            ("the JSON, escaped", "&lt;b&gt;", true),
            ("nothing raw from the data", "<b>", false),
            ("no script", "<script", false),
            ("nothing fetched", "src=", false),
        ];
        for (what, fragment, present) in cases {
            assert_eq!(html.contains(fragment), present, "{what}");
        }
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(written, json);
    }
}
