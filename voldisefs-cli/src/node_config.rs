//! A node's settings from three places, in this order of precedence: the command line, the
//! `VOLDISEFS_*` environment variables (both read by clap into [`NodeStartArgs`]), and a TOML
//! file (`--config FILE`, or `VOLDISEFS_CONFIG`) whose keys are the options' names
//! (`listen = "0.0.0.0:4100"`, `chunk-size = "1MiB"`, `bootstrap = ["a:4100"]`). The options
//! are declared once, by clap, in [`NodeStartArgs`]: the file's keys are that declaration's
//! long names and its values go through the same parsers and limits as the command line, so
//! they mean the same; unknown keys are refused (a typo never silently does nothing). `node
//! config` prints the result.

use std::path::Path;

use anyhow::Context as _;
use clap::{Args as _, FromArgMatches as _, ValueHint};

use crate::cli::{HostPort, LogFormat, NodeStartArgs};

/// The longest configuration file read (it is a handful of lines).
const MAX_FILE_LEN: u64 = 1 << 20;

/// Default peer address.
const DEFAULT_LISTEN: (&str, u16) = ("127.0.0.1", 4100);
/// Default HTTP address.
const DEFAULT_HTTP: (&str, u16) = ("127.0.0.1", 4200);

/// The options of `node start` as clap declares them (one declaration: [`NodeStartArgs`]), with
/// the environment switched off: what the file's keys are parsed by.
fn file_command() -> clap::Command {
    NodeStartArgs::augment_args(clap::Command::new("file").no_binary_name(true))
        .mut_args(|arg| arg.env(None))
}

/// Fills every option the command line and environment left unset (`args.given` holds what
/// they set) from `args.config`, if given. Each key of the file is an option's long name
/// and is parsed by that option's own clap parser and limits, so the file means exactly what
/// the command line would; relative paths in the file are taken relative to the file's folder.
pub(crate) fn merge(args: NodeStartArgs) -> anyhow::Result<NodeStartArgs> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let table = read(&path)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let command = file_command();
    let key_error = |name: &str, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("{}: `{name}`: {e}", path.display())
    };
    let mut tokens = Vec::new();
    for (name, value) in &table {
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != "config")
        else {
            let known: Vec<&str> = command
                .get_arguments()
                .filter_map(clap::Arg::get_long)
                .filter(|l| *l != "config")
                .collect();
            anyhow::bail!(
                "{}: unknown field `{name}`: the keys are the options of `node start`: {}",
                path.display(),
                known.join(", ")
            );
        };
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let mut own = Vec::new();
        for value in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                other => {
                    return Err(key_error(
                        name,
                        &format!("expected a string or a number, found {}", other.type_str()),
                    ));
                }
            };
            let text = if arg.get_value_hint() == ValueHint::FilePath {
                base.join(text).display().to_string()
            } else {
                text
            };
            own.push(format!("--{name}={text}"));
        }
        // Parsed on its own first, so an error names its key (clap's message says why).
        let alone = command
            .clone()
            .try_get_matches_from(&own)
            .map_err(|e| key_error(name, &clap_message(&e)))?;
        NodeStartArgs::from_arg_matches(&alone).map_err(|e| key_error(name, &e))?;
        if !args.given.contains_id(arg.get_id().as_str()) {
            tokens.extend(own);
        }
    }
    let from_file = command
        .try_get_matches_from(&tokens)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), clap_message(&e)))?;
    let mut merged = NodeStartArgs::from_arg_matches(&from_file)?;
    // What the command line and environment set wins over the file.
    merged.update_from_arg_matches(&args.given)?;
    merged.config = args.config;
    merged.given = args.given;
    Ok(merged)
}

/// The first line of clap's message, without its `error: ` prefix and usage hint.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

fn read(path: &Path) -> anyhow::Result<toml::Table> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= MAX_FILE_LEN,
        "{} is {len} bytes; a configuration file is at most 1 MiB",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

impl NodeStartArgs {
    /// The peer address (default [`DEFAULT_LISTEN`]).
    pub(crate) fn listen_addr(&self) -> HostPort {
        self.listen.clone().unwrap_or_else(|| HostPort {
            host: DEFAULT_LISTEN.0.into(),
            port: DEFAULT_LISTEN.1,
        })
    }

    /// The HTTP address (default [`DEFAULT_HTTP`]).
    pub(crate) fn http_addr(&self) -> HostPort {
        self.http.clone().unwrap_or_else(|| HostPort {
            host: DEFAULT_HTTP.0.into(),
            port: DEFAULT_HTTP.1,
        })
    }
}

/// The effective configuration as a TOML file `--config` reads back to the same settings.
/// The key and token files are named; their contents are never read here.
pub(crate) fn render(args: &NodeStartArgs) -> String {
    let quote = |s: &str| format!("{s:?}");
    let list = |items: Vec<String>| {
        format!(
            "[{}]",
            items
                .iter()
                .map(|s| quote(s))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let defaults = voldisefs_node::NodeConfig::default();
    let replicas = args.replicas.map_or(defaults.replicas, usize::from);
    let redundancy = args
        .redundancy
        .map_or_else(|| format!("replicas:{replicas}"), |r| r.to_string());
    let mut out = String::from(
        "# voldisefs node: the effective configuration (command line, then VOLDISEFS_*\n\
         # variables, then the --config file, then defaults). Readable by --config.\n",
    );
    let mut line = |key: &str, value: Option<String>, absent: &str| match value {
        Some(v) => out.push_str(&format!("{key} = {v}\n")),
        None => out.push_str(&format!("# {key}: {absent}\n")),
    };
    line("listen", Some(quote(&args.listen_addr().to_string())), "");
    line("http", Some(quote(&args.http_addr().to_string())), "");
    line(
        "bootstrap",
        Some(list(
            args.bootstrap.iter().map(ToString::to_string).collect(),
        )),
        "",
    );
    line(
        "advertise",
        args.advertise.as_ref().map(|a| quote(&a.to_string())),
        "not set: peers dial the listen address",
    );
    line("replicas", Some(replicas.to_string()), "");
    line("redundancy", Some(quote(&redundancy)), "");
    line(
        "capacity",
        Some(args.capacity.unwrap_or(defaults.capacity).to_string()),
        "",
    );
    line(
        "chunk-size",
        Some(
            args.chunk_size
                .unwrap_or(defaults.chunk_size)
                .bytes()
                .to_string(),
        ),
        "",
    );
    line(
        "default-expiry",
        args.default_expiry
            .map(|d| quote(&format!("{}s", d.as_secs()))),
        "not set: files live until deleted (or --max-expiry)",
    );
    line(
        "max-expiry",
        args.max_expiry.map(|d| quote(&format!("{}s", d.as_secs()))),
        "not set: no limit",
    );
    line(
        "network-key-file",
        args.network_key_file
            .as_ref()
            .map(|p| quote(&p.display().to_string())),
        "not set: open mode (peer links not encrypted)",
    );
    line(
        "api-token-file",
        args.api_token_file
            .as_ref()
            .map(|p| quote(&p.display().to_string())),
        "not set: no token asked (only allowed on loopback)",
    );
    line("http-host", Some(list(args.http_hosts.clone())), "");
    line(
        "log-format",
        Some(quote(match args.log_format.unwrap_or_default() {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })),
        "",
    );
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use clap::Parser as _;

    use crate::cli::{Cli, Command, NodeCommand};

    fn parse(args: &[&str]) -> NodeStartArgs {
        let mut all = vec!["voldisefs", "node", "start"];
        all.extend_from_slice(args);
        match crate::cli::try_parse_from(all).unwrap().command {
            Command::Node(NodeCommand::Start(a)) => a,
            _ => panic!("wrong command"),
        }
    }

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/voldisefs.toml")
    }

    #[test]
    fn the_example_file_sets_every_key() {
        let file = read(&example()).unwrap();
        // Every key is there (uncommented), so the example documents them all.
        for arg in file_command().get_arguments() {
            let Some(long) = arg.get_long().filter(|l| *l != "config") else {
                continue;
            };
            assert!(
                file.contains_key(long),
                "deploy/voldisefs.toml lacks `{long}`"
            );
        }
        let args = merge(parse(&["--config", example().to_str().unwrap()])).unwrap();
        assert_eq!(args.listen_addr().to_string(), "0.0.0.0:4100");
        assert_eq!(args.capacity, Some(4 << 30));
        assert_eq!(args.log_format, Some(LogFormat::Json));
        // `node config` prints every option, so none can be forgotten there either.
        let printed = render(&args);
        for long in file_command()
            .get_arguments()
            .filter_map(clap::Arg::get_long)
        {
            if long != "config" {
                let named = printed.lines().any(|l| {
                    l.starts_with(&format!("{long} = ")) || l.starts_with(&format!("# {long}:"))
                });
                assert!(named, "`node config` does not print `{long}`:\n{printed}");
            }
        }
        // Relative key paths are taken from the file's folder.
        assert!(
            args.network_key_file
                .as_ref()
                .unwrap()
                .starts_with(example().parent().unwrap())
                || args.network_key_file.as_ref().unwrap().is_absolute()
        );
    }

    #[test]
    fn command_line_wins_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:5100\"\nhttp = \"127.0.0.1:5200\"\ncapacity = \"2GiB\"\n\
             chunk-size = 262144\nbootstrap = [\"10.0.0.1:4100\"]\nnetwork-key-file = \"key\"\n",
        )
        .unwrap();
        let args = merge(parse(&[
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:6100",
        ]))
        .unwrap();
        assert_eq!(args.listen_addr().to_string(), "127.0.0.1:6100");
        assert_eq!(args.http_addr().to_string(), "127.0.0.1:5200");
        assert_eq!(args.capacity, Some(2 << 30));
        assert_eq!(args.chunk_size.map(|c| c.bytes()), Some(256 << 10));
        assert_eq!(args.bootstrap.len(), 1);
        assert_eq!(args.network_key_file, Some(dir.path().join("key")));
        assert_eq!(args.replicas, None);
        // What `node config` prints reads back to the same settings.
        let printed = render(&args);
        assert!(printed.contains("listen = \"127.0.0.1:6100\""), "{printed}");
        assert!(printed.contains("# advertise: not set"), "{printed}");
        let again_path = dir.path().join("again.toml");
        std::fs::write(&again_path, &printed).unwrap();
        let again = merge(parse(&["--config", again_path.to_str().unwrap()])).unwrap();
        assert_eq!(render(&again), printed);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        for (text, says) in [
            ("lisen = \"127.0.0.1:1\"\n", "unknown field `lisen`"),
            ("capacity = \"lots\"\n", "`capacity`"),
            ("redundancy = \"rs:4\"\n", "`redundancy`"),
            ("replicas = 0\n", "`replicas`"),
            ("log-format = \"xml\"\n", "`log-format`"),
            ("listen = \n", "bad.toml"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = merge(parse(&["--config", path.to_str().unwrap()])).unwrap_err();
            assert!(format!("{e:#}").contains(says), "{text}: {e:#}");
        }
        let e = merge(parse(&["--config", "/nonexistent/voldisefs.toml"])).unwrap_err();
        assert!(format!("{e:#}").contains("cannot read the configuration file"));
    }

    #[test]
    fn the_systemd_unit_starts_the_node_from_the_example_file() {
        let unit = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/voldisefs.service"),
        )
        .unwrap();
        let mut section = "";
        let mut exec = None;
        let mut sections = Vec::new();
        for line in unit.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name;
                sections.push(name.to_string());
                continue;
            }
            let (k, v) = line.split_once('=').expect("key=value");
            if section == "Service" && k == "ExecStart" {
                exec = Some(v.to_string());
            }
        }
        assert_eq!(sections, ["Unit", "Service", "Install"]);
        let exec = exec.expect("an ExecStart line");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert!(words[0].ends_with("/voldisefs"), "{exec}");
        let mut argv = vec!["voldisefs"];
        argv.extend_from_slice(&words[1..]);
        let Command::Node(NodeCommand::Start(args)) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("ExecStart does not run `node start`: {exec}");
        };
        assert_eq!(
            args.config.as_deref(),
            Some(Path::new("/etc/voldisefs/voldisefs.toml"))
        );
    }
}
