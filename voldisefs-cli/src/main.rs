//! `voldisefs`: the command-line front end of Voldisefs.
//!
//! `node start` and `demo` run nodes through the `voldisefs-node` library; `put`, `get`,
//! `ls ID` and `rm` seal and open files on this machine (`voldisefs_crypto::client`) and hand
//! nodes only sealed objects over their object API; `ls` and `network` ask a node what it
//! reports. The binary is glue: it parses
//! the command line, runs one command and turns its outcome into one line on stderr and the
//! exit code the README lists (0 ok, 2 usage, 3 wrong password or corrupted file, 4 file
//! not found, 5 node unreachable, 1 anything else).

mod cli;
mod client;
mod commands;
mod error;
mod folder;
mod names;
mod node_config;
mod password;
mod progress;
mod secrets;
mod signals;
mod size;
mod store;
mod table;

use std::process::ExitCode;
use std::time::Duration;

/// Every heap block is zeroed before it is freed (1Password's `zeroizing-alloc`), so the
/// plaintext, names and passwords that pass through buffers the node does not own (HTTP
/// request and response buffers, header maps, JSON) do not linger in freed memory. Beneath
/// it, jemalloc keeps freed pages for reuse for a while instead of handing them back to the
/// kernel at once, so a transfer's short-lived chunk buffers do not fault in (and the kernel
/// does not zero) fresh pages for every chunk: about a quarter less CPU per GiB on an upload
/// through this node (`cargo bench --bench e2e`, BENCHMARKS.md).
#[global_allocator]
static ALLOC: zeroizing_alloc::ZeroAlloc<tikv_jemallocator::Jemalloc> =
    zeroizing_alloc::ZeroAlloc(tikv_jemallocator::Jemalloc);

fn main() -> ExitCode {
    // Usage errors print clap's message and exit with 2; --help and --version exit with 0.
    let cli = cli::parse();
    // Its workers wipe their stacks whenever they go idle (keys pass through async frames).
    let runtime = match voldisefs_node::runtime_builder().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_OTHER);
        }
    };
    let result = runtime.block_on(commands::run(cli.command));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error::one_line(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
