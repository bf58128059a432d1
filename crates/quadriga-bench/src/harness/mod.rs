//! What every suite shares: [`timing`] (warm-up, repetitions, median and min),
//! [`report`] (rows, the table, the JSON file), [`machine`] (what the numbers
//! were measured on), [`peer`] (peers written in other languages) and
//! [`venv`] (the virtualenv that Python peers' packages install into).

pub(crate) mod machine;
pub(crate) mod peer;
pub(crate) mod report;
pub(crate) mod timing;
pub(crate) mod venv;
