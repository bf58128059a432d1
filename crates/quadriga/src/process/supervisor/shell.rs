//! The supervisor's I/O: one thread that waits on epoll, reads and writes the
//! workers' sockets, starts, signals and reaps workers, and feeds what happens
//! to the [`Core`], carrying out the actions it returns.

use std::borrow::Cow;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::Receiver;
use rustix::net::{RecvFlags, SendFlags, recv};

use crate::child::{self, Exit, Interest, Poller, Signal};
use crate::process::spawn::{self, SpawnConfig, Spawned};
use crate::process::wire::{self, Decoder, Down, Up};
use crate::task::batch::Batch;

use super::core::{Action, Core, Event, Flush, Rules, WorkerId};
use super::job::Command;
use super::waker::Waker;

/// What a descriptor in the poller is: the waker's eventfd, and per worker
/// its socket and its pidfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// The waker: commands are waiting.
    Wake,
    /// A worker's socket.
    Socket(WorkerId),
    /// A worker's pidfd: it has exited.
    Exit(WorkerId),
}

impl child::Token for Token {
    fn to_parts(self) -> (u8, u64) {
        match self {
            Token::Wake => (0, 0),
            Token::Socket(worker) => (1, worker as u64),
            Token::Exit(worker) => (2, worker as u64),
        }
    }

    fn from_parts(kind: u8, index: u64) -> Option<Self> {
        let worker = WorkerId::try_from(index).ok()?;
        match kind {
            0 => Some(Token::Wake),
            1 => Some(Token::Socket(worker)),
            2 => Some(Token::Exit(worker)),
            _ => None,
        }
    }
}

/// The pool's configuration, as the supervisor needs it.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) spawn: SpawnConfig,
    pub(crate) grace: std::time::Duration,
    pub(crate) max_tasks_per_worker: Option<u64>,
    /// Initializer task name ("" for none) and its encoded input.
    pub(crate) initializer: (String, Batch),
}

/// A worker's process and socket.
struct Conn {
    pid: u32,
    pidfd: OwnedFd,
    sock: OwnedFd,
    dec: Decoder,
    out: wire::Outbox,
    /// Listening for writability (the socket buffer was full).
    want_write: bool,
    /// Its socket reached end of file (it is no longer watched).
    hung_up: bool,
}

/// The supervisor thread's state: the core and every worker's descriptors.
pub(crate) struct Supervisor {
    spawn: SpawnConfig,
    initializer: (String, Batch),
    core: Core,
    poll: Poller<Token>,
    waker: Arc<Waker>,
    rx: Receiver<Command>,
    pids: Arc<Mutex<Vec<u32>>>,
    conns: Vec<Option<Conn>>,
    /// The time of this turn of the loop: read once after each wait, not
    /// per event (a turn lasts microseconds; the clock is not free).
    now: Instant,
    /// Where socket reads land before they are fed to a worker's decoder.
    scratch: Box<[u8]>,
}

impl Supervisor {
    pub(crate) fn new(
        cfg: Config,
        waker: Arc<Waker>,
        rx: Receiver<Command>,
        pids: Arc<Mutex<Vec<u32>>>,
    ) -> std::io::Result<Self> {
        let poll = Poller::new()?;
        poll.add(&*waker, Token::Wake, Interest::READ)?;
        let rules = Rules {
            workers: cfg.workers,
            grace: cfg.grace,
            max_tasks_per_worker: cfg.max_tasks_per_worker,
            memory_limit: cfg.spawn.memory_limit,
            own_pid: std::process::id(),
        };
        let now = Instant::now();
        Ok(Self {
            spawn: cfg.spawn,
            initializer: cfg.initializer,
            core: Core::new(rules, now),
            poll,
            waker,
            rx,
            pids,
            conns: Vec::new(),
            now,
            scratch: vec![0; 1 << 16].into_boxed_slice(),
        })
    }

    /// Runs until shut down and every worker is reaped.
    pub(crate) fn run(mut self) {
        let mut ready = Vec::with_capacity(64);
        loop {
            self.now = Instant::now();
            self.take_commands();
            self.feed(Event::Tick);
            self.flush_all();
            if self.core.is_finished() {
                break;
            }
            if let Err(err) = self.poll.wait(self.core.next_deadline(), &mut ready) {
                // Cannot wait: nothing can make progress. Fail everything.
                let why = format!("the supervisor could not wait for events: {err}");
                self.feed(Event::Fatal { why });
            }
            self.now = Instant::now();
            for &event in &ready {
                match event.token {
                    Token::Wake => self.waker.clear(),
                    Token::Socket(worker) => {
                        if event.is_writable() {
                            self.flush(worker);
                        }
                        // End of file and errors are found by reading.
                        if event.is_readable() || event.is_hangup() || event.is_error() {
                            self.read(worker);
                        }
                    }
                    Token::Exit(worker) => self.poll_exit(worker),
                }
            }
        }
    }

    /// Feeds `event` to the core and carries out what it asks, feeding back
    /// each answer as it comes (its own actions join the queue).
    fn feed(&mut self, event: Event) {
        self.core.handle(self.now, event);
        while let Some(action) = self.core.poll_action() {
            if let Some(reply) = self.perform(action) {
                self.core.handle(self.now, reply);
            }
        }
    }

    fn perform(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn { worker } => Some(match self.start_worker(worker) {
                Ok(pid) => Event::Spawned { worker, pid },
                Err(err) => Event::SpawnFailed {
                    worker,
                    why: err.to_string(),
                },
            }),
            Action::Run { worker, job } => {
                let conn = self.conns.get_mut(worker).and_then(Option::as_mut);
                let frame_end = match (conn, self.core.sent(worker, job)) {
                    (Some(c), Some((task, input))) => {
                        let msg = Down::Run {
                            job,
                            task: Cow::Borrowed(task),
                            input: Cow::Borrowed(input),
                        };
                        c.out
                            .push(&msg, self.spawn.max_frame)
                            .map_err(|e| e.to_string())
                    }
                    (None, _) => Err("the worker is gone".to_owned()),
                    (_, None) => Err("the job is no longer held".to_owned()),
                };
                Some(Event::Pushed {
                    worker,
                    job,
                    frame_end,
                })
            }
            Action::Exit { worker } => {
                if let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) {
                    let _ = c.out.push(&Down::Exit, usize::MAX);
                }
                None
            }
            Action::Signal { worker, sig } => {
                if let Some(c) = self.conns.get(worker).and_then(Option::as_ref) {
                    child::signal_group(c.pid, sig);
                }
                None
            }
            Action::Abandon { worker } => {
                if let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) {
                    c.out.clear();
                }
                None
            }
            Action::Finish(delivery) => {
                delivery.deliver();
                None
            }
        }
    }

    fn take_commands(&mut self) {
        self.waker.reset();
        while let Ok(cmd) = self.rx.try_recv() {
            self.feed(Event::Command(cmd));
        }
    }

    /// Starts a worker in slot `worker` and queues its initializer.
    fn start_worker(&mut self, worker: WorkerId) -> std::io::Result<u32> {
        let Spawned { pid, pidfd, sock } = spawn::spawn(&self.spawn)?;
        if self.conns.len() <= worker {
            self.conns.resize_with(worker + 1, || None);
        }
        self.poll
            .add(&sock, Token::Socket(worker), Interest::READ)?;
        self.poll.add(&pidfd, Token::Exit(worker), Interest::READ)?;
        let mut out = wire::Outbox::default();
        let (task, input) = &self.initializer;
        out.push(
            &Down::Init {
                task: Cow::Borrowed(task),
                input: Cow::Borrowed(input),
            },
            self.spawn.max_frame,
        )
        .map_err(std::io::Error::other)?;
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
        self.conns[worker] = Some(Conn {
            pid,
            pidfd,
            sock,
            dec: Decoder::new(self.spawn.max_frame),
            out,
            want_write: false,
            hung_up: false,
        });
        Ok(pid)
    }

    fn flush_all(&mut self) {
        for worker in 0..self.conns.len() {
            self.flush(worker);
        }
    }

    /// Writes what is pending to a worker, without blocking.
    fn flush(&mut self, worker: WorkerId) {
        if self.core.send_held(worker, self.now) {
            return;
        }
        let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) else {
            return;
        };
        if c.out.is_empty() && !c.want_write && !self.core.send_on_timer(worker) {
            // Nothing to write and nothing waiting on a write: no news.
            return;
        }
        let before = c.out.written();
        let result = match c.out.flush(c.sock.as_fd(), SendFlags::DONTWAIT) {
            Ok(_) => Flush::Sent,
            Err(err) if wire::is_shortage(err) => Flush::Shortage {
                err,
                moved: c.out.written() > before,
                written: c.out.written(),
            },
            Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => {
                c.out.clear();
                Flush::Gone
            }
            Err(err) => Flush::Failed(format!("could not write to the worker: {err}")),
        };
        self.feed(Event::Flushed { worker, result });
        let on_timer = self.core.send_on_timer(worker);
        let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) else {
            return;
        };
        let want_write = !c.out.is_empty() && !on_timer;
        if want_write != c.want_write && !c.hung_up {
            c.want_write = want_write;
            let interest = if want_write {
                Interest::READ_WRITE
            } else {
                Interest::READ
            };
            let _ = self.poll.modify(&c.sock, Token::Socket(worker), interest);
        }
    }

    /// Reads and handles what a worker sent.
    fn read(&mut self, worker: WorkerId) {
        loop {
            let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) else {
                return;
            };
            if c.hung_up {
                return;
            }
            match recv(&c.sock, &mut self.scratch[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    self.hung_up(worker);
                    self.handle_messages(worker);
                    return;
                }
                Ok((n, _)) => {
                    c.dec.feed(&self.scratch[..n]);
                    self.handle_messages(worker);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    self.hung_up(worker);
                    return;
                }
            }
        }
    }

    fn hung_up(&mut self, worker: WorkerId) {
        if let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) {
            c.hung_up = true;
            let _ = self.poll.delete(&c.sock);
        }
        self.feed(Event::HungUp { worker });
    }

    /// Decodes the frames a worker sent and feeds them to the core.
    fn handle_messages(&mut self, worker: WorkerId) {
        loop {
            let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) else {
                return;
            };
            let event = match c.dec.next::<Up>() {
                Ok(None) => return,
                Ok(Some(Up::Ready { protocol, .. })) if protocol == wire::PROTOCOL => {
                    Event::Ready { worker }
                }
                Ok(Some(Up::Ready { protocol, .. })) => {
                    let why = format!(
                        "the worker speaks protocol {protocol}, not {}",
                        wire::PROTOCOL
                    );
                    self.feed(Event::ProtocolError { worker, why });
                    return;
                }
                Ok(Some(Up::InitFailed { error })) => Event::InitFailed { worker, error },
                Ok(Some(Up::Done {
                    job,
                    nanos,
                    outcomes,
                })) => Event::Done {
                    worker,
                    job,
                    nanos,
                    outcomes,
                },
                Err(err) => {
                    let why = format!("the worker sent a malformed frame ({err})");
                    self.feed(Event::ProtocolError { worker, why });
                    return;
                }
            };
            self.feed(event);
        }
    }

    /// The pidfd is readable: reap the worker and let the core settle its
    /// jobs.
    fn poll_exit(&mut self, worker: WorkerId) {
        let Some(c) = self.conns.get_mut(worker).and_then(Option::as_mut) else {
            return;
        };
        let exit = match child::reap(&c.pidfd, false) {
            Ok(Some(exit)) => exit,
            Ok(None) => return,
            Err(_) => Exit::status(None, None),
        };
        // Read what it sent before dying: completed jobs must not be lost.
        self.read(worker);
        self.handle_messages(worker);
        let Some(c) = self.conns[worker].take() else {
            return;
        };
        let _ = self.poll.delete(&c.pidfd);
        if !c.hung_up {
            let _ = self.poll.delete(&c.sock);
        }
        // No grandchild outlives its worker.
        child::signal_group(c.pid, Signal::Kill);
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&p| p != c.pid);
        self.feed(Event::Died { worker, exit });
        // `c.pidfd` and `c.sock` close here.
    }
}

impl Drop for Supervisor {
    /// Whatever way the loop ended (even by a panic), no worker is left behind:
    /// kill each group and reap each process, then end every job still held.
    fn drop(&mut self) {
        for c in self.conns.iter_mut().filter_map(Option::take) {
            child::signal_group(c.pid, Signal::Kill);
            let _ = child::reap(&c.pidfd, true);
        }
        self.feed(Event::Stop);
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
