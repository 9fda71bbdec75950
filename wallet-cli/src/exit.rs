//! Exit codes, one meaning each, so scripts can branch on them.

use std::process::ExitCode;

use interpool_contracts::views::TxStatus;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; a waited-for transaction was committed.
    Success,
    /// 1: the transaction was rejected or expired, or something failed.
    Failure,
    /// 2: the command line was wrong.
    Usage,
    /// 3: `--wait` timed out while the transaction was still pending or queued.
    StillPending,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::StillPending => 3,
        }
    }

    /// The exit for a transaction that was waited for and last seen in `status`.
    pub fn for_status(status: TxStatus) -> Exit {
        match status {
            TxStatus::Committed => Exit::Success,
            TxStatus::Rejected
            | TxStatus::Expired
            | TxStatus::Cancelled
            | TxStatus::RejectTime
            | TxStatus::Cutoff => Exit::Failure,
            TxStatus::Pending | TxStatus::Queued | TxStatus::Unknown => Exit::StillPending,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// True once nothing more will happen to a transaction in `status`.
pub fn is_final(status: TxStatus) -> bool {
    matches!(
        status,
        TxStatus::Committed
            | TxStatus::Rejected
            | TxStatus::Expired
            | TxStatus::Cancelled
            | TxStatus::RejectTime
            | TxStatus::Cutoff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_to_one_exit_code() {
        let cases = [
            (TxStatus::Committed, 0, true),
            (TxStatus::Rejected, 1, true),
            (TxStatus::Expired, 1, true),
            (TxStatus::Cancelled, 1, true),
            (TxStatus::RejectTime, 1, true),
            (TxStatus::Cutoff, 1, true),
            (TxStatus::Pending, 3, false),
            (TxStatus::Queued, 3, false),
            (TxStatus::Unknown, 3, false),
        ];
        for (status, code, last) in cases {
            assert_eq!(Exit::for_status(status).code(), code, "{status:?}");
            assert_eq!(is_final(status), last, "{status:?}");
        }
        assert_eq!(Exit::Usage.code(), 2);
    }
}
