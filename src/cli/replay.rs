//! `kafsim replay` (not implemented yet).

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: ReplayArgs) -> u8 {
    eprintln!("kafsim replay: not implemented yet");
    super::EXIT_BAD_INPUT
}
