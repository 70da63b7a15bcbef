//! `ward component list`: the registry components the tenant's stored pipelines pin, who
//! signed each, and when jobs used it (`GET /v1/components`).

use super::{field, items, show, utc, Client, Connection, Format};

#[derive(clap::Subcommand)]
pub enum ComponentCommand {
    /// Lists the registry components the tenant's stored pipelines pin.
    List {
        #[command(flatten)]
        format: Format,
    },
}

pub fn component(c: &Connection, cmd: ComponentCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        ComponentCommand::List { format } => {
            let list = client.json("GET", "/v1/components", None)?;
            show(format, &list, |v| {
                for c in items(v) {
                    let pipelines: Vec<&str> = c["pipelines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str())
                        .collect();
                    out!("{}@{}", field(c, "reference"), field(c, "manifest_digest"));
                    out!(
                        "  signer {}  conformance {}  first used {}  last used {}",
                        field(c, "signer"),
                        field(c, "conformance"),
                        utc(&c["first_used"]),
                        utc(&c["last_used"])
                    );
                    out!("  pinned by {}", pipelines.join(", "));
                }
            });
        }
    }
    Ok(0)
}
