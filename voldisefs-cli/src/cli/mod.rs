//! The command line, declared with clap's derive API.
//!
//! Values are checked here (URLs, ids, sizes, addresses), so a malformed argument is a usage
//! error (exit code 2) with clap's message, before anything touches the network.
//!
//! Files: this one holds the command tree and what several commands share; [`node_args`] the
//! options of `node start` (declared once: the environment and the `--config` file follow from
//! them), [`file_args`] those of the file commands, [`values`] the parsers of argument values.

mod file_args;
mod node_args;
mod values;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

pub(crate) use file_args::{DemoArgs, GetArgs, ListArgs, LsArgs, PutArgs, RmArgs};
pub(crate) use node_args::{KeygenArgs, LogFormat, NodeStartArgs};
use values::parse_node_url;
pub(crate) use values::{HostPort, share_link};

/// Environment variable naming the node to talk to.
pub(crate) const NODE_ENV: &str = "VOLDISEFS_NODE";

/// Volatile, distributed, encrypted peer-to-peer file store.
///
/// Files live only in the RAM of the nodes of a network, encrypted under a password by the
/// node you talk to. A file id and its password are all anyone needs to fetch it through any
/// node. Exit codes: 0 ok, 2 usage, 3 wrong password or corrupted file, 4 file not found,
/// 5 node unreachable, 1 anything else.
#[derive(Debug, Parser)]
#[command(name = "voldisefs", version, about, long_about)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node of a Voldisefs network.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Upload a file, or several files and folders as one collection; prints the id to fetch
    /// them with as the last line of output.
    Put(PutArgs),
    /// Download a file, a collection (recreating its folders), or one file of a collection.
    Get(GetArgs),
    /// List the files uploaded through a node, or the files of a collection.
    Ls(LsArgs),
    /// Delete a file, or a collection and all its files, from the network.
    Rm(RmArgs),
    /// Show a node, its peers and its store usage.
    Network(ListArgs),
    /// Run a small network of nodes in this process, to try Voldisefs out.
    Demo(DemoArgs),
    /// Write a fresh random network key to a file (for `node start --network-key-file`).
    Keygen(KeygenArgs),
}

/// Parses the command line and environment as `Cli::parse` does (usage errors exit with 2,
/// `--help` and `--version` with 0), remembering which node options they set.
pub(crate) fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] of the given arguments (the first is the program's name).
pub(crate) fn try_parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Command::Node(NodeCommand::Start(args) | NodeCommand::Config(args)) = &mut cli.command {
        if let Some((_, given)) = matches.subcommand().and_then(|(_, node)| node.subcommand()) {
            args.given = given.clone();
        }
    }
    Ok(cli)
}

/// `voldisefs node ...`
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Start a node and serve until Ctrl-C or SIGTERM.
    Start(NodeStartArgs),
    /// Print the configuration `node start` would run with (the same options, file and
    /// environment; defaults filled in; key and token files named, never read out).
    Config(NodeStartArgs),
}

/// Environment variable holding the node's API token.
pub(crate) const API_TOKEN_ENV: &str = "VOLDISEFS_API_TOKEN";

/// The node to talk to.
#[derive(Debug, Args)]
pub(crate) struct NodeArg {
    /// URL of a node's HTTP API. Repeat it (or give $VOLDISEFS_NODE as a comma-separated
    /// list) to name several: writes go to the first that answers, and reads take an object
    /// from the next node when one is unreachable or serves wrong bytes.
    #[arg(
        long,
        value_name = "URL",
        env = NODE_ENV,
        default_value = "http://127.0.0.1:4200",
        value_delimiter = ',',
        value_parser = parse_node_url
    )]
    pub(crate) node: Vec<Url>,
    /// Read the node's API token from FILE (needed when the node was started with one);
    /// otherwise $VOLDISEFS_API_TOKEN is used if set.
    #[arg(long, value_name = "FILE")]
    pub(crate) api_token_file: Option<PathBuf>,
}

impl NodeArg {
    /// The first node named (the one links point at).
    pub(crate) fn first(&self) -> &Url {
        // clap's default value guarantees one.
        &self.node[0]
    }

    /// The API token to send, if any: from `--api-token-file`, else `$VOLDISEFS_API_TOKEN`.
    pub(crate) fn api_token(&self) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
        let token = match &self.api_token_file {
            Some(path) => Some(crate::secrets::read_secret_file(path, "API token")?),
            None => std::env::var(API_TOKEN_ENV)
                .ok()
                .map(zeroize::Zeroizing::new),
        };
        Ok(token
            .map(|t| zeroize::Zeroizing::new(t.trim().to_owned()))
            .filter(|t| !t.is_empty()))
    }
}

/// Where the password comes from.
#[derive(Debug, Args)]
pub(crate) struct PasswordArg {
    /// Read the password from the first line of FILE; otherwise $VOLDISEFS_PASSWORD is used,
    /// else you are asked on the terminal.
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_contract_examples() {
        let cli = Cli::try_parse_from([
            "voldisefs",
            "node",
            "start",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "localhost:0",
            "--bootstrap",
            "10.0.0.1:4100",
            "--bootstrap",
            "peer.lan:4100",
            "--replicas",
            "2",
            "--capacity",
            "512M",
            "--chunk-size",
            "256KiB",
        ])
        .unwrap();
        let Command::Node(NodeCommand::Start(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.bootstrap.len(), 2);
        assert_eq!(args.capacity, Some(512 << 20));
        assert_eq!(args.replicas, Some(2));

        let id = "0".repeat(64);
        let cli = Cli::try_parse_from(["voldisefs", "get", &id, "-o", "-", "--force"]).unwrap();
        let Command::Get(get) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(get.output.as_deref(), Some(std::path::Path::new("-")));
        assert!(get.force);

        for bad in [
            &["voldisefs", "get", "nope"][..],
            &["voldisefs", "put"],
            &["voldisefs", "node", "start", "--capacity", "lots"],
            &["voldisefs", "demo", "--nodes", "0"],
            &["voldisefs", "demo", "--nodes", "21"],
            &["voldisefs", "ls", "--node", "https://x"],
            // One limit with the redundancy: replicas:33 does not exist, so neither does 33.
            &["voldisefs", "node", "start", "--replicas", "33"],
        ] {
            let err = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        assert!(Cli::try_parse_from(["voldisefs", "node", "start", "--replicas", "32"]).is_ok());
    }
}
