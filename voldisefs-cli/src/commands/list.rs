//! `voldisefs ls` and `voldisefs network`: show what a node reports, as a table or JSON.

use anyhow::Context as _;
use voldisefs_node::api::{FileList, IndexKind, NetworkStatus, StoreStatus};

use crate::cli::{ListArgs, LsArgs};
use crate::client::NodeClient;
use crate::size::format_size;
use crate::table::{format_utc, render};

/// Prints the files uploaded through the node (or, given an id, a collection's files).
pub(crate) async fn files(args: LsArgs) -> anyhow::Result<()> {
    if let Some(id) = args.id.clone() {
        return super::collection::list(args, &id).await;
    }
    let client = NodeClient::new(&args.node)?;
    let json = client.get_json("api/v1/files").await?;
    if args.json {
        return print_json(&json);
    }
    let list: FileList =
        serde_json::from_value(json).context("the node's file list is not what was expected")?;
    print!("{}", files_table(&list));
    Ok(())
}

/// Prints the node, its peers and its store usage.
pub(crate) async fn network(args: ListArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&args.node)?;
    let json = client.get_json("api/v1/network").await?;
    if args.json {
        return print_json(&json);
    }
    let view: NetworkStatus =
        serde_json::from_value(json).context("the node's network view is not what was expected")?;
    print!("{}", network_text(&view));
    Ok(())
}

/// Prints JSON the way the node sent it, indented.
fn print_json(json: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(json)?);
    Ok(())
}

/// The `ls` table.
fn files_table(list: &FileList) -> String {
    if list.files.is_empty() {
        return "no files were uploaded through this node\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .files
        .iter()
        .map(|f| {
            vec![
                f.id.to_string(),
                format_size(f.size),
                f.chunks.to_string(),
                format_utc(f.created),
                f.expires.map_or_else(|| "never".to_owned(), format_utc),
                if f.kind == IndexKind::Collection {
                    // A collection reads as a folder: `voldisefs ls ID` lists its files.
                    format!("{}/", printable(&f.name))
                } else {
                    printable(&f.name)
                },
            ]
        })
        .collect();
    render(
        &[
            "ID",
            "SIZE",
            "CHUNKS",
            "CREATED (UTC)",
            "EXPIRES (UTC)",
            "NAME",
        ],
        &rows,
    )
}

use super::collection::printable;

/// The `network` text: this node, its store, then its peers. What an older node did not report
/// (an empty state or security, a store of zeros) is left out.
fn network_text(view: &NetworkStatus) -> String {
    let mut out = format!("node   {}  {}\n", view.node.id, view.node.addr);
    let store = Some(&view.store).filter(|s| **s != StoreStatus::default());
    if let Some(state) = Some(view.state).filter(|s| !s.is_empty() && *s != "running") {
        out.push_str(&format!(
            "state  {state}{}\n",
            if state == "joining" {
                ": no bootstrap peer answered yet; retrying"
            } else {
                ""
            }
        ));
    }
    match view.security {
        "" => {}
        "open" => out.push_str(
            "links  OPEN: not encrypted or authenticated; anyone who can reach the peer port can join\n",
        ),
        mode => out.push_str(&format!("links  {mode}: encrypted and authenticated with the network key\n")),
    }
    if let Some(store) = store {
        out.push_str(&format!(
            "store  {} chunk{}, {} of {} used\n",
            store.chunks,
            if store.chunks == 1 { "" } else { "s" },
            format_size(store.bytes),
            format_size(store.capacity)
        ));
    }
    let repair = &view.repair;
    out.push_str(&format!(
        "repair {} chunk{} waiting, {} cop{} made so far\n",
        repair.backlog,
        if repair.backlog == 1 { "" } else { "s" },
        repair.pushed,
        if repair.pushed == 1 { "y" } else { "ies" }
    ));
    out.push('\n');
    if view.peers.is_empty() {
        out.push_str("no peers\n");
        return out;
    }
    let rows: Vec<Vec<String>> = view
        .peers
        .iter()
        .map(|p| {
            let mut state = match p.state {
                "" => "?".to_owned(),
                known => known.to_owned(),
            };
            if p.demoted {
                state.push_str(", demoted");
            }
            vec![
                p.id.to_string(),
                p.addr.to_string(),
                state,
                p.failures.to_string(),
                p.stored_bytes.map_or_else(|| "?".to_owned(), format_size),
            ]
        })
        .collect();
    out.push_str(&render(
        &["PEER", "ADDRESS", "STATE", "FAILURES", "STORED"],
        &rows,
    ));
    // The network's RAM use, to compare with the files' sizes (replicas:3 keeps 3x,
    // rs:4+2 1.5x).
    let answered: Vec<u64> = view.peers.iter().filter_map(|p| p.stored_bytes).collect();
    if let Some(store) = store {
        out.push_str(&format!(
            "\nstored across the network: {} on {} node{}{}\n",
            format_size(store.bytes + answered.iter().sum::<u64>()),
            answered.len() + 1,
            if answered.is_empty() { "" } else { "s" },
            if answered.len() < view.peers.len() {
                " (peers marked ? did not answer)"
            } else {
                ""
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File ids (64 hex digits) ending in `aa` and `bb`; node ids (UUIDs) ending in 1, 2, 3.
    const AA: &str = "00000000000000000000000000000000000000000000000000000000000000aa";
    const BB: &str = "00000000000000000000000000000000000000000000000000000000000000bb";
    const N1: &str = "00000000-0000-4000-8000-000000000001";
    const N2: &str = "00000000-0000-4000-8000-000000000002";
    const N3: &str = "00000000-0000-4000-8000-000000000003";

    #[test]
    fn files_table_lists_every_file() {
        let list: FileList = serde_json::from_str(
            &r#"{"files":[{"id":"AA","name":"notes \u001b[31mred\n.txt","size":2048,"chunks":1,"created":0,"extra":true},
                         {"id":"BB","name":"brief","size":1,"chunks":1,"created":0,"expires":86400}]}"#
                .replace("AA", AA)
                .replace("BB", BB),
        )
        .unwrap();
        let text = files_table(&list);
        assert!(text.starts_with(&format!("{:<64}  SIZE", "ID")), "{text}");
        assert!(
            text.contains("aa  2.0 KiB  1       1970-01-01 00:00:00  never                notes \\u{1b}[31mred\\n.txt"),
            "{text}"
        );
        assert!(
            text.contains("1970-01-01 00:00:00  1970-01-02 00:00:00  brief"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
        let empty: FileList = serde_json::from_str(r#"{"files":[]}"#).unwrap();
        assert!(files_table(&empty).contains("no files"));
    }

    #[test]
    fn network_text_shows_node_store_and_peers() {
        let view: NetworkStatus = serde_json::from_str(
            &r#"{"node":{"id":"n1","addr":"127.0.0.1:4100"},
                "state":"joining",
                "peers":[{"id":"n2","addr":"127.0.0.1:4101","state":"alive","stored_bytes":2048},
                         {"id":"n3","addr":"127.0.0.1:4102","state":"alive","demoted":true,"failures":4}],
                "store":{"chunks":1,"bytes":1024,"capacity":1073741824},
                "repair":{"backlog":2,"pushed":1,"dropped":0,"failed":0,"sweeps":3}}"#
                .replace("n1", N1)
                .replace("n2", N2)
                .replace("n3", N3),
        )
        .unwrap();
        let text = network_text(&view);
        assert!(
            text.contains(&format!("node   {N1}  127.0.0.1:4100")),
            "{text}"
        );
        assert!(
            text.contains("store  1 chunk, 1.0 KiB of 1.0 GiB used"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{N2}  127.0.0.1:4101  alive")),
            "{text}"
        );
        assert!(text.contains("alive, demoted  4         ?"), "{text}");
        assert!(text.contains("alive           0         2.0 KiB"), "{text}");
        assert!(
            text.contains(
                "stored across the network: 3.0 KiB on 2 nodes (peers marked ? did not answer)"
            ),
            "{text}"
        );
        assert!(
            text.contains("state  joining: no bootstrap peer answered yet"),
            "{text}"
        );
        assert!(
            text.contains("repair 2 chunks waiting, 1 copy made so far"),
            "{text}"
        );

        let alone: NetworkStatus = serde_json::from_str(
            &r#"{"node":{"id":"n1","addr":"127.0.0.1:4100"},"peers":[]}"#.replace("n1", N1),
        )
        .unwrap();
        assert!(network_text(&alone).contains("no peers"));
    }
}
