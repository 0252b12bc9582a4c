//! `kafsim bench` (not implemented yet).

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: BenchArgs) -> u8 {
    eprintln!("kafsim bench: not implemented yet");
    super::EXIT_BAD_INPUT
}
