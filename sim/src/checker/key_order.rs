//! placeholder
use super::index::HistoryIndex;
use super::{CheckConfig, Collector};
use crate::history::History;
pub fn check(_h: &History, _i: &HistoryIndex, _c: &CheckConfig, _o: &mut Collector) {}
