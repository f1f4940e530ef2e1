//! `report.html`: one self-contained file. Styles are inline, charts are inline SVG, and the
//! page names no network address (no fonts, scripts or images are fetched), so it opens from
//! disk, offline, and prints.

use ipcbench_record::RunRecord;

use crate::chart::ChartInfo;
use crate::doc::{self, Output, Table};
use crate::hgrm::HgrmFile;
use crate::{ReportError, cases, relative};

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #222;
       max-width: 1240px; margin: 0 auto; padding: 1.5rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 0.8rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
table { border-collapse: collapse; font-size: 0.86rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts th { width: 8rem; }
.wide { overflow-x: auto; }
.warnings { background: #fff6e0; border: 1px solid #e8c66a; padding: 0.5rem 1rem; }
.notes { font-size: 0.86rem; color: #444; }
code { font-size: 0.92em; }
figure { margin: 1.2rem 0; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid #eee; }
figcaption { font-size: 0.86rem; color: #555; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  .wide { overflow: visible; }
  table { font-size: 7.5pt; }
  figure, .warnings, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// Escapes text for HTML content and attribute values; `//` is broken up so that no text
/// from a record can read as a network reference.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out.replace("//", "/&#47;")
}

/// Turns a plotters SVG document into an element for inline use: no XML namespace URL (HTML
/// does not need it), no fixed size (CSS scales it), an accessible name.
pub(crate) fn inline_svg(svg: &str, title: &str) -> String {
    let body = svg.trim();
    let body = match body.find("<svg") {
        Some(start) => &body[start..],
        None => body,
    };
    let Some(tag_end) = body.find('>') else {
        return String::new();
    };
    let open = &body[..tag_end];
    let view_box = open
        .split("viewBox=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("0 0 1200 700");
    format!(
        "<svg viewBox=\"{view_box}\" role=\"img\" aria-label=\"{}\">{}",
        escape(title),
        &body[tag_end + 1..]
    )
}

fn table(t: &Table, class: &str) -> String {
    let mut out = format!("<div class=\"wide\"><table class=\"{class}\">\n<thead><tr>");
    for (h, numeric) in t.header.iter().zip(&t.numeric) {
        let class = if *numeric { " class=\"num\"" } else { "" };
        out.push_str(&format!("<th{class}>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (c, numeric) in row.iter().zip(&t.numeric) {
            let class = if *numeric { " class=\"num\"" } else { "" };
            out.push_str(&format!("<td{class}>{}</td>", escape(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// The HTML report; `charts` pairs each chart with its SVG document.
pub(crate) fn render(record: &RunRecord, charts: &[(ChartInfo, String)], hgrm: &[HgrmFile]) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>ipcbench run {}</title>\n", escape(&record.name)));
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&format!(
        "<h1>ipcbench run <code>{}</code></h1>\n",
        escape(&record.name)
    ));
    out.push_str("<table class=\"facts\">\n");
    for (key, value) in doc::run_facts(record) {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(&key),
            escape(&value)
        ));
    }
    out.push_str("</table>\n");
    if !record.warnings.is_empty() {
        out.push_str("<div class=\"warnings\"><strong>Warnings</strong> (conditions that make these numbers less reliable)<ul>\n");
        for warning in &record.warnings {
            out.push_str(&format!("<li>{}</li>\n", escape(warning)));
        }
        out.push_str("</ul></div>\n");
    }
    for scenario in cases::scenarios(&record.cases) {
        out.push_str(&format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n",
            escape(&scenario),
            escape(&scenario)
        ));
        let relative = relative::relative_summary(&record.cases, &scenario);
        if let Some((heading, lines)) = relative.split_first() {
            out.push_str(&format!(
                "<p class=\"relative\">{}</p>\n<ul class=\"relative\">\n",
                escape(heading)
            ));
            for line in lines {
                out.push_str(&format!("<li>{}</li>\n", escape(line)));
            }
            out.push_str("</ul>\n");
        }
        out.push_str(&table(
            &doc::scenario_table(record, &scenario, Output::Document),
            "cases",
        ));
        if let Some(explanation) = doc::bare_explanation(record, &scenario) {
            out.push_str(&format!("<p class=\"notes\">{}</p>\n", escape(explanation)));
        }
        for finding in doc::capacity_findings(record, &scenario) {
            out.push_str(&format!("<p class=\"notes\">{}</p>\n", escape(&finding)));
        }
        let notes = doc::scenario_notes(record, &scenario);
        if !notes.is_empty() {
            out.push_str("<ul class=\"notes\">\n");
            for (id, note) in notes {
                out.push_str(&format!("<li><code>{}</code>: {}</li>\n", escape(&id), escape(&note)));
            }
            out.push_str("</ul>\n");
        }
        for (info, svg) in charts.iter().filter(|(c, _)| c.scenario == scenario) {
            out.push_str(&format!(
                "<figure id=\"{}\">\n{}\n<figcaption>{} · files: <a href=\"charts/{}.png\">PNG</a>, <a href=\"charts/{}.svg\">SVG</a></figcaption>\n</figure>\n",
                escape(&info.stem),
                inline_svg(svg, &info.title),
                escape(&info.title),
                escape(&info.stem),
                escape(&info.stem)
            ));
        }
        out.push_str("</section>\n");
    }
    out.push_str("<section id=\"files\">\n<h2>Files</h2>\n<ul>\n");
    out.push_str("<li><a href=\"run.json\"><code>run.json</code></a>: the full record, every trial; <code>ipcbench report run.json</code> renders this report again</li>\n");
    out.push_str("<li><a href=\"cases.csv\"><code>cases.csv</code></a>: one row per case, the summary figures</li>\n");
    out.push_str("<li><a href=\"report.md\"><code>report.md</code></a>: this report as Markdown</li>\n");
    if !hgrm.is_empty() {
        out.push_str("<li>Percentile distributions (HdrHistogram <code>.hgrm</code>, values in µs, all trials of a case merged):<ul>\n");
        for file in hgrm {
            out.push_str(&format!(
                "<li><a href=\"hgrm/{}\"><code>{}</code></a></li>\n",
                escape(&file.file_name),
                escape(&file.file_name)
            ));
        }
        out.push_str("</ul></li>\n");
    }
    out.push_str("</ul>\n</section>\n</body>\n</html>\n");
    out
}

/// `report.html` of `record` (charts drawn in memory).
///
/// # Errors
/// [`ReportError::Histogram`] when a stored histogram cannot be decoded,
/// [`ReportError::Draw`] when a chart cannot be drawn.
pub fn html(record: &RunRecord) -> Result<String, ReportError> {
    let mut charts = Vec::new();
    for figure in crate::chart::figures(record)? {
        let drawn = crate::chart::draw(&figure, std::path::Path::new("."), false, false, true)?;
        charts.push((drawn.info, drawn.svg.unwrap_or_default()));
    }
    let hgrm = crate::hgrm::hgrm_files(record)?;
    Ok(render(record, &charts, &hgrm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_svg_drops_the_namespace_url_and_fixed_size() {
        let svg = "<svg width=\"1200\" height=\"700\" viewBox=\"0 0 1200 700\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect/></svg>";
        let inline = inline_svg(svg, "a <b> chart");
        assert_eq!(
            inline,
            "<svg viewBox=\"0 0 1200 700\" role=\"img\" aria-label=\"a &lt;b&gt; chart\">\n<rect/></svg>"
        );
    }

    #[test]
    fn escaped_text_never_holds_a_double_slash() {
        assert_eq!(escape("a//b///c"), "a/&#47;b/&#47;/c");
        assert!(!escape("see https://example.invalid/x").contains("//"));
    }
}
