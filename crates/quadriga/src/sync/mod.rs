//! Synchronisation across processes: `Lock`, `Semaphore`, `Event`, `Barrier`.
//!
//! Like the [`ipc`](crate::ipc) objects, each works between threads and
//! between processes (pass it in a task's input). A process that dies holding
//! a lock or a permit does not deadlock the rest: the next taker gets it and is
//! told that its owner died, so it can repair what the dead one left.
