//! `voldisefs rm ID`: delete a file from the network.

use crate::cli::RmArgs;
use crate::client::NodeClient;
use crate::password;

/// Deletes the file (the node checks the password first).
pub(crate) async fn run(args: RmArgs) -> anyhow::Result<()> {
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let client = NodeClient::new(&args.node)?;
    client.delete(&args.id, &password).await?;
    println!("deleted {}", args.id);
    Ok(())
}
