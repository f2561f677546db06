//! `HEAVY`: lets a test that measures throughput run alone among the
//! daemons of the process.
//!
//! When each module was its own test binary, the throughput test of
//! `events` took a lock of its binary exclusively, and the other tests of
//! that binary took it shared, so it measured with no other daemon of its
//! process running. All modules now share one process, so the lock lives
//! here and every in-process daemon takes it shared: `spawn_in` holds a
//! shared guard for the life of the `TestApp`, and a test may hold one
//! itself (`HEAVY.read()`). Tests without an in-process daemon (`deploy`,
//! the child processes of `durability`, the CLI runs) do not take it.
//!
//! `HEAVY.write()` waits until no other thread holds a shared guard. While
//! it waits, a thread that holds none cannot take one, but a thread that
//! already holds one can take more: a test starting its second daemon never
//! waits for a writer that waits for that test. The writer's own thread is
//! never held back (the throughput test starts its own daemons). A test
//! must therefore start its daemons on its own thread (not inside a spawned
//! task), which every test does.

use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

/// The lock; see the module documentation.
pub static HEAVY: Heavy = Heavy {
    state: Mutex::new(State {
        shared: Vec::new(),
        writer: None,
        held: false,
    }),
};

/// How often a waiting guard looks again.
const POLL: Duration = Duration::from_millis(5);

pub struct Heavy {
    state: Mutex<State>,
}

struct State {
    /// Shared guards held, per thread.
    shared: Vec<(ThreadId, usize)>,
    /// The thread that holds or waits for the exclusive guard.
    writer: Option<ThreadId>,
    /// Whether the writer holds it (rather than waits for it).
    held: bool,
}

impl State {
    fn holds_shared(&self, thread: ThreadId) -> bool {
        self.shared.iter().any(|(t, _)| *t == thread)
    }
}

impl Heavy {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A shared guard: waits while another thread holds the exclusive one,
    /// or waits for it and this thread holds no shared guard yet.
    pub async fn read(&'static self) -> Shared {
        let me = std::thread::current().id();
        loop {
            {
                let mut s = self.state();
                let wait = match s.writer {
                    Some(w) if w != me => s.held || !s.holds_shared(me),
                    _ => false,
                };
                if !wait {
                    match s.shared.iter_mut().find(|(t, _)| *t == me) {
                        Some((_, n)) => *n += 1,
                        None => s.shared.push((me, 1)),
                    }
                    return Shared {
                        heavy: self,
                        thread: me,
                    };
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The exclusive guard: waits until no other thread holds a shared one.
    pub async fn write(&'static self) -> Exclusive {
        let me = std::thread::current().id();
        // Gives up the claim if this future is dropped while it waits.
        let mut claim = None;
        loop {
            {
                let mut s = self.state();
                if s.writer.is_none() {
                    s.writer = Some(me);
                    claim = Some(Exclusive { heavy: self });
                }
                if s.writer == Some(me) && s.shared.iter().all(|(t, _)| *t == me) {
                    s.held = true;
                    return claim.expect("this thread claimed the lock");
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A shared hold of [`HEAVY`], released on drop.
pub struct Shared {
    heavy: &'static Heavy,
    thread: ThreadId,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut s = self.heavy.state();
        if let Some(i) = s.shared.iter().position(|(t, _)| *t == self.thread) {
            s.shared[i].1 -= 1;
            if s.shared[i].1 == 0 {
                s.shared.swap_remove(i);
            }
        }
    }
}

/// The exclusive hold of [`HEAVY`] (or the claim on it while waiting),
/// released on drop.
pub struct Exclusive {
    heavy: &'static Heavy,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let mut s = self.heavy.state();
        s.writer = None;
        s.held = false;
    }
}
