//! [`Stall`]: how a sender copes with sends the kernel refuses for now.

/// How a sender copes with sends refused for want of a kernel resource
/// ([`is_shortage`](crate::shm::passing::is_shortage)), the same for the supervisor and for a lone `Process`:
/// it retries after a wait that starts at 5 ms and doubles up to 250 ms
/// (not on writability: the socket has room, so that would wake at once,
/// again and again), and gives up once a receiver that waits for the stuck
/// frame has seen nothing move for [`Stall::LIMIT`].
#[derive(Debug)]
pub(crate) struct Stall {
    /// The wait before the next retry.
    delay: std::time::Duration,
    /// Since when nothing has moved while the receiver waits.
    since: Option<std::time::Instant>,
}

impl Default for Stall {
    fn default() -> Self {
        Self {
            delay: Self::FIRST,
            since: None,
        }
    }
}

impl Stall {
    /// How long a receiver that waits may see nothing move before the sender
    /// gives it up.
    pub(crate) const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
    const FIRST: std::time::Duration = std::time::Duration::from_millis(5);
    const MOST: std::time::Duration = std::time::Duration::from_millis(250);

    /// Something was sent: the next shortage starts afresh.
    pub(crate) fn moved(&mut self) {
        *self = Self::default();
    }

    /// A send refused with `err`, a shortage: how long to wait before the
    /// next try, or, once the receiver has waited (`waiting`: it waits for
    /// what is stuck; if not, the time does not count) for [`Stall::LIMIT`],
    /// why the sender gives up.
    pub(crate) fn refused(
        &mut self,
        err: rustix::io::Errno,
        waiting: bool,
        now: std::time::Instant,
    ) -> Result<std::time::Duration, String> {
        if !waiting {
            self.since = None;
        } else if now.duration_since(*self.since.get_or_insert(now)) >= Self::LIMIT {
            return Err(format!(
                "for {:?} the descriptors of its input could not be passed to it ({err}: too \
                 many descriptors in flight for this user's limit of open files, \
                 RLIMIT_NOFILE, or the kernel is short of memory)",
                Self::LIMIT
            ));
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(Self::MOST);
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_backs_off_and_gives_up_only_while_the_receiver_waits() {
        use std::time::{Duration, Instant};
        let err = rustix::io::Errno::TOOMANYREFS;
        let mut stall = Stall::default();
        let t0 = Instant::now();
        let waits: Vec<_> = (0..8)
            .map(|_| stall.refused(err, true, t0).unwrap())
            .collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 250, 250].map(ms));
        // Nothing moved for the limit while the receiver waited: give up.
        let why = stall.refused(err, true, t0 + Stall::LIMIT).unwrap_err();
        assert!(why.contains("RLIMIT_NOFILE"), "{why}");
        // A receiver busy with something else: the time does not count.
        assert!(stall.refused(err, false, t0 + Stall::LIMIT * 2).is_ok());
        assert!(stall.refused(err, true, t0 + Stall::LIMIT * 2).is_ok());
        // Progress starts the waits over.
        stall.moved();
        assert_eq!(stall.refused(err, true, t0), Ok(ms(5)));
    }
}
