//! One module per subcommand. Each exposes `XArgs` (clap) and `main(XArgs) -> u8`, the exit
//! status: 0 = nothing counts as a failure, 1 = failures found / expectation not met,
//! 2 = bad input or usage (DESIGN §6).

pub mod assign;
pub mod bench;
pub mod campaign_report;
pub mod check;
pub mod common;
pub mod junit;
pub mod list;
pub mod merge;
pub mod partition;
pub mod replay;
pub mod run;
pub mod shrink;

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status when failures were found or an expectation was not met.
pub const EXIT_FAILURES: u8 = 1;
/// Exit status for bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 2;
