//! The partition log. (Placeholder until the broker branch lands; only producer state.)

pub mod producer_state;
