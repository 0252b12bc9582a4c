//! `kafsim run` (not implemented yet).

#[derive(clap::Args)]
pub struct RunArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: RunArgs) -> u8 {
    eprintln!("kafsim run: not implemented yet");
    super::EXIT_BAD_INPUT
}
