//! Collections from the command line: `put` of several paths or a folder, `get` of a
//! collection id (recreating its folders), `ls ID`.
//!
//! A collection is checked before anything is written, whoever sealed it: every path must be
//! relative and stay inside the output folder (no `..`, no absolute path, no duplicates, no
//! file where another entry needs a folder), no existing symbolic link or file may stand on
//! the way, and no file may exist already unless `--force`. Only then are folders created and
//! files downloaded, each into a temporary file renamed into place once complete; all of it
//! through the output folder's open handle, one name at a time, never following a symbolic
//! link ([`crate::folder`]), so a folder swapped for a link during the download is refused.
//!
//! [`put`](put::put) gathers and uploads; [`get`](get::get) plans, checks and writes, and lists
//! (`ls ID`).

mod get;
mod put;

pub(super) use get::{get, list};
pub(super) use put::put;

/// `name` safe to print on a terminal: control characters are shown escaped.
pub(in crate::commands) fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
