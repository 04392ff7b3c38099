//! The command line, declared with clap's derive API.
//!
//! Values are checked here (URLs, ids, sizes, addresses), so a malformed argument is a usage
//! error (exit code 2) with clap's message, before anything touches the network.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;
use voldisefs_node::crypto::client::ShareLink;
use voldisefs_node::crypto::{ChunkSize, ReadKey, Redundancy};

use crate::size::{SIZE_HELP, parse_size};

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

/// Options of `voldisefs node start` (and `node config`). Every option can also come from
/// the environment (`VOLDISEFS_` and its name in capitals, `-` as `_`; lists comma-separated)
/// or from the `--config` file (a TOML key of the same name); the command line wins over the
/// environment, which wins over the file.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct NodeStartArgs {
    /// A TOML file with any of these options as keys of the same name (`listen = "..."`,
    /// `chunk-size = "1MiB"`, `bootstrap = ["a:4100", "b:4100"]`, ...); see
    /// `deploy/voldisefs.toml`.
    #[arg(long, value_name = "FILE", env = "VOLDISEFS_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address of the peer-to-peer TCP server (port 0: any free port) [default:
    /// 127.0.0.1:4100].
    #[arg(long, value_name = "HOST:PORT", env = "VOLDISEFS_LISTEN")]
    pub(crate) listen: Option<HostPort>,
    /// Address of the HTTP API used by the CLI and the web page (port 0: any free port)
    /// [default: 127.0.0.1:4200].
    #[arg(long, value_name = "HOST:PORT", env = "VOLDISEFS_HTTP")]
    pub(crate) http: Option<HostPort>,
    /// A peer of an existing network to join through (repeatable).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "VOLDISEFS_BOOTSTRAP",
        value_delimiter = ','
    )]
    pub(crate) bootstrap: Vec<HostPort>,
    /// The address other peers should dial, if not the listen address (behind NAT, 0.0.0.0).
    #[arg(long, value_name = "HOST:PORT", env = "VOLDISEFS_ADVERTISE")]
    pub(crate) advertise: Option<HostPort>,
    /// Copies kept of every chunk, 1 to 32 (the most a redundancy names) [default: 3].
    #[arg(long, value_name = "N", env = "VOLDISEFS_REPLICAS",
          value_parser = clap::value_parser!(u16).range(1..=MAX_REPLICAS))]
    pub(crate) replicas: Option<u16>,
    /// How files uploaded through this node keep their chunks unless an upload says
    /// otherwise: `replicas:N` (sets --replicas too) or `rs:K+M` (K data and M parity
    /// Reed-Solomon shards on K + M distinct nodes; needs K + M live nodes)
    /// [default: replicas:<--replicas>].
    #[arg(long, value_name = "SPEC", env = "VOLDISEFS_REDUNDANCY", value_parser = parse_redundancy)]
    pub(crate) redundancy: Option<Redundancy>,
    /// RAM this node may use for stored chunks [default: 1GiB].
    #[arg(long, value_name = "SIZE", env = "VOLDISEFS_CAPACITY", value_parser = parse_size_arg,
          long_help = format!("RAM this node may use for stored chunks [default: 1GiB].\nSIZE: {SIZE_HELP}."))]
    pub(crate) capacity: Option<u64>,
    /// Chunk size of files uploaded through this node: a power of two from 64KiB to 16MiB
    /// [default: 1MiB].
    #[arg(long, value_name = "SIZE", env = "VOLDISEFS_CHUNK_SIZE", value_parser = parse_chunk_size)]
    pub(crate) chunk_size: Option<ChunkSize>,
    /// How long files uploaded through this node live when an upload names no expiry
    /// (DURATION: `10m`, `24h`, `7d`, ...) [default: forever, or --max-expiry if set].
    #[arg(long, value_name = "DURATION", env = "VOLDISEFS_DEFAULT_EXPIRY", value_parser = parse_duration)]
    pub(crate) default_expiry: Option<std::time::Duration>,
    /// The longest expiry an upload through this node may ask for (DURATION) [default: no
    /// limit].
    #[arg(long, value_name = "DURATION", env = "VOLDISEFS_MAX_EXPIRY", value_parser = parse_duration)]
    pub(crate) max_expiry: Option<std::time::Duration>,
    /// The network key (written by `voldisefs keygen`): peer links are encrypted and
    /// authenticated and only nodes with the same key can join. Without it the node runs in
    /// open mode.
    #[arg(long, value_name = "FILE", env = "VOLDISEFS_NETWORK_KEY_FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) network_key_file: Option<PathBuf>,
    /// A token every API request must carry (`Authorization: Bearer`); required when --http
    /// is not a loopback address.
    #[arg(long, value_name = "FILE", env = "VOLDISEFS_API_TOKEN_FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) api_token_file: Option<PathBuf>,
    /// A host name the HTTP API answers to (repeatable; e.g. the name of a proxy in front of
    /// it). IP addresses, `localhost` and the name given to `--http` always work; requests
    /// naming any other host are refused, so a web page cannot reach the node through a
    /// DNS-rebinding domain.
    #[arg(
        long = "http-host",
        value_name = "NAME",
        env = "VOLDISEFS_HTTP_HOST",
        value_delimiter = ','
    )]
    pub(crate) http_hosts: Vec<String>,
    /// Log format on stderr: human-readable text, or one JSON object per line [default: text].
    #[arg(long, value_enum, env = "VOLDISEFS_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// What the command line and environment set ([`parse`] fills it in), so the `--config`
    /// file fills only the rest (`node_config.rs`).
    #[arg(skip)]
    pub(crate) given: clap::ArgMatches,
}

/// How `node start` and `demo` write their logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    #[default]
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Options of `voldisefs keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// The file to write the new network key to (created with mode 0600).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    pub(crate) force: bool,
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

/// Options of `voldisefs put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The file to upload, or `-` for standard input (a pipe, FIFO or device works too: it is
    /// streamed, whatever its length). Several paths, or a folder, are uploaded as one
    /// collection under one password: every file below a folder, kept at its path relative
    /// to the folder's parent (symbolic links inside folders are refused; empty folders are
    /// not recorded).
    #[arg(value_name = "PATH|-", required = true, num_args = 1..)]
    pub(crate) files: Vec<PathBuf>,
    /// The name recorded with the file or collection [default: the file's or folder's name;
    /// `stdin` for `-`; `N files` for several paths].
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub(crate) name: Option<String>,
    /// Print nothing but the file id (no progress bar, no summary).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Also print a share link (last): a URL of the node's page that opens the file without
    /// the password (its fragment, which browsers never send, carries the id and a read key
    /// for this one file, or for a collection and so its files; the key cannot delete).
    #[arg(long)]
    pub(crate) link: bool,
    /// Delete the file (or collection) everywhere after DURATION: `90s`, `10m`, `24h`, `7d`,
    /// `2w` (a bare number is seconds) [default: the node's `--default-expiry`, else never].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) expires: Option<std::time::Duration>,
    /// Burn after reading: the node that serves the first complete download deletes the
    /// file everywhere afterwards. Single files only.
    #[arg(long)]
    pub(crate) once: bool,
    /// How the chunks are kept: `replicas:N` (N whole copies; N must be the network's
    /// `--replicas`) or `rs:K+M` (Reed-Solomon: K data and M parity shards of every chunk on
    /// K + M distinct nodes; survives M lost nodes at (K+M)/K times the size, e.g. `rs:4+2`:
    /// two lost nodes at 1.5x) [default: the node's `--redundancy`].
    #[arg(long, value_name = "SPEC", value_parser = parse_redundancy)]
    pub(crate) redundancy: Option<Redundancy>,
    /// The node to upload through.
    #[command(flatten)]
    pub(crate) node: NodeArg,
    /// The password.
    #[command(flatten)]
    pub(crate) password: PasswordArg,
}

/// Options of `voldisefs get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The id (64 hex digits) printed by `put`: a file's or a collection's; or a share link
    /// printed by `put --link` (then no password is needed, and the link's node is used).
    #[arg(value_name = "ID|LINK", value_parser = parse_file_ref)]
    pub(crate) id: FileRef,
    /// Where to write a file: a path, a directory, or `-` for standard output [default: the
    /// file's original name in the current directory]. For a collection: the folder to
    /// recreate it in (created if missing), or `-` for a tar archive on standard output
    /// [default: the collection's name in the current directory].
    #[arg(short, long, value_name = "PATH|-")]
    pub(crate) output: Option<PathBuf>,
    /// Fetch only the file at this path of the collection (as `ls ID` shows it).
    #[arg(long, value_name = "REL")]
    pub(crate) path: Option<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub(crate) force: bool,
    /// Keep what arrived if the download fails or is interrupted, and continue a download
    /// interrupted before from where it stopped (after checking that the part already there
    /// ends with the file's bytes). The part is kept as `.NAME.ID.part` beside the output.
    #[arg(long, conflicts_with = "path")]
    pub(crate) resume: bool,
    /// Print nothing but the written path (no progress bar).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// The node to download through.
    #[command(flatten)]
    pub(crate) node: NodeArg,
    /// The password.
    #[command(flatten)]
    pub(crate) password: PasswordArg,
}

/// Options of `voldisefs rm`.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The file id (64 hex digits).
    #[arg(value_parser = parse_file_id)]
    pub(crate) id: String,
    /// The node to delete through.
    #[command(flatten)]
    pub(crate) node: NodeArg,
    /// The password.
    #[command(flatten)]
    pub(crate) password: PasswordArg,
}

/// Options of `voldisefs ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// A collection id: list its files (needs its password) instead of the node's uploads.
    #[arg(value_parser = parse_file_id)]
    pub(crate) id: Option<String>,
    /// Print the node's JSON answer instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// The node to ask.
    #[command(flatten)]
    pub(crate) node: NodeArg,
    /// The password (of the collection).
    #[command(flatten)]
    pub(crate) password: PasswordArg,
}

/// Options of `voldisefs network`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print the node's JSON answer instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// The node to ask.
    #[command(flatten)]
    pub(crate) node: NodeArg,
}

/// Options of `voldisefs demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many nodes to start.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=20))]
    pub(crate) nodes: u16,
    /// Log format on stderr: human-readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// A `HOST:PORT` pair whose host may be a name, resolved when the node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// Host name or IP address (IPv6 without brackets).
    pub(crate) host: String,
    /// Port number.
    pub(crate) port: u16,
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not HOST:PORT (for example 127.0.0.1:4100)");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad());
        }
        let port = port.parse().map_err(|_| bad())?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `--node`: an `http://` URL, or a bare `HOST:PORT` taken as one.
pub(crate) fn parse_node_url(text: &str) -> Result<Url, String> {
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{text:?}: only http:// node URLs are supported (nodes serve plain HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?}: a node URL has no query or fragment"));
    }
    // API paths are joined onto the URL, so its path must end with a slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Parses a file id: 64 hex digits, returned in lower case.
pub(crate) fn parse_file_id(text: &str) -> Result<String, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "{text:?} is not a file id (64 hex digits, as printed by `voldisefs put`)"
        ))
    }
}

/// A file to get: its id, and the node and read key when it came as a share link.
#[derive(Debug, Clone)]
pub(crate) struct FileRef {
    /// The file id (64 lowercase hex digits).
    pub(crate) id: String,
    /// The link's node page and read key, for a share link.
    pub(crate) link: Option<(Url, ReadKey)>,
}

impl std::ops::Deref for FileRef {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The share link of file `id` with read key `key` on the node at `node`: its page, with
/// the id and key in the fragment (see `voldisefs_crypto::client::ShareLink`).
pub(crate) fn share_link(node: &Url, id: &[u8; 32], key: &ReadKey) -> zeroize::Zeroizing<String> {
    ShareLink::format(node.as_str(), id, key)
}

/// Parses a file id, or a share link (`http://node/#id=ID&key=KEY`).
pub(crate) fn parse_file_ref(text: &str) -> Result<FileRef, String> {
    if !text.contains('#') {
        return parse_file_id(text).map(|id| FileRef { id, link: None });
    }
    let bad =
        || format!("{text:?} is neither a file id nor a share link (`http://node/#id=ID&key=KEY`)");
    let link = ShareLink::parse(text).map_err(|_| bad())?;
    let page = Url::parse(&link.page).map_err(|_| bad())?;
    Ok(FileRef {
        id: link.id.iter().map(|b| format!("{b:02x}")).collect(),
        link: Some((page, link.key)),
    })
}

/// Parses a DURATION: a whole number with an optional unit, `s` (default), `m`, `h`, `d` or
/// `w`; at least one second.
/// The most copies `--replicas` (and the config file's `replicas`) may ask for: as many as a
/// redundancy can name (`replicas:N`, `rs:K+M` with K + M nodes), one limit for every source.
pub(crate) const MAX_REPLICAS: i64 = voldisefs_node::crypto::MAX_SHARDS as i64;

/// Parses `replicas:N` or `rs:K+M`.
pub(crate) fn parse_redundancy(text: &str) -> Result<Redundancy, String> {
    text.parse()
        .map_err(|e: voldisefs_node::crypto::Error| e.to_string())
}

pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration (for example 90s, 10m, 24h, 7d, 2w)");
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let secs = number.checked_mul(scale).ok_or_else(bad)?;
    if secs == 0 {
        return Err(format!("{text:?}: an expiry must be at least one second"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Parses a SIZE argument.
pub(crate) fn parse_size_arg(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// Parses `--chunk-size`: a SIZE that is a power of two between 64KiB and 16MiB.
pub(crate) fn parse_chunk_size(text: &str) -> Result<ChunkSize, String> {
    let bytes = parse_size(text)?;
    ChunkSize::from_bytes(bytes)
        .map_err(|_| format!("chunk size must be a power of two from 64KiB to 16MiB, not {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90"), Ok(90));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("24h"), Ok(86_400));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("2w"), Ok(1_209_600));
        for bad in [
            "",
            "m",
            "0",
            "0s",
            "-1",
            "1y",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn share_links_round_trip_and_bad_ones_are_usage_errors() {
        let id = "ab".repeat(32);
        let key = "0f".repeat(32);
        let node = Url::parse("http://127.0.0.1:4200/api").unwrap();
        let link = share_link(&node, &[0xab; 32], &ReadKey::from_bytes([0x0f; 32]));
        assert_eq!(
            link.as_str(),
            format!("http://127.0.0.1:4200/#id={id}&key={key}")
        );
        let parsed = parse_file_ref(&link).unwrap();
        assert_eq!(parsed.id, id);
        let (page, got) = parsed.link.unwrap();
        assert_eq!(page.as_str(), "http://127.0.0.1:4200/");
        assert_eq!(got.as_bytes(), &[0x0f; 32]);
        assert!(parse_file_ref(&id.to_uppercase()).unwrap().link.is_none());
        for bad in [
            format!("http://h/#id={id}"),
            format!("http://h/#key={key}"),
            format!("http://h/#id={id}&key={}", &key[1..]),
            format!("ftp://h/#id={id}&key={key}"),
            format!("http://h/#id={id}&key={key}&x=1"),
            "#".to_string(),
        ] {
            assert!(parse_file_ref(&bad).is_err(), "{bad}");
        }
    }
    use clap::CommandFactory as _;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn host_port_parsing() {
        let hp: HostPort = "127.0.0.1:4100".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("127.0.0.1", 4100));
        let hp: HostPort = "localhost:0".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("localhost", 0));
        let hp: HostPort = "[::1]:4200".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("::1", 4200));
        assert_eq!(hp.to_string(), "[::1]:4200");
        for bad in [
            "",
            "4100",
            "host",
            ":4100",
            "host:",
            "host:99999",
            "::1:4100",
            "[::1:80",
        ] {
            assert!(
                bad.parse::<HostPort>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn node_urls() {
        let url = parse_node_url("http://127.0.0.1:4200").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:4200/");
        assert_eq!(
            url.join("api/v1/files").unwrap().as_str(),
            "http://127.0.0.1:4200/api/v1/files"
        );
        let url = parse_node_url("localhost:4201").unwrap();
        assert_eq!(url.as_str(), "http://localhost:4201/");
        let url = parse_node_url("http://gw.lan/voldisefs").unwrap();
        assert_eq!(
            url.join("healthz").unwrap().as_str(),
            "http://gw.lan/voldisefs/healthz"
        );
        for bad in [
            "https://x:1",
            "ftp://x",
            "http://",
            "not a url",
            "http://x/?q=1",
        ] {
            assert!(parse_node_url(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn file_ids() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_file_id(&upper).unwrap(), "ab".repeat(32));
        assert!(parse_file_id(&"a".repeat(63)).is_err());
        assert!(parse_file_id(&"g".repeat(64)).is_err());
        assert!(parse_file_id("../etc/passwd").is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size("1MiB").unwrap().bytes(), 1 << 20);
        assert_eq!(parse_chunk_size("64K").unwrap().bytes(), 64 << 10);
        assert!(parse_chunk_size("1000000").is_err());
        assert!(parse_chunk_size("32KiB").is_err());
        assert!(parse_chunk_size("32MiB").is_err());
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
