//! `ward audit list`: the tenant's audit trail as the service gives it, a page at a time
//! (`GET /v1/audit?after=SEQ&limit=N`), or every page with `--all`.

use super::{field, items, print_json, utc, Client, Connection, Format};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only records after this record number (the `next` of the previous page).
    #[arg(long, value_name = "SEQ")]
    after: Option<i64>,
    /// Records per page, 1-1000 (the service's default is 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Follow the pages to the end of the trail as it was when the listing began (each
    /// page asked for adds a record of its own).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    format: Format,
}

fn record_line(r: &Value) {
    out!(
        "{:>8}  {}  {:<12} {:<22} {}  {}",
        r["seq"].to_string(),
        utc(&r["time"]),
        field(r, "principal"),
        field(r, "action"),
        field(r, "object"),
        crate::cli::printable(field(r, "detail"))
    );
}

pub fn list(c: &Connection, args: ListArgs) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    let mut after = args.after;
    let mut all = Vec::new();
    // The end of the trail at the first page; the pages' own records come after it.
    let mut end: Option<i64> = None;
    loop {
        let mut query = Vec::new();
        if let Some(a) = after {
            query.push(format!("after={a}"));
        }
        if let Some(l) = args.limit {
            query.push(format!("limit={l}"));
        }
        let path = match query.is_empty() {
            true => "/v1/audit".to_string(),
            false => format!("/v1/audit?{}", query.join("&")),
        };
        let page = client.json("GET", &path, None)?;
        let next = page["next"].as_i64();
        if !args.all {
            match args.format.json {
                true => print_json(&page),
                false => {
                    items(&page).for_each(record_line);
                    if let Some(n) = next {
                        // Beside the data, not in it.
                        eprintln!("more: ward audit list --after {n}");
                    }
                }
            }
            return Ok(0);
        }
        match args.format.json {
            true => all.extend(items(&page).cloned()),
            false => items(&page).for_each(record_line),
        }
        let end = *end.get_or_insert(page["last"].as_i64().unwrap_or(0));
        match next {
            Some(n) if n < end => after = Some(n),
            _ => break,
        }
    }
    if args.format.json {
        print_json(&json!({"items": all, "next": null}));
    }
    Ok(0)
}
