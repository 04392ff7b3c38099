//! The options of the file commands: `put`, `get`, `rm`, `ls`, `list`, and `demo`'s.

use std::path::PathBuf;

use clap::Args;
use voldisefs_node::crypto::Redundancy;

use super::values::{FileRef, parse_duration, parse_file_id, parse_file_ref, parse_redundancy};
use super::{LogFormat, NodeArg, PasswordArg};

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
