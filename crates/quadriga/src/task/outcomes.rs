//! [`Outcomes`]: what running a task on a [`Batch`] gave, item by item.

use serde::{Deserialize, Serialize};

use super::batch::Batch;
use crate::error::TaskError;

/// The outcome of each item of a batch: encoded outputs, or errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcomes {
    pub(crate) outputs: Batch,
    /// Per item: `None` for an output (the next one in `outputs`), or its error.
    pub(crate) errors: Vec<Option<TaskError>>,
}

impl Outcomes {
    pub(crate) fn push_ok(&mut self, raw: &[u8]) {
        self.outputs.push_raw(raw, &[]);
        self.errors.push(None);
    }

    pub(crate) fn push_err(&mut self, err: TaskError) {
        self.errors.push(Some(err));
    }

    /// `n` items, each ending with a clone of `err`.
    pub(crate) fn all_failed(n: usize, err: &TaskError) -> Self {
        Self {
            outputs: Batch::default(),
            errors: (0..n).map(|_| Some(err.clone())).collect(),
        }
    }

    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// Rewrites every error with `f`.
    pub(crate) fn map_errors(&mut self, f: impl Fn(TaskError) -> TaskError) {
        for slot in &mut self.errors {
            if let Some(err) = slot.take() {
                *slot = Some(f(err));
            }
        }
    }

    /// Makes it exactly `n` items: extra ones are dropped, missing ones end
    /// with `fill()`.
    pub(crate) fn fit(&mut self, n: usize, fill: impl Fn() -> TaskError) {
        self.errors.truncate(n);
        while self.errors.len() < n {
            self.errors.push(Some(fill()));
        }
    }

    /// Each item's encoded output or its error, in order, without copying.
    /// `Err(None)`: the batch claims an output it does not hold (malformed).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<&[u8], Option<&TaskError>>> {
        let mut next_output = 0;
        self.errors.iter().map(move |err| match err {
            Some(err) => Err(Some(err)),
            None => {
                let raw = self.outputs.item(next_output);
                next_output += 1;
                raw.ok_or(None)
            }
        })
    }

    /// Iterates over each item's raw output or error, in order.
    pub(crate) fn into_items(self) -> impl Iterator<Item = Result<Vec<u8>, TaskError>> {
        let mut next_output = 0;
        let outputs = self.outputs;
        self.errors.into_iter().map(move |err| match err {
            Some(err) => Err(err),
            None => {
                let raw = outputs.item(next_output).map(<[u8]>::to_vec);
                next_output += 1;
                raw.ok_or_else(|| TaskError::codec("a worker sent fewer outputs than it reported"))
            }
        })
    }
}
