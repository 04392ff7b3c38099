//! One module per subcommand; [`run`] dispatches.

mod collection;
mod demo;
mod download;
mod get;
mod list;
mod node;
mod put;
mod rm;
mod upload;

use std::future::Future;

use crate::cli::{Command, NodeCommand};
use crate::signals::StopSignals;

/// Runs one command to completion.
pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        // These serve until a stop signal and handle it themselves.
        Command::Node(NodeCommand::Start(args)) => node::start(args).await,
        Command::Node(NodeCommand::Config(args)) => node::print_config(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Put(args) => interruptible(put::run(args)).await,
        Command::Get(args) => interruptible(get::run(args)).await,
        Command::Ls(args) => interruptible(list::files(args)).await,
        Command::Rm(args) => interruptible(rm::run(args)).await,
        Command::Network(args) => interruptible(list::network(args)).await,
        Command::Keygen(args) => keygen(&args),
    }
}

/// `voldisefs keygen`: writes a fresh network key, readable by its owner only.
fn keygen(args: &crate::cli::KeygenArgs) -> anyhow::Result<()> {
    let key = voldisefs_node::net::NetworkKey::generate()?;
    crate::secrets::write_secret_file(&args.output, &key.to_hex(), args.force)?;
    eprintln!(
        "wrote a new network key to {}; give it to every node with --network-key-file",
        args.output.display()
    );
    Ok(())
}

/// Runs a client command, ending it cleanly on Ctrl-C or SIGTERM.
///
/// The command's future is dropped, so whatever it holds is cleaned up (a partial download's
/// temporary file is deleted), and the password prompt gets its terminal settings back: the
/// prompt sees Ctrl-C as an interruption instead of the process being killed under it.
async fn interruptible(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut signals = StopSignals::install()?;
    tokio::select! {
        biased;
        signal = signals.next() => anyhow::bail!("interrupted by {signal}"),
        result = command => result,
    }
}
