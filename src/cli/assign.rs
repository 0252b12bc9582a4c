//! `kafsim assign` (not implemented yet).

#[derive(clap::Args)]
pub struct AssignArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: AssignArgs) -> u8 {
    eprintln!("kafsim assign: not implemented yet");
    super::EXIT_BAD_INPUT
}
