//! `kafsim list` (not implemented yet).

#[derive(clap::Args)]
pub struct ListArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: ListArgs) -> u8 {
    eprintln!("kafsim list: not implemented yet");
    super::EXIT_BAD_INPUT
}
