//! `cordon secrets`: the encrypted secret store of a project's database. Values go in through
//! standard input or a file (never the command line, which other users can read in `ps`),
//! and nothing here ever prints one back.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::audit;
use crate::db::Db;
use crate::ids::SecretName;
use crate::secrets::SecretValue;
use crate::secrets::store::{MasterKey, MasterKeyError, SecretStore};

use super::workflow::{HistoryArgs, open_db, open_existing_db};

/// Which master key to use.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// A file holding the master key in base64 [default: $CORDON_MASTER_KEY, or the file
    /// named by $CORDON_MASTER_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a secret, encrypted, replacing any earlier value. The value is read from
    /// standard input (one trailing newline dropped) or from --from-file.
    Set {
        /// The name connections refer to as @secret('NAME').
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        history: HistoryArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List stored secrets: names, the key that sealed each, and when. Never values.
    List {
        #[command(flatten)]
        history: HistoryArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a stored secret.
    Rm {
        name: String,
        #[command(flatten)]
        history: HistoryArgs,
    },
    /// Print a new random master key (base64) for CORDON_MASTER_KEY or a key file.
    NewKey,
}

/// The project's secret store if a master key is configured; `None` if none is (connections
/// that refer to `@secret` then report it). A key that is set but unusable is an error.
pub fn store_if_keyed(db: Arc<dyn Db>) -> anyhow::Result<Option<SecretStore>> {
    match MasterKey::from_environment(None) {
        Ok(key) => Ok(Some(SecretStore::new(db, key))),
        Err(MasterKeyError::NotSet) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn run(command: SecretsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretsCommand::NewKey => {
            println!("{}", *MasterKey::generate());
        }
        SecretsCommand::Set {
            name,
            from_file,
            history,
            key,
        } => {
            let name = SecretName::new(name)?;
            let value = read_value(&name, from_file)?;
            let store = SecretStore::new(
                open_db(&history.project, history.db.as_deref())?,
                MasterKey::from_environment(key.master_key_file.as_deref())?,
            );
            let replaced = store.set(&name, &value)?;
            audit::secret_stored(&name, store.key_id(), replaced);
            let verb = if replaced { "replaced" } else { "stored" };
            println!("{verb} secret {name} (master key {})", store.key_id());
        }
        SecretsCommand::List { history, json } => {
            // Listing needs no key: names and dates are not sealed.
            let Ok(db) = open_existing_db(&history.project, history.db.as_deref())? else {
                if json {
                    println!("[]");
                } else {
                    println!("no stored secrets: there is no history file yet");
                }
                return Ok(ExitCode::SUCCESS);
            };
            let secrets = db.list_secrets()?;
            if json {
                let rows: Vec<_> = secrets
                    .iter()
                    .map(|s| {
                        json!({"name": s.name, "key_id": s.key_id, "created_at": s.created_at, "updated_at": s.updated_at})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if secrets.is_empty() {
                println!("no stored secrets in {}", db.location());
            } else {
                for s in &secrets {
                    println!(
                        "{:<32} key {}  updated {}",
                        s.name,
                        s.key_id,
                        super::workflow::timestamp(s.updated_at)
                    );
                }
            }
        }
        SecretsCommand::Rm { name, history } => {
            let name = SecretName::new(name)?;
            let db = open_db(&history.project, history.db.as_deref())?;
            if !db.delete_secret(name.as_str())? {
                bail!("there is no stored secret {name}; `cordon secrets list` shows the stored names");
            }
            audit::secret_removed(&name);
            println!("removed secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value to store: from a file, or standard input. Empty values are refused, because an
/// empty secret is almost always a mistake in how it was piped in.
fn read_value(name: &SecretName, from_file: Option<PathBuf>) -> anyhow::Result<SecretValue> {
    let mut text = zeroize::Zeroizing::new(String::new());
    match from_file {
        Some(path) => {
            *text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("value of {name} (end with Ctrl-D; it is not echoed anywhere else):");
            }
            stdin
                .lock()
                .read_to_string(&mut text)
                .context("cannot read the value from standard input")?;
        }
    }
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        bail!(
            "the value of {name} is empty; pipe it in (`printf %s \"$TOKEN\" | cordon secrets set {name}`) or give --from-file"
        );
    }
    Ok(SecretValue::new(value))
}
