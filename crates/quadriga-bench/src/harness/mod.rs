//! What every suite shares: [`timing`] (warm-up, repetitions, median and min),
//! [`report`] (rows, the table, the JSON file), [`machine`] (what the numbers
//! were measured on) and [`peer`] (peers written in other languages).

pub(crate) mod machine;
pub(crate) mod peer;
pub(crate) mod report;
pub(crate) mod timing;
