//! `kafsim check` (not implemented yet).

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: CheckArgs) -> u8 {
    eprintln!("kafsim check: not implemented yet");
    super::EXIT_BAD_INPUT
}
