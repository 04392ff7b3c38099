//! `voldisefs rm ID`: delete a file (or a collection and its files) from the network.

use voldisefs_node::crypto::Password;

use crate::cli::RmArgs;
use crate::password;
use crate::store::{Session, crypto_error};

/// Opens the file on this machine with the password (proving the right to delete it), then
/// asks the nodes to delete its objects with the file's delete key.
pub(crate) async fn run(args: RmArgs) -> anyhow::Result<()> {
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let session = Session::open(&args.node).await?;
    let id = super::download::parse_id(&args.id)?;
    session
        .client
        .delete(id, Password::new(password.to_vec()))
        .await
        .map_err(|e| crypto_error(e, &args.id))?;
    println!("deleted {}", args.id);
    Ok(())
}
