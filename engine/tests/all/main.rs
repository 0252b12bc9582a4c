//! kafsim-engine's integration tests (assertion density of the stateful core; the
//! assignors and partitioners against the real clients' values), one module per subject in
//! one test binary (issue 18). Run one with `cargo test -p kafsim-engine --test all SUBJECT::`.

mod assert_density;
mod assignor_oracle;
mod assignor_properties;
mod partitioner_oracle;
