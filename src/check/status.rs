//! The `check_status` page: html, csv and json byte for byte as
//! nginx_upstream_check_module writes them (the DOCTYPE without its closing
//! quote, the newline inside it, the 7 spaces before `cellpadding`), and
//! its query string.
//!
//! Fixed, and only this: the json separators are right when `status=`
//! leaves rows out (C put a comma after the last row shown unless it was
//! the last of all), and json strings are escaped.

use std::fmt::Write as _;

/// The formats of `check_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Csv,
    Json,
}

impl Format {
    /// `html`, `csv` or `json`, case-sensitive as in C.
    pub fn from_name(name: &[u8]) -> Option<Format> {
        match name {
            b"html" => Some(Format::Html),
            b"csv" => Some(Format::Csv),
            b"json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html",
            Format::Csv => "text/plain",
            Format::Json => "application/json",
        }
    }
}

/// Which peers `status=` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    #[default]
    All,
    Up,
    Down,
}

impl Filter {
    pub fn shows(self, down: bool) -> bool {
        match self {
            Filter::All => true,
            Filter::Up => !down,
            Filter::Down => down,
        }
    }
}

/// What a query string asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub format: Format,
    pub filter: Filter,
    /// Messages for the error log, one per bad value, as C logs them.
    pub errors: Vec<String>,
}

/// `ngx_http_arg`: the value of the first `name=` (name matched
/// case-insensitively) at the start or after a `&`, up to the next `&`,
/// not unescaped.
fn arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    args.split(|&c| c == b'&').find_map(|pair| {
        let key = pair.get(..name.len())?;
        (key.eq_ignore_ascii_case(name) && pair.get(name.len()) == Some(&b'='))
            .then(|| &pair[name.len() + 1..])
    })
}

/// Reads the query string as C does: `format=html|csv|json`
/// (case-sensitive) and `status=up|down` (case-insensitive), each from
/// its first occurrence. A bad value keeps the default and adds the log
/// message `http upstream check, bad argument: "..."`.
pub fn parse_query(args: &[u8], default: Format) -> Query {
    let mut query = Query {
        format: default,
        filter: Filter::All,
        errors: Vec::new(),
    };
    let bad = |value: &[u8]| {
        format!(
            "http upstream check, bad argument: \"{}\"",
            value.escape_ascii()
        )
    };
    if let Some(value) = arg(args, b"format") {
        match Format::from_name(value) {
            Some(f) => query.format = f,
            None => query.errors.push(bad(value)),
        }
    }
    if let Some(value) = arg(args, b"status") {
        if value.eq_ignore_ascii_case(b"down") {
            query.filter = Filter::Down;
        } else if value.eq_ignore_ascii_case(b"up") {
            query.filter = Filter::Up;
        } else {
            query.errors.push(bad(value));
        }
    }
    query
}

/// One checked peer on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// The position in the whole list (kept under `status=`).
    pub index: u64,
    pub upstream: &'a str,
    /// The server's address as written (`host:port`).
    pub name: &'a str,
    pub down: bool,
    pub rise: u64,
    pub fall: u64,
    /// The check type's name (`http`, `tcp`, ...).
    pub type_name: &'a str,
    /// The `port=` of the check, 0 when not set.
    pub port: u16,
}

impl Row<'_> {
    fn status(&self) -> &'static str {
        if self.down {
            "down"
        } else {
            "up"
        }
    }
}

/// The page in `format`. `generation` is 1 at start, +1 per reload.
pub fn render(format: Format, generation: u64, rows: &[Row], filter: Filter) -> String {
    match format {
        Format::Html => html(generation, rows, filter),
        Format::Csv => csv(rows, filter),
        Format::Json => json(generation, rows, filter),
    }
}

fn shown<'r, 'a>(rows: &'r [Row<'a>], filter: Filter) -> impl Iterator<Item = &'r Row<'a>> {
    rows.iter().filter(move |r| filter.shows(r.down))
}

pub fn html(generation: u64, rows: &[Row], filter: Filter) -> String {
    let total = shown(rows, filter).count();
    let mut out = format!(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\n\
         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\">\n\
         <head>\n  \
         <title>Nginx http upstream check status</title>\n\
         </head>\n\
         <body>\n\
         <h1>Nginx http upstream check status</h1>\n\
         <h2>Check upstream server number: {total}, generation: {generation}</h2>\n\
         <table style=\"background-color:white\" cellspacing=\"0\"        \
         cellpadding=\"3\" border=\"1\">\n  \
         <tr bgcolor=\"#C0C0C0\">\n    \
         <th>Index</th>\n    \
         <th>Upstream</th>\n    \
         <th>Name</th>\n    \
         <th>Status</th>\n    \
         <th>Rise counts</th>\n    \
         <th>Fall counts</th>\n    \
         <th>Check type</th>\n    \
         <th>Check port</th>\n  \
         </tr>\n"
    );
    for r in shown(rows, filter) {
        let _ = write!(
            out,
            "  <tr{}>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n    \
             <td>{}</td>\n  \
             </tr>\n",
            if r.down { " bgcolor=\"#FF0000\"" } else { "" },
            r.index,
            r.upstream,
            r.name,
            r.status(),
            r.rise,
            r.fall,
            r.type_name,
            r.port
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

/// No header line; one line per peer.
pub fn csv(rows: &[Row], filter: Filter) -> String {
    let mut out = String::new();
    for r in shown(rows, filter) {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.index,
            r.upstream,
            r.name,
            r.status(),
            r.rise,
            r.fall,
            r.type_name,
            r.port
        );
    }
    out
}

/// A JSON string's content: `"`, `\` and control characters escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

pub fn json(generation: u64, rows: &[Row], filter: Filter) -> String {
    let total = shown(rows, filter).count();
    let mut out = format!(
        "{{\"servers\": {{\n  \
         \"total\": {total},\n  \
         \"generation\": {generation},\n  \
         \"server\": [\n"
    );
    for (i, r) in shown(rows, filter).enumerate() {
        let _ = writeln!(
            out,
            "    {{\"index\": {}, \"upstream\": \"{}\", \"name\": \"{}\", \
             \"status\": \"{}\", \"rise\": {}, \"fall\": {}, \"type\": \"{}\", \
             \"port\": {}}}{}",
            r.index,
            escape(r.upstream),
            escape(r.name),
            r.status(),
            r.rise,
            r.fall,
            escape(r.type_name),
            r.port,
            if i + 1 == total { "" } else { "," }
        );
    }
    out.push_str("  ]\n}}\n");
    out
}

/// Logged when the page is asked for and nothing is checked (C answers
/// 500 then).
pub const NO_CHECKED_PEERS: &str = "http upstream check module can not find any check server, \
                                    make sure you've added the check servers";

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row<'static>> {
        vec![
            Row {
                index: 0,
                upstream: "backend",
                name: "106.187.48.116:80",
                down: false,
                rise: 46,
                fall: 0,
                type_name: "http",
                port: 80,
            },
            Row {
                index: 1,
                upstream: "backend",
                name: "10.0.0.2:80",
                down: true,
                rise: 0,
                fall: 58,
                type_name: "http",
                port: 80,
            },
            Row {
                index: 2,
                upstream: "db",
                name: "10.0.0.3:3306",
                down: false,
                rise: 3,
                fall: 0,
                type_name: "mysql",
                port: 0,
            },
        ]
    }

    /// The C module's HTML head, from its format string.
    const HTML_HEAD: &str = concat!(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\n",
        "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n",
        "<html xmlns=\"http://www.w3.org/1999/xhtml\">\n",
        "<head>\n",
        "  <title>Nginx http upstream check status</title>\n",
        "</head>\n",
        "<body>\n",
        "<h1>Nginx http upstream check status</h1>\n",
        "<h2>Check upstream server number: %ui, generation: %ui</h2>\n",
        "<table style=\"background-color:white\" cellspacing=\"0\" ",
        "       cellpadding=\"3\" border=\"1\">\n",
        "  <tr bgcolor=\"#C0C0C0\">\n",
        "    <th>Index</th>\n",
        "    <th>Upstream</th>\n",
        "    <th>Name</th>\n",
        "    <th>Status</th>\n",
        "    <th>Rise counts</th>\n",
        "    <th>Fall counts</th>\n",
        "    <th>Check type</th>\n",
        "    <th>Check port</th>\n",
        "  </tr>\n",
    );

    const HTML_ROW: &str = concat!(
        "  <tr%s>\n",
        "    <td>%ui</td>\n",
        "    <td>%V</td>\n",
        "    <td>%V</td>\n",
        "    <td>%s</td>\n",
        "    <td>%ui</td>\n",
        "    <td>%ui</td>\n",
        "    <td>%V</td>\n",
        "    <td>%ui</td>\n",
        "  </tr>\n",
    );

    const HTML_TAIL: &str = concat!("</table>\n", "</body>\n", "</html>\n");

    const CSV_ROW: &str = "%ui,%V,%V,%s,%ui,%ui,%V,%ui\n";

    const JSON_HEAD: &str = concat!(
        "{\"servers\": {\n",
        "  \"total\": %ui,\n",
        "  \"generation\": %ui,\n",
        "  \"server\": [\n",
    );

    const JSON_ROW: &str = concat!(
        "    {\"index\": %ui, ",
        "\"upstream\": \"%V\", ",
        "\"name\": \"%V\", ",
        "\"status\": \"%s\", ",
        "\"rise\": %ui, ",
        "\"fall\": %ui, ",
        "\"type\": \"%V\", ",
        "\"port\": %ui}",
        "%s\n",
    );

    const JSON_TAIL: &str = concat!("  ]\n", "}}\n");

    /// `ngx_snprintf` for these formats: each `%ui`, `%V` or `%s` takes
    /// the next value.
    fn c_format(fmt: &str, values: &[String]) -> String {
        let mut out = String::new();
        let mut values = values.iter();
        let mut rest = fmt;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let spec = &rest[at..];
            let len = ["%ui", "%V", "%s"]
                .iter()
                .find(|s| spec.starts_with(*s))
                .expect("a known conversion")
                .len();
            out.push_str(values.next().expect("a value"));
            rest = &spec[len..];
        }
        out.push_str(rest);
        assert!(values.next().is_none());
        out
    }

    fn c_row(fmt: &str, r: &Row, html: bool, sep: Option<&str>) -> String {
        let mut v = Vec::new();
        if html {
            v.push(if r.down { " bgcolor=\"#FF0000\"" } else { "" }.to_string());
        }
        v.extend([
            r.index.to_string(),
            r.upstream.to_string(),
            r.name.to_string(),
            r.status().to_string(),
            r.rise.to_string(),
            r.fall.to_string(),
            r.type_name.to_string(),
            r.port.to_string(),
        ]);
        v.extend(sep.map(str::to_string));
        c_format(fmt, &v)
    }

    #[test]
    fn html_is_the_c_format() {
        let rows = rows();
        let mut want = c_format(HTML_HEAD, &["3".into(), "7".into()]);
        for r in &rows {
            want += &c_row(HTML_ROW, r, true, None);
        }
        want += HTML_TAIL;
        assert_eq!(html(7, &rows, Filter::All), want);
        // The quirks are there.
        assert!(want.contains("Strict//EN\n\"http"));
        assert!(want.contains("cellspacing=\"0\"        cellpadding"));
        // Filtered: the count is of the rows shown, indexes stay.
        let mut want = c_format(HTML_HEAD, &["1".into(), "7".into()]);
        want += &c_row(HTML_ROW, &rows[1], true, None);
        want += HTML_TAIL;
        assert_eq!(html(7, &rows, Filter::Down), want);
        assert!(want.contains("  <tr bgcolor=\"#FF0000\">\n    <td>1</td>\n"));
    }

    #[test]
    fn html_golden() {
        let rows = &rows()[..1];
        let want = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN
\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">
<html xmlns=\"http://www.w3.org/1999/xhtml\">
<head>
  <title>Nginx http upstream check status</title>
</head>
<body>
<h1>Nginx http upstream check status</h1>
<h2>Check upstream server number: 1, generation: 1</h2>
<table style=\"background-color:white\" cellspacing=\"0\"        cellpadding=\"3\" border=\"1\">
  <tr bgcolor=\"#C0C0C0\">
    <th>Index</th>
    <th>Upstream</th>
    <th>Name</th>
    <th>Status</th>
    <th>Rise counts</th>
    <th>Fall counts</th>
    <th>Check type</th>
    <th>Check port</th>
  </tr>
  <tr>
    <td>0</td>
    <td>backend</td>
    <td>106.187.48.116:80</td>
    <td>up</td>
    <td>46</td>
    <td>0</td>
    <td>http</td>
    <td>80</td>
  </tr>
</table>
</body>
</html>
";
        assert_eq!(html(1, rows, Filter::All), want);
    }

    #[test]
    fn csv_is_the_c_format() {
        let rows = rows();
        let want: String = rows
            .iter()
            .map(|r| c_row(CSV_ROW, r, false, None))
            .collect();
        assert_eq!(csv(&rows, Filter::All), want);
        assert_eq!(
            csv(&rows, Filter::All),
            "0,backend,106.187.48.116:80,up,46,0,http,80\n\
             1,backend,10.0.0.2:80,down,0,58,http,80\n\
             2,db,10.0.0.3:3306,up,3,0,mysql,0\n"
        );
        assert_eq!(
            csv(&rows, Filter::Up),
            "0,backend,106.187.48.116:80,up,46,0,http,80\n\
             2,db,10.0.0.3:3306,up,3,0,mysql,0\n"
        );
        assert_eq!(csv(&[], Filter::All), "");
    }

    #[test]
    fn json_is_the_c_format_unfiltered() {
        let rows = rows();
        let mut want = c_format(JSON_HEAD, &["3".into(), "2".into()]);
        for (i, r) in rows.iter().enumerate() {
            let sep = if i == rows.len() - 1 { "" } else { "," };
            want += &c_row(JSON_ROW, r, false, Some(sep));
        }
        want += JSON_TAIL;
        assert_eq!(json(2, &rows, Filter::All), want);
        assert_eq!(
            want,
            "{\"servers\": {\n  \"total\": 3,\n  \"generation\": 2,\n  \"server\": [\n    \
             {\"index\": 0, \"upstream\": \"backend\", \"name\": \"106.187.48.116:80\", \
             \"status\": \"up\", \"rise\": 46, \"fall\": 0, \"type\": \"http\", \"port\": 80},\n    \
             {\"index\": 1, \"upstream\": \"backend\", \"name\": \"10.0.0.2:80\", \
             \"status\": \"down\", \"rise\": 0, \"fall\": 58, \"type\": \"http\", \"port\": 80},\n    \
             {\"index\": 2, \"upstream\": \"db\", \"name\": \"10.0.0.3:3306\", \
             \"status\": \"up\", \"rise\": 3, \"fall\": 0, \"type\": \"mysql\", \"port\": 0}\n  \
             ]\n}}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&want).unwrap();
        assert_eq!(v["servers"]["server"][2]["type"], "mysql");
        let empty = json(1, &[], Filter::All);
        assert_eq!(
            empty,
            c_format(JSON_HEAD, &["0".into(), "1".into()]) + JSON_TAIL
        );
        serde_json::from_str::<serde_json::Value>(&empty).unwrap();
    }

    #[test]
    fn json_filtered_has_valid_commas() {
        let rows = rows();
        // C wrote "...}," after index 0 here (not the last of all rows).
        let want = c_format(JSON_HEAD, &["2".into(), "1".into()])
            + &c_row(JSON_ROW, &rows[0], false, Some(","))
            + &c_row(JSON_ROW, &rows[2], false, Some(""))
            + JSON_TAIL;
        assert_eq!(json(1, &rows, Filter::Up), want);
        let down = json(1, &rows[..2], Filter::Down);
        let v: serde_json::Value = serde_json::from_str(&down).unwrap();
        assert_eq!(v["servers"]["total"], 1);
        assert_eq!(v["servers"]["server"][0]["index"], 1);
        let v: serde_json::Value =
            serde_json::from_str(&json(1, &rows[..1], Filter::Down)).unwrap();
        assert_eq!(v["servers"]["server"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut r = rows()[0];
        r.upstream = "a\"b\\c\n\u{1}";
        let out = json(1, &[r], Filter::All);
        assert!(out.contains("\"upstream\": \"a\\\"b\\\\c\\n\\u0001\""));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["servers"]["server"][0]["upstream"], "a\"b\\c\n\u{1}");
        // csv and html stay as C wrote them.
        assert!(csv(&[r], Filter::All).starts_with("0,a\"b\\c\n\u{1},"));
    }

    #[test]
    fn render_picks_the_format() {
        let rows = rows();
        assert_eq!(
            render(Format::Csv, 1, &rows, Filter::Down),
            csv(&rows, Filter::Down)
        );
        assert_eq!(
            render(Format::Json, 4, &rows, Filter::All),
            json(4, &rows, Filter::All)
        );
        assert_eq!(
            render(Format::Html, 4, &rows, Filter::Up),
            html(4, &rows, Filter::Up)
        );
        assert_eq!(Format::Html.content_type(), "text/html");
        assert_eq!(Format::Csv.content_type(), "text/plain");
        assert_eq!(Format::Json.content_type(), "application/json");
    }

    #[test]
    fn query() {
        let q = |args: &[u8]| parse_query(args, Format::Html);
        assert_eq!(
            q(b""),
            Query {
                format: Format::Html,
                filter: Filter::All,
                errors: vec![],
            }
        );
        assert_eq!(q(b"format=json").format, Format::Json);
        assert_eq!(q(b"format=csv&status=down").filter, Filter::Down);
        assert_eq!(q(b"status=UP&format=csv").format, Format::Csv);
        assert_eq!(q(b"status=UP").filter, Filter::Up);
        // The name is matched in any case, the format value exactly.
        assert_eq!(q(b"FORMAT=json").format, Format::Json);
        let bad = q(b"format=JSON&status=sideways");
        assert_eq!(bad.format, Format::Html);
        assert_eq!(bad.filter, Filter::All);
        assert_eq!(
            bad.errors,
            [
                "http upstream check, bad argument: \"JSON\"",
                "http upstream check, bad argument: \"sideways\"",
            ]
        );
        // The first occurrence counts.
        assert_eq!(q(b"status=up&status=down").filter, Filter::Up);
        assert_eq!(q(b"format=csv&format=json").format, Format::Csv);
        // Only a whole name at the start or after '&'.
        assert_eq!(q(b"xformat=json").format, Format::Html);
        assert_eq!(q(b"xformat=json&format=csv").format, Format::Csv);
        assert_eq!(q(b"format").format, Format::Html);
        assert_eq!(q(b"formats=json").format, Format::Html);
        // The default stays with no format=.
        assert_eq!(
            parse_query(b"status=down", Format::Json).format,
            Format::Json
        );
        // The value is not unescaped, and escaped in the log.
        assert_eq!(
            q(b"format=%6Aso\n").errors,
            ["http upstream check, bad argument: \"%6Aso\\n\""]
        );
    }

    #[test]
    fn filter() {
        assert!(Filter::All.shows(true) && Filter::All.shows(false));
        assert!(Filter::Up.shows(false) && !Filter::Up.shows(true));
        assert!(Filter::Down.shows(true) && !Filter::Down.shows(false));
    }
}
