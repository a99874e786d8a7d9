//! The Grafana dashboards of `deploy/grafana/dashboards`, checked the only way
//! Grafana can be checked here (it cannot be installed on these machines).
//!
//! - Every dashboard is structurally valid for Grafana: a fixed uid and title,
//!   unique panel ids, whole `gridPos` rectangles inside the 24 columns that
//!   do not overlap, and every datasource (of panels, queries and template
//!   variables) a provisioned one by uid and type. ClickHouse queries are raw
//!   SQL that reads only the `v_*` views, the dashboards' whole contract.
//! - Every ClickHouse panel query and template-variable query, rendered as
//!   Grafana and the official ClickHouse plugin render it ([`grafana`]: the
//!   variables, then the plugin's macros) for a time range covering the demo
//!   data, runs on ClickHouse over data the real pipeline wrote from the load
//!   generator, and returns data. A failure names the dashboard and panel.
//!   Custom variables are also tried with each of their other options.
//! - Every time series over the daily views shows, by day, week and month,
//!   what the period's days give when rates are recomputed from summed
//!   counts (never averaged from daily rates), and by day the views' own
//!   values.
//! - The customer timeline finds the right customer for an identifier as
//!   written anywhere: its lookup (the `customer` variable) normalises like
//!   `touchline_model::Identifier`, checked on hard forms and on every kind of
//!   identifier the load generator writes, and takes a pseudonymised stored
//!   form as it is.
//! - A broken panel is reported by dashboard and panel (the check is given one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use touchline_loadgen::truth::{GroundTruth, IdKind as TruthKind};
use touchline_loadgen::{generate, Scenario};
use touchline_model::{IdKind, Identifier, Pseudonymiser};
use touchline_tests::{now_ms, repo_root, TestEnv};

const DASHBOARDS: &str = "deploy/grafana/dashboards";
const DATASOURCES: &str = "deploy/grafana/provisioning/datasources";
const CLICKHOUSE_PLUGIN: &str = "grafana-clickhouse-datasource";
/// The customer timeline and its identifier inputs.
const TIMELINE_UID: &str = "touchline-customer-timeline";
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------
// Grafana's and the plugin's query rendering: the one place that knows it.

/// What Grafana and the official ClickHouse plugin (grafana-clickhouse-datasource
/// 4.x) do to a query's text before ClickHouse sees it, in their order:
///
/// 1. Grafana's frontend replaces template variables (`$name`, `${name}`,
///    `${name:format}`, `[[name]]`): without a format through the plugin's
///    own formatter (a multi-value becomes `'a','b'`, a single value is
///    inserted as is), with a format through Grafana's formatter
///    (`sqlstring`, `percentencode`, `singlequote`, `csv`, `raw`). An
///    "All" selection is the variable's `allValue`, else all its options.
/// 2. The plugin's backend expands its macros (`pkg/macros/macros.go`, args
///    split on top-level commas as sqlds does): `$__timeFilter(c)`,
///    `$__dateFilter(c)`, `$__dateTimeFilter(d, t)` (`$__dt`), `$__fromTime`,
///    `$__toTime`, and the `_ms` forms. Times are Unix seconds (ms for `_ms`)
///    and dates are UTC, the zone of the Grafana image.
///
/// Not rendered, so a dashboard using them fails here: `$__timeInterval`,
/// `$__timeInterval_ms` and `$__interval_s` (their interval comes from the
/// panel's width in the browser), `$__conditionalAll` and Grafana's global
/// variables. `deploy/grafana/dashboards/README.md` lists the same.
mod grafana {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    /// A template variable's current value.
    #[derive(Debug, Clone, PartialEq)]
    pub enum VarValue {
        Single(String),
        Multi(Vec<String>),
    }

    /// The time range and variable values of one dashboard refresh.
    #[derive(Debug, Clone)]
    pub struct Context {
        pub from_ms: i64,
        pub to_ms: i64,
        pub vars: BTreeMap<String, VarValue>,
    }

    /// `sql` as ClickHouse receives it from Grafana.
    pub fn render(sql: &str, context: &Context) -> Result<String, String> {
        let sql = variables(sql, context)?;
        macros(&sql, context)
    }

    fn is_word(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    fn word_at(text: &str) -> &str {
        let end = text.find(|c: char| !is_word(c)).unwrap_or(text.len());
        &text[..end]
    }

    /// Grafana's variable syntax, as its regex
    /// `\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?}`
    /// reads it. Names starting with `__` that are not variables are left
    /// for the plugin (its macros).
    fn variables(sql: &str, context: &Context) -> Result<String, String> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find(['$', '[']) {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let (name, format, length) = if let Some(after) = rest.strip_prefix('$') {
                let name = word_at(after);
                if !name.is_empty() {
                    (name, None, 1 + name.len())
                } else if let Some(body) = after.strip_prefix('{') {
                    match parse_braced(body) {
                        Some((name, format, length)) => (name, format, 2 + length),
                        None => ("", None, 0),
                    }
                } else {
                    ("", None, 0)
                }
            } else if let Some(body) = rest.strip_prefix("[[") {
                let name = word_at(body);
                let after = &body[name.len()..];
                let (format, tail) = match after.strip_prefix(':') {
                    Some(f) => {
                        let format = word_at(f);
                        (Some(format), &f[format.len()..])
                    }
                    None => (None, after),
                };
                if !name.is_empty() && format != Some("") && tail.starts_with("]]") {
                    let length = rest.len() - tail.len() + 2;
                    (name, format, length)
                } else {
                    ("", None, 0)
                }
            } else {
                ("", None, 0)
            };
            if length == 0 {
                let c = rest.chars().next().unwrap_or('$');
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let whole = &rest[..length];
            match context.vars.get(name) {
                Some(value) => out.push_str(&format_value(value, format)?),
                None if name.starts_with("__") => out.push_str(whole),
                None => return Err(format!("{whole}: no template variable `{name}`")),
            }
            rest = &rest[length..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `name(.path)?(:format)?}` after `${`: the name, the format and the
    /// length up to and including `}`.
    fn parse_braced(body: &str) -> Option<(&str, Option<&str>, usize)> {
        let name = word_at(body);
        if name.is_empty() {
            return None;
        }
        let close = body.find('}')?;
        let inside = &body[name.len()..close];
        if inside.starts_with('.') {
            return None; // field paths are for data links, not queries
        }
        let format = match inside.strip_prefix(':') {
            Some(format) if !format.is_empty() => Some(format),
            None if inside.is_empty() => None,
            _ => return None,
        };
        Some((name, format, close + 1))
    }

    fn format_value(value: &VarValue, format: Option<&str>) -> Result<String, String> {
        let values: Vec<&str> = match value {
            VarValue::Single(v) => vec![v.as_str()],
            VarValue::Multi(vs) => vs.iter().map(String::as_str).collect(),
        };
        let multi = matches!(value, VarValue::Multi(_));
        Ok(match format {
            // The plugin's formatter (CHDatasource.format).
            None if multi => format!("'{}'", values.join("','")),
            None | Some("raw") | Some("csv") => values.join(","),
            Some("sqlstring") => values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''").replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(","),
            Some("singlequote") => values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "\\'")))
                .collect::<Vec<_>>()
                .join(","),
            Some("percentencode") if multi => percent_encode(&format!("{{{}}}", values.join(","))),
            Some("percentencode") => percent_encode(values[0]),
            Some(other) => return Err(format!("variable format `{other}` is not rendered here")),
        })
    }

    /// JavaScript's `encodeURIComponent`, then `!'()*` encoded too: Grafana's
    /// `percentencode`. Only `A-Z a-z 0-9 - _ . ~` stay.
    pub fn percent_encode(text: &str) -> String {
        let mut out = String::new();
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    /// sqlds: `\$__name\b`, then a bracketed argument list if one follows,
    /// split on commas outside brackets and trimmed.
    fn macros(sql: &str, context: &Context) -> Result<String, String> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find("$__") {
            out.push_str(&rest[..at]);
            let name = word_at(&rest[at + 3..]);
            let after = &rest[at + 3 + name.len()..];
            let (args, length) = arguments(after)
                .ok_or_else(|| format!("$__{name}: no closing bracket for its arguments"))?;
            out.push_str(&expand(name, &args, context)?);
            rest = &after[length..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn arguments(text: &str) -> Option<(Vec<String>, usize)> {
        if !text.starts_with('(') {
            return Some((Vec::new(), 0));
        }
        let mut depth = 0;
        let mut args = Vec::new();
        let mut current = String::new();
        for (i, c) in text.char_indices() {
            match c {
                '(' => {
                    depth += 1;
                    if depth == 1 {
                        continue;
                    }
                }
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        args.push(current.trim().to_owned());
                        return Some((args, i + 1));
                    }
                }
                ',' if depth == 1 => {
                    args.push(current.trim().to_owned());
                    current.clear();
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        None
    }

    fn expand(name: &str, args: &[String], context: &Context) -> Result<String, String> {
        let time = |ms: i64| format!("toDateTime({})", ms.div_euclid(1000));
        let time_ms = |ms: i64| format!("fromUnixTimestamp64Milli({ms})");
        let date = |ms: i64| {
            let day = DateTime::<Utc>::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            format!("toDate('{day}')")
        };
        let (from, to) = (context.from_ms, context.to_ms);
        let one = || match args {
            [column] => Ok(column.as_str()),
            _ => Err(format!(
                "$__{name} takes 1 argument, got {}: {args:?}",
                args.len()
            )),
        };
        Ok(match name {
            "timeFilter" => {
                let c = one()?;
                format!("{c} >= {} AND {c} <= {}", time(from), time(to))
            }
            "timeFilter_ms" => {
                let c = one()?;
                format!("{c} >= {} AND {c} <= {}", time_ms(from), time_ms(to))
            }
            "dateFilter" => {
                let c = one()?;
                format!("{c} >= {} AND {c} <= {}", date(from), date(to))
            }
            "dateTimeFilter" | "dt" => match args {
                [d, t] => format!(
                    "({d} >= {} AND {d} <= {}) AND ({t} >= {} AND {t} <= {})",
                    date(from),
                    date(to),
                    time(from),
                    time(to)
                ),
                _ => return Err(format!("$__{name} takes 2 arguments, got {args:?}")),
            },
            "fromTime" => time(from),
            "toTime" => time(to),
            "fromTime_ms" => time_ms(from),
            "toTime_ms" => time_ms(to),
            "timeInterval" | "timeInterval_ms" | "interval_s" => {
                return Err(format!(
                    "$__{name} depends on the panel's width in the browser; not rendered here"
                ))
            }
            _ => return Err(format!("$__{name} is not a macro of the ClickHouse plugin")),
        })
    }
}

use grafana::{render, Context, VarValue};

#[test]
fn rendering_follows_grafana_and_the_plugin() {
    // 2023-11-14 22:13:20.250 .. 2023-11-15 00:00:00 UTC
    let context = Context {
        from_ms: 1_700_000_000_250,
        to_ms: 1_700_006_400_000,
        vars: BTreeMap::from([
            ("one".to_owned(), VarValue::Single("day".to_owned())),
            (
                "many".to_owned(),
                VarValue::Multi(vec!["app".to_owned(), "call_center".to_owned()]),
            ),
            (
                "typed".to_owned(),
                VarValue::Single("O'Brien (x)@Ex.com\\".to_owned()),
            ),
        ]),
    };
    let cases = [
        (
            "WHERE $__timeFilter(occurred_at)",
            "WHERE occurred_at >= toDateTime(1700000000) AND occurred_at <= toDateTime(1700006400)",
        ),
        (
            "$__dateFilter( day )",
            "day >= toDate('2023-11-14') AND day <= toDate('2023-11-15')",
        ),
        (
            "$__dt(day, toDateTime(t, 'UTC'))",
            "(day >= toDate('2023-11-14') AND day <= toDate('2023-11-15')) AND \
             (toDateTime(t, 'UTC') >= toDateTime(1700000000) AND toDateTime(t, 'UTC') <= toDateTime(1700006400))",
        ),
        (
            "$__fromTime, $__toTime, $__fromTime_ms",
            "toDateTime(1700000000), toDateTime(1700006400), fromUnixTimestamp64Milli(1700000000250)",
        ),
        ("'$one' [[one]] ${one} ${one:raw}", "'day' day day day"),
        ("IN (${many})", "IN ('app','call_center')"),
        ("IN (${many:sqlstring}) $many", "IN ('app','call_center') 'app','call_center'"),
        ("${typed:sqlstring}", "'O''Brien (x)@Ex.com\\'"),
        (
            "decodeURLComponent('${typed:percentencode}')",
            "decodeURLComponent('O%27Brien%20%28x%29%40Ex.com%5C')",
        ),
        // Not variables: ClickHouse regex classes and a `$` in a string.
        (
            "replaceRegexpAll(s, '^[[:space:]]+|[[:space:]]+$', '')",
            "replaceRegexpAll(s, '^[[:space:]]+|[[:space:]]+$', '')",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(render(sql, &context).as_deref(), Ok(want), "{sql}");
    }
    for (sql, why) in [
        ("$__timeInterval(t)", "browser"),
        ("$__conditionalAll(x, $one)", "not a macro"),
        ("$__timeFilter(a, b)", "1 argument"),
        ("$__timeFilter(a", "closing bracket"),
        ("${nope}", "no template variable"),
        ("${one:lucene}", "not rendered"),
    ] {
        let error = render(sql, &context).expect_err(sql);
        assert!(error.contains(why), "{sql}: {error}");
    }
    assert_eq!(
        grafana::percent_encode("Kim@예.kr !'()*~"),
        "Kim%40%EC%98%88.kr%20%21%27%28%29%2A~"
    );
}

// ---------------------------------------------------------------------------
// Dashboards and provisioning files.

#[derive(Debug, Clone)]
struct Dashboard {
    file: String,
    json: Value,
}

impl Dashboard {
    fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("(no title)")
    }

    fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or("")
    }

    /// Every panel, those inside rows included.
    fn panels(&self) -> Vec<&Value> {
        let mut all = Vec::new();
        for panel in self.json["panels"].as_array().into_iter().flatten() {
            all.push(panel);
            all.extend(panel["panels"].as_array().into_iter().flatten());
        }
        all
    }

    fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    /// Whether any panel or variable queries ClickHouse.
    fn uses_clickhouse(&self) -> bool {
        !self.queries().is_empty()
    }

    /// Every ClickHouse query: variables first (in their order), then panels.
    fn queries(&self) -> Vec<Query> {
        let mut queries = Vec::new();
        for variable in self.variables() {
            if datasource_type(&variable["datasource"]) == Some(CLICKHOUSE_PLUGIN) {
                let name = variable["name"].as_str().unwrap_or("?").to_owned();
                queries.push(Query {
                    what: format!("variable `{name}`"),
                    sql: variable_sql(variable).unwrap_or_default().to_owned(),
                });
            }
        }
        for panel in self.panels() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let source = match &target["datasource"] {
                    Value::Null => &panel["datasource"],
                    source => source,
                };
                if datasource_type(source) == Some(CLICKHOUSE_PLUGIN) {
                    queries.push(Query {
                        what: format!(
                            "panel {} \"{}\" query {}",
                            panel["id"],
                            panel["title"].as_str().unwrap_or(""),
                            target["refId"].as_str().unwrap_or("?")
                        ),
                        sql: target["rawSql"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        queries
    }
}

#[derive(Debug, Clone)]
struct Query {
    /// `panel 5 "Title" query A` or `variable `name``.
    what: String,
    sql: String,
}

fn datasource_type(source: &Value) -> Option<&str> {
    source["type"].as_str()
}

/// A query variable's SQL: the plugin stores `{rawSql, ...}` (older
/// dashboards: a plain string).
fn variable_sql(variable: &Value) -> Option<&str> {
    match &variable["query"] {
        Value::String(sql) => Some(sql),
        query => query["rawSql"].as_str(),
    }
}

fn dashboards() -> Vec<Dashboard> {
    let dir = repo_root().join(DASHBOARDS);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable dashboard");
            Dashboard {
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                json: serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display())),
            }
        })
        .collect()
}

/// (uid, type) of every provisioned datasource.
fn provisioned_datasources() -> BTreeSet<(String, String)> {
    let dir = repo_root().join(DATASOURCES);
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("datasources directory") {
        let path = entry.expect("entry").path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let file: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        for source in file["datasources"].as_sequence().into_iter().flatten() {
            if let (Some(uid), Some(kind)) = (source["uid"].as_str(), source["type"].as_str()) {
                found.insert((uid.to_owned(), kind.to_owned()));
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Structure.

/// Panel types the dashboards may use (Grafana's core panels).
const PANEL_TYPES: &[&str] = &[
    "row",
    "timeseries",
    "stat",
    "table",
    "bargauge",
    "barchart",
    "gauge",
    "piechart",
    "state-timeline",
    "text",
];

/// Everything wrong with one dashboard's structure.
fn structure_problems(
    dashboard: &Dashboard,
    datasources: &BTreeSet<(String, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let json = &dashboard.json;
    for key in ["uid", "title"] {
        if json[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no `{key}`"));
        }
    }
    if !json["id"].is_null() {
        problems.push("has an `id`: provisioned dashboards are found by uid".to_owned());
    }
    if json["schemaVersion"].as_u64().is_none() {
        problems.push("no numeric `schemaVersion`".to_owned());
    }
    if json["time"]["from"].as_str().is_none() || json["time"]["to"].as_str().is_none() {
        problems.push("no default `time` range".to_owned());
    }
    let known_source = |source: &Value, what: &str, problems: &mut Vec<String>| {
        let uid = source["uid"].as_str().unwrap_or("");
        let kind = source["type"].as_str().unwrap_or("");
        if !datasources.contains(&(uid.to_owned(), kind.to_owned())) {
            problems.push(format!(
                "{what}: datasource {source} is not a provisioned one (uid and type of {DATASOURCES})"
            ));
        }
    };

    // Panels: ids, types, positions, datasources, queries.
    let mut ids = BTreeSet::new();
    let mut placed: Vec<(String, [i64; 4])> = Vec::new();
    for panel in dashboard.panels() {
        let what = format!(
            "panel {} \"{}\"",
            panel["id"],
            panel["title"].as_str().unwrap_or("")
        );
        match panel["id"].as_i64() {
            Some(id) if id > 0 => {
                if !ids.insert(id) {
                    problems.push(format!("{what}: id {id} is used twice"));
                }
            }
            _ => problems.push(format!("{what}: no positive integer `id`")),
        }
        let kind = panel["type"].as_str().unwrap_or("");
        if !PANEL_TYPES.contains(&kind) {
            problems.push(format!(
                "{what}: type `{kind}` is not one of {PANEL_TYPES:?}"
            ));
        }
        if panel["title"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{what}: no title"));
        }
        let grid = &panel["gridPos"];
        let rect: Vec<Option<i64>> = ["x", "y", "w", "h"]
            .iter()
            .map(|k| grid[k].as_i64())
            .collect();
        match rect[..] {
            [Some(x), Some(y), Some(w), Some(h)]
                if x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= 24 =>
            {
                placed.push((what.clone(), [x, y, w, h]));
            }
            _ => problems.push(format!(
                "{what}: gridPos {grid} is not whole x, y, w, h within 24 columns"
            )),
        }
        if kind == "row" {
            if panel["collapsed"].as_bool() == Some(false)
                && panel["panels"].as_array().is_some_and(|p| !p.is_empty())
            {
                problems.push(format!("{what}: an open row keeps no panels of its own"));
            }
            continue;
        }
        known_source(&panel["datasource"], &what, &mut problems);
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() && kind != "text" {
            problems.push(format!("{what}: no queries"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in &targets {
            let ref_id = target["refId"].as_str().unwrap_or("");
            if ref_id.is_empty() || !ref_ids.insert(ref_id.to_owned()) {
                problems.push(format!("{what}: refId `{ref_id}` is missing or repeated"));
            }
            if !target["datasource"].is_null() {
                known_source(&target["datasource"], &what, &mut problems);
                if target["datasource"] != panel["datasource"] {
                    problems.push(format!(
                        "{what}: a query's datasource differs from the panel's"
                    ));
                }
            }
            if datasource_type(&panel["datasource"]) == Some(CLICKHOUSE_PLUGIN) {
                if target["editorType"].as_str() != Some("sql") {
                    problems.push(format!("{what}: not a raw SQL query (editorType sql)"));
                }
                if target["format"].as_u64().is_none_or(|f| f > 4) {
                    problems.push(format!(
                        "{what}: no plugin `format` (0 time series, 1 table)"
                    ));
                }
                if target["rawSql"]
                    .as_str()
                    .is_none_or(|s| s.trim().is_empty())
                {
                    problems.push(format!("{what}: no rawSql"));
                }
            }
        }
    }
    // Open rows' panels and top-level panels share the grid; none overlap.
    for (i, (a, [ax, ay, aw, ah])) in placed.iter().enumerate() {
        for (b, [bx, by, bw, bh]) in &placed[i + 1..] {
            if ax < &(bx + bw) && bx < &(ax + aw) && ay < &(by + bh) && by < &(ay + ah) {
                problems.push(format!("{a} and {b} overlap"));
            }
        }
    }

    // Variables: unique names, provisioned datasources, options that hold
    // the current value, and queries that only use earlier variables.
    let mut names: Vec<String> = Vec::new();
    for variable in dashboard.variables() {
        let name = variable["name"].as_str().unwrap_or("").to_owned();
        let what = format!("variable `{name}`");
        if name.is_empty() || names.contains(&name) {
            problems.push(format!("{what}: name missing or repeated"));
        }
        match variable["type"].as_str().unwrap_or("") {
            "custom" => {
                let options: Vec<&str> = variable["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["value"].as_str())
                    .collect();
                let current = current_values(variable);
                if options.is_empty() || current.is_empty() {
                    problems.push(format!("{what}: no options or no current value"));
                }
                for value in current {
                    if !options.contains(&value.as_str()) {
                        problems.push(format!("{what}: current value `{value}` is not an option"));
                    }
                }
            }
            "query" => {
                known_source(&variable["datasource"], &what, &mut problems);
                if variable_sql(variable).is_none_or(|s| s.trim().is_empty()) {
                    problems.push(format!("{what}: no query (rawSql)"));
                }
            }
            "textbox" | "constant" => {}
            other => problems.push(format!("{what}: type `{other}` is not checked here")),
        }
        if let Some(sql) = variable_sql(variable) {
            for used in referenced_variables(sql) {
                if !names.contains(&used) {
                    problems.push(format!(
                        "{what}: uses `{used}`, which is not a variable defined before it"
                    ));
                }
            }
        }
        names.push(name);
    }

    // ClickHouse SQL: only the views, and it renders.
    let context = placeholder_context(dashboard);
    for query in dashboard.queries() {
        for table in tables_read(&query.sql) {
            if !table.starts_with("v_") || table.contains('.') {
                problems.push(format!(
                    "{}: reads `{table}`; dashboards read only the v_* views of the datasource's database",
                    query.what
                ));
            }
        }
        if let Err(error) = render(&query.sql, &context) {
            problems.push(format!("{}: {error}", query.what));
        }
    }
    problems
}

/// A variable's current value(s).
fn current_values(variable: &Value) -> Vec<String> {
    match &variable["current"]["value"] {
        Value::String(v) => vec![v.clone()],
        Value::Array(vs) => vs
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Names of the variables `sql` uses (any syntax).
fn referenced_variables(sql: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let start = match (bytes[i], bytes.get(i + 1)) {
            ('$', Some('{')) => Some(i + 2),
            ('$', _) => Some(i + 1),
            ('[', Some('[')) => Some(i + 2),
            _ => None,
        };
        if let Some(start) = start {
            let name: String = bytes[start..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            if !name.is_empty() && !name.starts_with("__") {
                found.insert(name);
            }
        }
        i += 1;
    }
    found
}

/// Tables and views named after FROM or JOIN (string literals and comments
/// skipped; ARRAY JOIN is not a table).
fn tables_read(sql: &str) -> Vec<String> {
    let mut code = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                code.push_str(" '' ");
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                code.push('\n');
            }
            c => code.push(c),
        }
    }
    let words: Vec<&str> = code
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut tables = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let keyword = word.to_ascii_uppercase();
        let array_join = keyword == "JOIN" && i > 0 && words[i - 1].eq_ignore_ascii_case("ARRAY");
        if (keyword == "FROM" || keyword == "JOIN") && !array_join {
            if let Some(next) = words.get(i + 1) {
                if !next.starts_with('(') {
                    tables.push(next.trim_end_matches(')').to_owned());
                }
            }
        }
    }
    tables
}

/// Current values for rendering without a server: custom variables'
/// current, textboxes' current, query variables a placeholder.
fn placeholder_context(dashboard: &Dashboard) -> Context {
    let mut vars = BTreeMap::new();
    for variable in dashboard.variables() {
        let name = variable["name"].as_str().unwrap_or("").to_owned();
        let value = match variable["type"].as_str() {
            Some("custom") => custom_value(variable, &current_values(variable)),
            Some("query") => VarValue::Single("placeholder".to_owned()),
            _ => VarValue::Single(
                current_values(variable)
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
            ),
        };
        vars.insert(name, value);
    }
    Context {
        from_ms: 1_700_000_000_000,
        to_ms: 1_700_086_400_000,
        vars,
    }
}

/// A custom variable's value for the selected option values: `$__all` is
/// the `allValue`, else every option; a multi variable is always a list.
fn custom_value(variable: &Value, selected: &[String]) -> VarValue {
    let options: Vec<String> = variable["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["value"].as_str())
        .filter(|v| *v != "$__all")
        .map(str::to_owned)
        .collect();
    if selected.iter().any(|v| v == "$__all") {
        if let Some(all) = variable["allValue"].as_str().filter(|a| !a.is_empty()) {
            return VarValue::Single(all.to_owned());
        }
        return VarValue::Multi(options);
    }
    if variable["multi"].as_bool() == Some(true) {
        VarValue::Multi(selected.to_vec())
    } else {
        VarValue::Single(selected.first().cloned().unwrap_or_default())
    }
}

#[test]
fn dashboards_are_valid_grafana_json() {
    let datasources = provisioned_datasources();
    assert!(
        datasources.contains(&("clickhouse".to_owned(), CLICKHOUSE_PLUGIN.to_owned())),
        "{DATASOURCES} provisions no ClickHouse datasource with uid `clickhouse`: {datasources:?}"
    );
    let all = dashboards();
    let readme =
        std::fs::read_to_string(repo_root().join(DASHBOARDS).join("README.md")).expect("README");
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for dashboard in &all {
        if !uids.insert(dashboard.uid().to_owned()) {
            problems.push(format!(
                "{}: uid `{}` is used twice",
                dashboard.file,
                dashboard.uid()
            ));
        }
        if !readme.contains(&dashboard.file) {
            problems.push(format!(
                "{}: not described in {DASHBOARDS}/README.md",
                dashboard.file
            ));
        }
        for problem in structure_problems(dashboard, &datasources) {
            problems.push(format!(
                "{} ({}): {problem}",
                dashboard.title(),
                dashboard.file
            ));
        }
    }
    assert!(
        all.iter().any(|d| d.uid() == TIMELINE_UID),
        "the customer timeline ({TIMELINE_UID}) is missing"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn structure_check_reports_broken_dashboards() {
    let datasources = provisioned_datasources();
    let mut broken = dashboards()
        .into_iter()
        .find(|d| d.uid() == TIMELINE_UID)
        .expect("the customer timeline");
    let panels = broken.json["panels"].as_array_mut().expect("panels");
    let last = panels.len() - 1;
    panels[last]["id"] = panels[0]["id"].clone();
    panels[last]["gridPos"]["x"] = Value::from(20);
    panels[last]["datasource"]["uid"] = Value::from("elsewhere");
    panels[last]["targets"][0]["rawSql"] = Value::from("SELECT * FROM contacts WHERE ${nowhere}");
    let problems = structure_problems(&broken, &datasources).join("\n");
    for expected in [
        "is used twice",
        "within 24 columns",
        "not a provisioned one",
        "reads `contacts`",
        "no template variable `nowhere`",
    ] {
        assert!(
            problems.contains(expected),
            "`{expected}` not in:\n{problems}"
        );
    }
}

// ---------------------------------------------------------------------------
// Running the queries on ClickHouse.

/// A result: column names and rows (JSONCompact cells).
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// What ClickHouse returns for `sql` in `database` (read-only), or its
/// error.
async fn run_table(env: &TestEnv, database: &str, sql: &str) -> Result<Table, String> {
    let response = reqwest::Client::new()
        .post(&env.stack.clickhouse_url)
        .query(&[("database", database), ("readonly", "1")])
        .body(format!("{sql}\nFORMAT JSONCompact"))
        .send()
        .await
        .map_err(|e| {
            format!(
                "ClickHouse at {} unreachable: {e}",
                env.stack.clickhouse_url
            )
        })?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(text.trim().to_owned());
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok(Table {
        columns: body["meta"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect(),
        rows: body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| row.as_array().cloned().unwrap_or_default())
            .collect(),
    })
}

/// The rows ClickHouse returns for `sql` in `database`, or its error.
async fn run_sql(env: &TestEnv, database: &str, sql: &str) -> Result<Vec<Vec<Value>>, String> {
    run_table(env, database, sql).await.map(|t| t.rows)
}

/// Whether rows show anything: an aggregate over nothing is one row of 0s
/// and NULLs, which Grafana shows as a plain 0 or "No data".
fn has_data(rows: &[Vec<Value>]) -> bool {
    rows.iter().flatten().any(|cell| match cell {
        Value::Null => false,
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    })
}

fn cell_text(cell: &Value) -> String {
    match cell {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One dashboard refresh: resolves the variables in order (a query variable
/// takes the first value its query returns, as Grafana selects the first
/// option), with `inputs` for textbox and custom variables.
async fn resolve(
    env: &TestEnv,
    database: &str,
    dashboard: &Dashboard,
    range: (i64, i64),
    inputs: &BTreeMap<String, Vec<String>>,
) -> Result<Context, String> {
    let mut context = Context {
        from_ms: range.0,
        to_ms: range.1,
        vars: BTreeMap::new(),
    };
    for variable in dashboard.variables() {
        let name = variable["name"].as_str().unwrap_or("").to_owned();
        let chosen = inputs.get(&name).cloned();
        let value =
            match variable["type"].as_str() {
                Some("custom") => custom_value(
                    variable,
                    &chosen.unwrap_or_else(|| current_values(variable)),
                ),
                Some("query") => {
                    let sql = render(variable_sql(variable).unwrap_or_default(), &context)
                        .map_err(|e| format!("variable `{name}`: {e}"))?;
                    let rows = run_sql(env, database, &sql)
                        .await
                        .map_err(|e| format!("variable `{name}`: {e}\n{sql}"))?;
                    VarValue::Single(
                        rows.first()
                            .and_then(|r| r.first())
                            .map(cell_text)
                            .unwrap_or_default(),
                    )
                }
                _ => VarValue::Single(chosen.and_then(|c| c.into_iter().next()).unwrap_or_else(
                    || {
                        current_values(variable)
                            .into_iter()
                            .next()
                            .unwrap_or_default()
                    },
                )),
            };
        context.vars.insert(name, value);
    }
    Ok(context)
}

/// Runs every ClickHouse query of `dashboard` with the values of `inputs`;
/// returns one line per query that fails or (when `need_data`) shows
/// nothing, naming the dashboard and the panel.
async fn check_queries(
    env: &TestEnv,
    database: &str,
    dashboard: &Dashboard,
    range: (i64, i64),
    inputs: &BTreeMap<String, Vec<String>>,
    need_data: bool,
) -> Vec<String> {
    let label = format!("dashboard \"{}\" ({})", dashboard.title(), dashboard.file);
    let shown_inputs = if inputs.is_empty() {
        String::new()
    } else {
        format!(" with {inputs:?}")
    };
    let context = match resolve(env, database, dashboard, range, inputs).await {
        Ok(context) => context,
        Err(error) => return vec![format!("{label}{shown_inputs}: {error}")],
    };
    let mut failures = Vec::new();
    for query in dashboard.queries() {
        let sql = match render(&query.sql, &context) {
            Ok(sql) => sql,
            Err(error) => {
                failures.push(format!("{label}, {}{shown_inputs}: {error}", query.what));
                continue;
            }
        };
        match run_sql(env, database, &sql).await {
            Err(error) => failures.push(format!(
                "{label}, {}{shown_inputs}: ClickHouse says {error}\n--- rendered SQL:\n{sql}",
                query.what
            )),
            Ok(rows) if need_data && !has_data(&rows) => failures.push(format!(
                "{label}, {}{shown_inputs}: no rows for the demo data ({} rows of 0, NULL or empty)\n--- rendered SQL:\n{sql}",
                query.what,
                rows.len()
            )),
            Ok(rows) => eprintln!("ok {label}, {}{shown_inputs}: {} rows", query.what, rows.len()),
        }
    }
    failures
}

/// The daily views the aggregate panels read, and their key columns.
const DAILY_VIEWS: &[(&str, &[&str])] = &[
    ("v_channel_daily", &["day", "channel"]),
    ("v_consistency_daily", &["day"]),
];

/// One row of a daily view: its columns by name (NULL absent).
type Day = BTreeMap<String, f64>;

/// A daily view's columns, and its rows as (day, channel or "", values).
type ViewDays = (BTreeSet<String>, Vec<(String, String, Day)>);

/// A panel column's values by key (period, and channel when it has one).
type Series = BTreeMap<Vec<String>, Option<f64>>;

/// How a period's value of a column is made from its days (the rule of
/// `SPEC.md` §6 for a period): a sum, or the summed numerator over the summed
/// denominator (`None` when that is 0). A mean's numerator is its mean times
/// its responses; handle time is its sum over the handled calls.
fn rollup(column: &str, days: &[&Day]) -> Option<Option<f64>> {
    let get = |d: &Day, c: &str| d.get(c).copied().unwrap_or(0.0);
    let sum = |f: &dyn Fn(&Day) -> f64| days.iter().map(|d| f(d)).sum::<f64>();
    let ratio = |num: &dyn Fn(&Day) -> f64, den: &dyn Fn(&Day) -> f64| {
        let den = sum(den);
        Some((den != 0.0).then(|| sum(num) / den))
    };
    let mean = |mean: &'static str, responses: &'static str| {
        let weight = move |d: &Day| {
            if d.contains_key(mean) {
                get(d, responses)
            } else {
                0.0
            }
        };
        ratio(&|d| get(d, mean) * weight(d), &weight)
    };
    match column {
        "contacts" | "journeys" | "multichannel_journeys" => Some(Some(sum(&|d| get(d, column)))),
        "resolution_rate" => ratio(&|d| get(d, "resolved_contacts"), &|d| get(d, "contacts")),
        "abandon_rate" => ratio(&|d| get(d, "abandoned_calls"), &|d| get(d, "calls")),
        "containment_rate" => ratio(&|d| get(d, "conversations") - get(d, "handed_off"), &|d| {
            get(d, "conversations")
        }),
        "csat_pct" => ratio(&|d| 100.0 * get(d, "csat_top2"), &|d| {
            get(d, "csat_responses")
        }),
        "nps" => ratio(
            &|d| 100.0 * (get(d, "nps_promoters") - get(d, "nps_detractors")),
            &|d| get(d, "nps_responses"),
        ),
        "frt_mean_s" => mean("frt_mean_s", "frt_responses"),
        "ces_mean" => mean("ces_mean", "ces_responses"),
        "sentiment_mean" => mean("sentiment_mean", "sentiment_responses"),
        "handle_mean_s" => ratio(&|d| get(d, "handle_sum_s"), &|d| get(d, "handled_calls")),
        "multichannel_rate" => ratio(&|d| get(d, "multichannel_journeys"), &|d| {
            get(d, "journeys")
        }),
        "ocr_rate" => ratio(&|d| get(d, "ocr_journeys"), &|d| get(d, "journeys")),
        "repeat_rate" => ratio(&|d| get(d, "repeat_journeys"), &|d| get(d, "journeys")),
        _ => None,
    }
}

/// A period's gap: per channel over the period's sums, highest minus lowest
/// among channels with at least 10 of `count`; `None` under two channels.
fn gap(channel_days: &BTreeMap<String, Vec<&Day>>, value: &str, count: &str) -> Option<f64> {
    let qualifying: Vec<f64> = channel_days
        .values()
        .filter(|days| {
            days.iter()
                .map(|d| d.get(count).copied().unwrap_or(0.0))
                .sum::<f64>()
                >= 10.0
        })
        .filter_map(|days| rollup(value, days).flatten())
        .collect();
    let max = qualifying.iter().copied().fold(f64::MIN, f64::max);
    let min = qualifying.iter().copied().fold(f64::MAX, f64::min);
    (qualifying.len() >= 2).then_some(max - min)
}

/// The first day of `day`'s period.
fn period_of(day: &str, granularity: &str) -> String {
    let Ok(date) = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
        return day.to_owned();
    };
    let start = match granularity {
        "week" => {
            date - chrono::Days::new(u64::from(
                chrono::Datelike::weekday(&date).num_days_from_monday(),
            ))
        }
        "month" => chrono::Datelike::with_day(&date, 1).unwrap_or(date),
        _ => date,
    };
    start.format("%Y-%m-%d").to_string()
}

/// Every time series that rolls a daily view up shows, at every
/// granularity its dashboard offers, what the period's days give by the
/// rules of [`rollup`] and [`gap`] (rates from summed counts, never an
/// average of daily rates); by day, also the view's own value for each
/// column it has. Keyed by period, and channel when the panel has one.
async fn check_rollups(
    env: &TestEnv,
    database: &str,
    dashboard: &Dashboard,
    range: (i64, i64),
) -> Vec<String> {
    let label = format!("dashboard \"{}\" ({})", dashboard.title(), dashboard.file);
    // The selector offering `day` is the granularity.
    let granularity = dashboard.variables().into_iter().find(|v| {
        v["options"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["value"] == "day")
    });
    let (name, choices): (String, Vec<String>) = match granularity {
        Some(v) => (
            v["name"].as_str().unwrap_or("").to_owned(),
            v["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["value"].as_str().map(str::to_owned))
                .collect(),
        ),
        None => (String::new(), vec!["day".to_owned()]),
    };
    let number = |cell: &Value| match cell {
        Value::String(s) => s.parse::<f64>().ok(),
        other => other.as_f64(),
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for choice in &choices {
        let inputs = BTreeMap::from([(name.clone(), vec![choice.clone()])]);
        let context = match resolve(env, database, dashboard, range, &inputs).await {
            Ok(context) => context,
            Err(error) => return vec![format!("{label}: {error}")],
        };
        // The views' days in the range, as the panels filter them.
        let mut views: BTreeMap<&str, ViewDays> = BTreeMap::new();
        for (view, _) in DAILY_VIEWS {
            let sql = render(
                &format!("SELECT * FROM {view} WHERE $__dateFilter(day)"),
                &context,
            );
            let table = match sql {
                Ok(sql) => run_table(env, database, &sql).await,
                Err(error) => Err(error),
            };
            let Ok(table) = table else {
                failures.push(format!("{label}: cannot read {view}"));
                continue;
            };
            let mut days = Vec::new();
            for row in &table.rows {
                let mut values = Day::new();
                let (mut day, mut channel) = (String::new(), String::new());
                for (column, cell) in table.columns.iter().zip(row) {
                    match column.as_str() {
                        "day" => day = cell_text(cell),
                        "channel" => channel = cell_text(cell),
                        _ => {
                            if let Some(n) = number(cell) {
                                values.insert(column.clone(), n);
                            }
                        }
                    }
                }
                days.push((day, channel, values));
            }
            views.insert(view, (table.columns.iter().cloned().collect(), days));
        }
        for query in dashboard.queries() {
            let Ok(sql) = render(&query.sql, &context) else {
                continue;
            };
            let Some((view, _)) = DAILY_VIEWS.iter().find(|(view, _)| sql.contains(view)) else {
                continue;
            };
            let Ok(panel) = run_table(env, database, &sql).await else {
                continue; // check_queries reports it
            };
            if panel.columns.first().map(String::as_str) != Some("time") {
                continue;
            }
            let by_channel = panel.columns.get(1).map(String::as_str) == Some("channel");
            let skip = if by_channel { 2 } else { 1 };
            let key = |row: &[Value]| row[..skip].iter().map(cell_text).collect::<Vec<_>>();
            let channels: BTreeSet<String> = panel
                .rows
                .iter()
                .filter_map(|r| r.get(1))
                .map(cell_text)
                .collect();
            // The days of each period (and channel), from the view the panel reads.
            let mut periods: BTreeMap<Vec<String>, BTreeMap<String, Vec<&Day>>> = BTreeMap::new();
            for (day, channel, values) in &views[view].1 {
                if by_channel && !channels.contains(channel) {
                    continue;
                }
                let mut k = vec![period_of(day, choice)];
                if by_channel {
                    k.push(channel.clone());
                }
                periods
                    .entry(k)
                    .or_default()
                    .entry(channel.clone())
                    .or_default()
                    .push(values);
            }
            for (i, column) in panel.columns.iter().enumerate().skip(skip) {
                let shown: Series = panel.rows.iter().map(|r| (key(r), number(&r[i]))).collect();
                let mut expected: Vec<(&str, Series)> = Vec::new();
                let from_days: Option<Series> = match column.as_str() {
                    "csat_gap_pp" | "resolution_gap_pp" => Some(
                        periods
                            .iter()
                            .map(|(k, by)| {
                                let value = if column == "csat_gap_pp" {
                                    gap(by, "csat_pct", "csat_responses")
                                } else {
                                    gap(by, "resolution_rate", "contacts").map(|g| g * 100.0)
                                };
                                (k.clone(), value)
                            })
                            .collect(),
                    ),
                    _ => periods
                        .iter()
                        .map(|(k, by)| {
                            let days: Vec<&Day> = by.values().flatten().copied().collect();
                            rollup(column, &days).map(|v| (k.clone(), v))
                        })
                        .collect(),
                };
                if let Some(from_days) = from_days {
                    expected.push(("its days' counts", from_days));
                }
                // By day, the view's own column too.
                if choice == "day" {
                    let own = DAILY_VIEWS.iter().find(|(v, keys)| {
                        views.get(v).is_some_and(|(cols, _)| cols.contains(column))
                            && (keys.len() == 2) == by_channel
                    });
                    if let Some((v, _)) = own {
                        let rows: Series = views[v]
                            .1
                            .iter()
                            .filter(|(_, channel, _)| !by_channel || channels.contains(channel))
                            .map(|(day, channel, values)| {
                                let mut k = vec![day.clone()];
                                if by_channel {
                                    k.push(channel.clone());
                                }
                                (k, values.get(column).copied())
                            })
                            .collect();
                        expected.push((v, rows));
                    }
                }
                for (source, want) in expected {
                    let mut keys: BTreeSet<&Vec<String>> = shown.keys().collect();
                    keys.extend(want.keys());
                    for k in keys {
                        let got = shown.get(k).copied().flatten();
                        let wanted = want.get(k).copied().flatten();
                        let same = match (got, wanted) {
                            (Some(g), Some(w)) => (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                            (None, None) => true,
                            _ => false,
                        };
                        compared += 1;
                        if !same {
                            failures.push(format!(
                                "{label}, {} by {choice}: {column} at {k:?} is {got:?}, but {source} give {wanted:?}",
                                query.what
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!("{label}: {compared} roll-up values compared");
    if compared == 0 {
        failures.push(format!("{label}: no roll-up was compared"));
    }
    failures
}

/// What an analyst types into the customer timeline, from the demo data:
/// per identifier kind, a messy written form of an identifier of a customer
/// with many events, and its normal form.
fn timeline_inputs(truth: &GroundTruth) -> Vec<(String, String, String)> {
    let mut events_of: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &truth.events {
        *events_of.entry(event.customer.as_str()).or_default() += 1;
    }
    let mut inputs = Vec::new();
    for kind in [
        TruthKind::Email,
        TruthKind::Phone,
        TruthKind::Social,
        TruthKind::Account,
    ] {
        // (events of the customer, messy, written, normal), best last.
        let mut best: Option<(usize, bool, String, String)> = None;
        for event in &truth.events {
            for used in event.identifiers.iter().filter(|u| u.kind == kind) {
                let Some(normal) = &used.normal else { continue };
                let written = match kind {
                    // The platform as an analyst might type it, then the handle.
                    TruthKind::Social => {
                        let platform = normal.split(':').nth(1).unwrap_or("");
                        format!("{}:{}", capitalised(platform), used.raw)
                    }
                    _ => used.raw.clone(),
                };
                let messy = !normal.ends_with(written.as_str());
                let candidate = (
                    events_of[event.customer.as_str()],
                    messy,
                    written,
                    normal.clone(),
                );
                if best
                    .as_ref()
                    .is_none_or(|b| (candidate.0, candidate.1) > (b.0, b.1))
                {
                    best = Some(candidate);
                }
            }
        }
        let (_, _, written, normal) =
            best.unwrap_or_else(|| panic!("the demo data has no {kind:?} identifier"));
        let kind = normal.split(':').next().unwrap_or("").to_owned();
        inputs.push((kind, written, normal));
    }
    inputs
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The customer the timeline's lookup finds for `kind` and `written`.
async fn looked_up(
    env: &TestEnv,
    database: &str,
    timeline: &Dashboard,
    kind: &str,
    written: &str,
) -> Result<Vec<String>, String> {
    let variable = timeline
        .variables()
        .into_iter()
        .find(|v| v["name"] == "customer")
        .ok_or("the timeline has no `customer` variable")?;
    let context = Context {
        from_ms: 0,
        to_ms: 0,
        vars: BTreeMap::from([
            ("kind".to_owned(), VarValue::Single(kind.to_owned())),
            ("value".to_owned(), VarValue::Single(written.to_owned())),
        ]),
    };
    let sql = render(variable_sql(variable).unwrap_or_default(), &context)?;
    let rows = run_sql(env, database, &sql).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.first())
        .map(cell_text)
        .collect())
}

/// The customer lookup normalises as the pipeline does, on the hard forms
/// of `touchline_model::identity::identifier`'s table: a `v_identities` of
/// their normal forms (by `Identifier::new`) in a scratch database, and the
/// lookup must find exactly the customer of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_lookup_normalises_like_the_pipeline() {
    let env = TestEnv::new("dash_lookup");
    let timeline = dashboards()
        .into_iter()
        .find(|d| d.uid() == TIMELINE_UID)
        .expect("the customer timeline");
    let written: &[(&str, &str)] = &[
        ("email", " Kim@Example.COM "),
        ("email", "ÄLVA.Berg@Example.SE"),
        ("email", "o'brien@example.ie"),
        ("email", "no-at-sign.example.com"),
        ("phone", "010-1234-5678"),
        ("phone", "010 2345 6789"),
        ("phone", "010.3456.7890"),
        ("phone", "+82 10 4567 8901"),
        ("phone", "+82-10-5678-9012"),
        ("phone", "+82 (0)10 6789 0123"),
        ("phone", "821078901234"),
        ("phone", "02-312-3456"),
        ("phone", "(02) 412-3456"),
        ("phone", "+1 650 253 0000"),
        ("phone", "+81 90 1234 5678"),
        ("phone", "+82 10 8901 2345 ext. 12"),
        ("phone", "anonymous"),
        ("phone", "010-1234"),
        ("social", "instagram:@Kim_J"),
        ("social", " KAKAO : @@Min_Ji "),
        ("social", "X:lee.s"),
        ("account", " AC1234 "),
        ("account", "Ac 77"),
    ];
    env.execute("CREATE DATABASE {db}").await;
    env.execute(
        "CREATE TABLE {db}.v_identities (identifier String, customer_id String, anchor String) ENGINE = Memory",
    )
    .await;
    let mut expected = Vec::new();
    for (i, (kind, raw)) in written.iter().enumerate() {
        let kind_of = IdKind::ALL
            .into_iter()
            .find(|k| k.as_str() == *kind)
            .expect("a kind");
        let normal = Identifier::new(kind_of, raw).ok().map(|id| id.as_string());
        if let Some(normal) = &normal {
            env.execute(&format!(
                "INSERT INTO {{db}}.v_identities VALUES ('{}', 'c{i}', '{}')",
                normal.replace('\'', "\\'"),
                normal.replace('\'', "\\'")
            ))
            .await;
        }
        expected.push(normal.map(|_| format!("c{i}")));
    }
    let mut wrong = Vec::new();
    for ((kind, raw), want) in written.iter().zip(&expected) {
        let got = looked_up(&env, &env.database, &timeline, kind, raw).await;
        let want: Vec<String> = want.iter().cloned().collect();
        if got.as_ref() != Ok(&want) {
            wrong.push(format!("{kind} {raw:?}: found {got:?}, want {want:?}"));
        }
    }
    // A handle alone is tried on every platform.
    let got = looked_up(&env, &env.database, &timeline, "social", "@KIM_J").await;
    if got.as_ref().map(|g| g.len()) != Ok(1) {
        wrong.push(format!("social \"@KIM_J\" on any platform: found {got:?}"));
    }
    // Pseudonymised, the stored form `touchline pseudonym` prints is found
    // as it is.
    let keyed = Pseudonymiser::keyed(&[7; 32]).expect("a long enough key");
    let stored = keyed
        .stored_typed("phone:010-9999-0000")
        .expect("an identifier");
    env.execute(&format!(
        "INSERT INTO {{db}}.v_identities VALUES ('{stored}', 'hashed', '{stored}')"
    ))
    .await;
    let got = looked_up(
        &env,
        &env.database,
        &timeline,
        "phone",
        &format!(" {stored} "),
    )
    .await;
    if got != Ok(vec!["hashed".to_owned()]) {
        wrong.push(format!("stored form {stored}: found {got:?}"));
    }
    env.drop_database().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every panel of every ClickHouse dashboard returns data for demo data the
/// real pipeline wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_returns_rows_for_demo_data() {
    let all: Vec<Dashboard> = dashboards()
        .into_iter()
        .filter(Dashboard::uses_clickhouse)
        .collect();
    assert!(all.len() >= 2, "the ClickHouse dashboards are missing");

    let env = TestEnv::new("dashboards");
    env.create_topics(4).await;
    let days = 21;
    let mut scenario = Scenario::new(4242, 300, Scenario::start_ending_at(now_ms(), days), days);
    scenario.duplicate_rate = 0.05;
    scenario.bad_rate = 0.01;
    let generated = generate(&scenario).expect("a valid scenario");
    let truth = &generated.truth;
    env.produce(&generated).await;
    env.run_touchline("migrate", &[]);
    env.run_touchline("run", &["--until-caught-up"]);
    // A time range covering the demo data, as the time picker sends it.
    let range = (scenario.start_ms - DAY_MS, scenario.end_ms() + DAY_MS);
    let database = env.database.clone();

    let mut failures = Vec::new();
    for dashboard in &all {
        if dashboard.uid() == TIMELINE_UID {
            // The timeline, for each kind of identifier an analyst may type.
            for (kind, written, normal) in timeline_inputs(truth) {
                let want = run_sql(
                    &env,
                    &database,
                    &format!("SELECT customer_id FROM v_identities WHERE identifier = '{normal}'"),
                )
                .await
                .unwrap_or_default();
                let want: Vec<String> = want
                    .iter()
                    .filter_map(|r| r.first())
                    .map(cell_text)
                    .collect();
                let got = looked_up(&env, &database, dashboard, &kind, &written).await;
                if got.as_ref().map(|g| g.first()) != Ok(want.first()) || want.is_empty() {
                    failures.push(format!(
                        "customer timeline: {kind} {written:?} ({normal}) finds {got:?}, want {want:?}"
                    ));
                }
                let inputs = BTreeMap::from([
                    ("kind".to_owned(), vec![kind.clone()]),
                    ("value".to_owned(), vec![written.clone()]),
                ]);
                failures
                    .extend(check_queries(&env, &database, dashboard, range, &inputs, true).await);
            }
            continue;
        }
        let textboxes: Vec<&str> = dashboard
            .variables()
            .into_iter()
            .filter(|v| v["type"] == "textbox")
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            textboxes.is_empty(),
            "{}: give this test demo values for its text boxes {textboxes:?}",
            dashboard.file
        );
        // With the dashboard's own selections, every query shows data.
        failures
            .extend(check_queries(&env, &database, dashboard, range, &BTreeMap::new(), true).await);
        // Weeks and months roll up from counts; days agree with the views.
        failures.extend(check_rollups(&env, &database, dashboard, range).await);
        // Every other option of every custom variable at least runs.
        for variable in dashboard
            .variables()
            .into_iter()
            .filter(|v| v["type"] == "custom")
        {
            let name = variable["name"].as_str().unwrap_or("").to_owned();
            let current = current_values(variable);
            for option in variable["options"].as_array().into_iter().flatten() {
                let value = option["value"].as_str().unwrap_or("").to_owned();
                if current.contains(&value) {
                    continue;
                }
                let inputs = BTreeMap::from([(name.clone(), vec![value])]);
                failures
                    .extend(check_queries(&env, &database, dashboard, range, &inputs, false).await);
            }
        }
    }

    // The lookup finds the customer of identifiers as the demo writes them:
    // every written form of the hard cases and a sample of the rest.
    let timeline = all
        .iter()
        .find(|d| d.uid() == TIMELINE_UID)
        .expect("timeline");
    for (kind, written, normal) in written_forms(truth) {
        let want = run_sql(
            &env,
            &database,
            &format!(
                "SELECT customer_id FROM v_identities WHERE identifier = '{}'",
                normal.as_deref().unwrap_or("")
            ),
        )
        .await
        .unwrap_or_default();
        let want: Vec<String> = want
            .iter()
            .filter_map(|r| r.first())
            .map(cell_text)
            .collect();
        let got = looked_up(&env, &database, timeline, &kind, &written).await;
        if got.as_ref() != Ok(&want) {
            failures.push(format!(
                "customer timeline: {kind} {written:?} ({normal:?}) finds {got:?}, want {want:?}"
            ));
        }
    }

    // A broken panel is reported by dashboard and panel: a misspelt view
    // (an error) and a filter that keeps nothing (no rows).
    let mut broken = all
        .iter()
        .find(|d| d.uid() != TIMELINE_UID)
        .expect("an aggregate dashboard")
        .clone();
    let (error_panel, empty_panel) = break_two_panels(&mut broken);
    let reported = check_queries(&env, &database, &broken, range, &BTreeMap::new(), true).await;
    for (panel, why) in [(&error_panel, "ClickHouse says"), (&empty_panel, "no rows")] {
        assert!(
            reported.iter().any(|r| r.contains(broken.title())
                && r.contains(panel.as_str())
                && r.contains(why)),
            "a broken {panel} is not reported ({why}): {reported:#?}"
        );
    }
    assert_eq!(
        reported.len(),
        2,
        "only the broken panels fail: {reported:#?}"
    );

    if failures.is_empty() {
        env.drop_database().await;
    }
    assert!(
        failures.is_empty(),
        "{} dashboard queries failed (database {database} kept):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Breaks the first two SQL panels of `dashboard`: a misspelt view and a
/// filter that keeps nothing. Returns their `panel <id> "<title>"`.
fn break_two_panels(dashboard: &mut Dashboard) -> (String, String) {
    let mut named = Vec::new();
    let panels = dashboard.json["panels"].as_array_mut().expect("panels");
    for panel in panels.iter_mut().filter(|p| p["type"] != "row") {
        let sql = panel["targets"][0]["rawSql"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let broken = match named.len() {
            0 => sql.replacen("FROM v_", "FROM v_misspelt_", 1),
            1 => sql.replacen("WHERE ", "WHERE 0 AND ", 1),
            _ => break,
        };
        if broken == sql {
            continue;
        }
        panel["targets"][0]["rawSql"] = Value::from(broken);
        named.push(format!(
            "panel {} \"{}\"",
            panel["id"],
            panel["title"].as_str().unwrap_or("")
        ));
    }
    assert_eq!(named.len(), 2, "two panels to break");
    (named[0].clone(), named[1].clone())
}

/// Written forms of the demo's identifiers, with their normal form (None
/// when the pipeline drops them): every form of the hard cases, and of the
/// rest every 7th distinct one per kind.
fn written_forms(truth: &GroundTruth) -> Vec<(String, String, Option<String>)> {
    let mut forms = BTreeSet::new();
    for case in truth
        .hard_cases
        .email_variants
        .iter()
        .chain(&truth.hard_cases.phone_formats)
    {
        let kind = case.normal.split(':').next().unwrap_or("").to_owned();
        for raw in &case.raw {
            forms.insert((kind.clone(), raw.clone(), Some(case.normal.clone())));
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut distinct = BTreeSet::new();
    for event in &truth.events {
        for used in &event.identifiers {
            let kind = match used.kind {
                TruthKind::Email => "email",
                TruthKind::Phone => "phone",
                TruthKind::Account => "account",
                TruthKind::Social => "social",
                _ => continue,
            };
            let written = match (used.kind, &used.normal) {
                (TruthKind::Social, Some(normal)) => {
                    format!("{}:{}", normal.split(':').nth(1).unwrap_or(""), used.raw)
                }
                (TruthKind::Social, None) => continue,
                _ => used.raw.clone(),
            };
            if distinct.insert((kind, written.clone())) {
                let n = seen.entry(kind.to_owned()).or_default();
                if *n % 7 == 0 {
                    forms.insert((kind.to_owned(), written, used.normal.clone()));
                }
                *n += 1;
            }
        }
    }
    forms.into_iter().collect()
}

// ---------------------------------------------------------------------------
// A current ClickHouse (the compose stack runs 25.8), in process via chDB.

/// A Python with chDB: `TOUCHLINE_CHDB_PYTHON`, else the virtual environment
/// `scripts/test` installs it into (`$TOUCHLINE_CACHE_DIR/venv`).
fn chdb_python() -> PathBuf {
    if let Some(python) = std::env::var_os("TOUCHLINE_CHDB_PYTHON") {
        return PathBuf::from(python);
    }
    let cache = std::env::var_os("TOUCHLINE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("touchline")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/touchline")))
        .unwrap_or_default();
    cache.join("venv/bin/python")
}

/// Applies every migration (split as `tests/current_clickhouse.py` splits
/// them) to an empty database in chDB, then runs each `{what, sql}` of the
/// JSON file argv[1]; prints one JSON line per failure.
const CHDB_SCRIPT: &str = r#"
import json, sys, pathlib
root = pathlib.Path(sys.argv[2])
sys.path.insert(0, str(root / "tests"))
from current_clickhouse import statements
from chdb import session
db = session.Session()
db.query("CREATE DATABASE IF NOT EXISTS dash_check")
for path in sorted((root / "schemas" / "clickhouse").glob("*.sql")):
    for sql in statements(path.read_text()):
        db.query(sql.replace("{database}", "dash_check"))
db.query("USE dash_check")
for query in json.load(open(sys.argv[1])):
    try:
        db.query(query["sql"], "JSONCompact")
    except Exception as error:
        print(json.dumps({"what": query["what"], "error": str(error)[:800]}))
print("done")
"#;

/// Every ClickHouse query of every dashboard runs on a current release too
/// (over empty views: the point is that the release accepts the SQL).
#[test]
fn every_query_runs_on_current_clickhouse() {
    let python = chdb_python();
    assert!(
        python.exists(),
        "{} does not exist: set TOUCHLINE_CHDB_PYTHON to a Python with chdb \
         (`pip install chdb-core`), or run scripts/test once",
        python.display()
    );
    let mut queries = Vec::new();
    for dashboard in dashboards().iter().filter(|d| d.uses_clickhouse()) {
        let mut context = placeholder_context(dashboard);
        if let Some(value) = context.vars.get_mut("value") {
            *value = VarValue::Single(" Kim@Example.com ".to_owned());
        }
        for query in dashboard.queries() {
            let sql =
                render(&query.sql, &context).unwrap_or_else(|e| panic!("{}: {e}", query.what));
            queries.push(serde_json::json!({
                "what": format!("dashboard \"{}\" ({}), {}", dashboard.title(), dashboard.file, query.what),
                "sql": sql,
            }));
        }
    }
    let file =
        std::env::temp_dir().join(format!("touchline-dashboards-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string(&queries).expect("JSON")).expect("temp file");
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(CHDB_SCRIPT)
        .arg(&file)
        .arg(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", python.display()));
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("done"),
        "chDB check did not finish ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let failures: Vec<String> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            let failure: Value = serde_json::from_str(line).expect("a JSON line");
            format!(
                "{}: {}",
                failure["what"].as_str().unwrap_or(""),
                failure["error"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        !queries.is_empty() && failures.is_empty(),
        "{} of {} queries fail on a current ClickHouse:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
}
