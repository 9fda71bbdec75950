//! ISO 20022 for a bank's systems: write a pacs.008 for a signed transfer, submit one, ask
//! a transfer's pacs.002 status, and fetch a bank's statement of a cycle (JSON or camt.053).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use interpool_contracts::iso20022::pacs::{pacs008, read_pacs002, ReadStatus};
use interpool_contracts::statement::BankStatementView;
use interpool_contracts::{BankId, Body};
use reqwest::Method;
use serde::Serialize;

use crate::cli::{BodyArgs, IsoCommand};
use crate::client::Node;
use crate::commands::submit::{sign, Signed};
use crate::exit::Exit;
use crate::output::{fields, Output};

/// What `iso submit` and `iso status` print.
#[derive(Serialize)]
struct StatusShown {
    /// The HTTP status of the answer.
    http_status: u16,
    end_to_end_id: String,
    /// `ACSP`, `PDNG`, `ACSC` or `RJCT`.
    status: String,
    reason: Option<String>,
    text: Option<String>,
}

fn show_status(out: Output, http_status: u16, xml: &str, file: Option<&Path>) -> Result<Exit> {
    if let Some(file) = file {
        std::fs::write(file, xml).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let ReadStatus {
        end_to_end_id,
        status,
        reason,
        text,
    } = read_pacs002(xml).map_err(|e| anyhow!("the node's pacs.002 does not read: {e}"))?;
    let shown = StatusShown {
        http_status,
        end_to_end_id,
        status,
        reason,
        text,
    };
    out.show(&shown, || {
        let mut rows = vec![
            ("end-to-end id", shown.end_to_end_id.clone()),
            (
                "status",
                format!("{} ({})", shown.status, meaning(&shown.status)),
            ),
        ];
        if let Some(reason) = &shown.reason {
            rows.push(("reason", reason.clone()));
        }
        if let Some(text) = &shown.text {
            rows.push(("detail", text.clone()));
        }
        fields(&rows)
    })?;
    Ok(if shown.status == "RJCT" {
        Exit::Failure
    } else {
        Exit::Success
    })
}

fn meaning(status: &str) -> &'static str {
    match status {
        "ACSP" => "accepted, settlement in process",
        "PDNG" => "pending: queued under the bank's net debit cap",
        "ACSC" => "settled",
        "RJCT" => "rejected",
        _ => "unknown status",
    }
}

/// Runs an `iso` subcommand.
pub fn run(node_url: &str, out: Output, command: IsoCommand) -> Result<Exit> {
    let mut node = Node::new(node_url)?;
    match command {
        IsoCommand::Pacs008 {
            body,
            submit,
            out: file,
            send,
        } => {
            let Signed { verified, chain } =
                match sign(&mut node, &BodyArgs::Transfer(body), &submit)? {
                    Ok(signed) => signed,
                    Err(exit) => return Ok(exit),
                };
            let tx = verified.tx();
            let Body::Transfer { to, .. } = &tx.body else {
                return Err(anyhow!("a pacs.008 carries a transfer"));
            };
            let debtor_bank = node
                .account(&tx.signer)
                .with_context(|| format!("cannot look up the bank of {}", tx.signer))?
                .bank;
            let creditor_bank = node
                .account_bank(to)
                .with_context(|| format!("cannot look up the bank of the payee {to}"))?
                .bank;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            let xml = pacs008(
                verified.signed(),
                &debtor_bank,
                &creditor_bank,
                &chain.currency,
                chain.decimals,
                now_ms,
            )
            .map_err(|e| anyhow!("cannot write the pacs.008: {e}"))?;
            match &file {
                Some(file) => std::fs::write(file, &xml)
                    .with_context(|| format!("cannot write {}", file.display()))?,
                None if !send => {
                    print!("{xml}");
                    return Ok(Exit::Success);
                }
                None => {}
            }
            if !send {
                if let Some(file) = &file {
                    out.show(
                        &serde_json::json!({
                            "file": file,
                            "hash": verified.hash(),
                            "end_to_end_id": match &tx.body {
                                Body::Transfer { end_to_end_id, .. } => end_to_end_id.clone(),
                                _ => String::new(),
                            },
                        }),
                        || {
                            fields(&[
                                ("wrote", file.display().to_string()),
                                ("transaction", verified.hash().to_hex()),
                            ])
                        },
                    )?;
                }
                return Ok(Exit::Success);
            }
            let (status, answer) = node.xml(
                Method::POST,
                "/v1/iso20022/pacs.008",
                &[],
                Some(xml.into_bytes()),
            )?;
            show_status(out, status, &answer, None)
        }
        IsoCommand::Submit { file, out: answer } => {
            let xml =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let (status, reply) =
                node.xml(Method::POST, "/v1/iso20022/pacs.008", &[], Some(xml))?;
            show_status(out, status, &reply, answer.as_deref())
        }
        IsoCommand::Status {
            end_to_end_id,
            debtor,
            out: answer,
            ..
        } => {
            let query: Vec<(&str, String)> = debtor
                .map(|d| vec![("debtor", d.to_hex())])
                .unwrap_or_default();
            let path = format!("/v1/iso20022/pacs.002/{}", encode_segment(&end_to_end_id));
            let (status, reply) = node.xml(Method::GET, &path, &query, None)?;
            show_status(out, status, &reply, answer.as_deref())
        }
    }
}

/// Percent-encodes a path segment (an end-to-end id is printable ASCII, spaces and `/`
/// included).
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The statement of `bank` for `cycle` (the last closed one by default), as JSON from the
/// node.
pub fn fetch_statement(
    node: &Node,
    bank: &BankId,
    cycle: Option<u64>,
) -> Result<BankStatementView> {
    let cycle = cycle
        .map(|c| c.to_string())
        .unwrap_or_else(|| "latest".into());
    node.get(&format!("/v1/banks/{bank}/statements/{cycle}"), &[])
        .with_context(|| format!("cannot read the statement of {bank} for cycle {cycle}"))
}

/// `statement`: the JSON statement shown, or the camt.053 written.
pub fn statement(
    node_url: &str,
    out: Output,
    bank: &BankId,
    cycle: Option<u64>,
    xml: bool,
    file: Option<&Path>,
) -> Result<Exit> {
    let node = Node::new(node_url)?;
    if xml {
        let cycle = cycle
            .map(|c| c.to_string())
            .unwrap_or_else(|| "latest".into());
        let path = format!("/v1/banks/{bank}/statements/{cycle}");
        let (status, document) = node.xml(Method::GET, &path, &[], None)?;
        // Only a success is the statement: an XML-looking error page (a proxy's 502) must
        // not be saved as the bank's books.
        if !(200..300).contains(&status) {
            let start: String = document
                .chars()
                .take(120)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            return Err(anyhow!(
                "GET {path} answered {status}, not a statement: {start}"
            ));
        }
        match file {
            Some(file) => std::fs::write(file, &document)
                .with_context(|| format!("cannot write {}", file.display()))?,
            None => print!("{document}"),
        }
        return Ok(Exit::Success);
    }
    let view = fetch_statement(&node, bank, cycle)?;
    out.show(&view, || {
        let mut text = format!(
            "statement of {} for cycle {} (heights {} to {}), {}\n",
            view.bank, view.cycle, view.start_height, view.end_height, view.currency
        );
        text.push_str(&format!(
            "pool: opening {}, closing {}, {} entries\n",
            view.pool.opening_balance,
            view.pool.closing_balance,
            view.pool.entries.len()
        ));
        for account in &view.accounts {
            text.push_str(&format!(
                "{}: opening {}, closing {} (available {})\n",
                account.account,
                account.opening_balance,
                account.closing_balance,
                account.closing_available
            ));
            for entry in &account.entries {
                text.push_str(&format!(
                    "  {:>8}-{:<3} {:<6} {:>14}  {:<35} balance {}\n",
                    entry.height,
                    entry.position,
                    entry.direction.as_str(),
                    entry.amount,
                    entry.end_to_end_id.as_deref().unwrap_or("-"),
                    entry.balance_after
                ));
            }
        }
        text.push_str(&format!(
            "{} accounts without movement",
            view.accounts_without_movement
        ));
        text
    })?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teststub::{self, Reply};

    /// `statement --xml` saves a statement only: an error page that looks like XML (a
    /// proxy's 502) is an error, and no file is written. Before, it was saved as the
    /// camt.053 and the command exited 0.
    #[test]
    fn an_error_page_is_not_saved_as_the_statement() {
        let stub = teststub::serve(|_| Reply {
            status: 502,
            content_type: "text/html",
            body: "<html><body>502 Bad Gateway</body></html>".into(),
        });
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("statement.xml");
        let bank = BankId::new("BANK_A").expect("id");
        let error = statement(
            &stub.url,
            Output { json: false },
            &bank,
            Some(3),
            true,
            Some(&file),
        )
        .expect_err("a 502 is no statement");
        assert!(format!("{error:#}").contains("502"), "{error:#}");
        assert!(!file.exists(), "nothing written");
    }
}
