//! The one thread that talks MPI. MPI handles are not `Send`, and OpenMPI's blocking calls spin a
//! core while they wait (measured: a receive idling 3 s used 3 s of CPU), so this thread owns MPI
//! from `MPI_Init` to `MPI_Finalize` and never blocks inside it once serving: it probes for
//! incoming messages without blocking and sleeps on its command channel in between, the sleep
//! growing from 20 µs to 1 ms while nothing happens (~2% of a core idle). Work from the server's
//! threads arrives on that channel and is sent at once.

use super::Members;
use super::message::Message;
use crate::log::{info, warning};
use crate::shared::Shared;
use mpi::Threading;
use mpi::point_to_point::MatchedReceiveVec;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const FIRST_NAP: Duration = Duration::from_micros(20);
const LONGEST_NAP: Duration = Duration::from_millis(1);
/// Room for one processor name in the start-up exchange (MPI_MAX_PROCESSOR_NAME is 256 here).
const NAME_BYTES: usize = 256;

enum Command {
    /// Start delivering what other nodes say to this server.
    Serve(Arc<Shared>),
    /// Tell every other node that this one stops (sent once, whoever asks again).
    Stop(String),
    /// The server is done: wait for every other node's `Stop`, then finalize MPI.
    Finish,
}

/// The server's end of the MPI thread.
pub struct Link {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

/// Initialise MPI on its own thread and learn the members of the job; `Err` says why not.
pub fn start() -> Result<(Members, Link), String> {
    let (report, members) = mpsc::channel();
    let (commands, inbox) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("mpi".into())
        .spawn(move || {
            let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Multiple)
            else {
                let _ = report.send(Err("MPI was already initialised in this process".into()));
                return;
            };
            let world = universe.world();
            let joined = exchange_names(&world);
            let _ = report.send(Ok(joined.clone()));
            info!(
                "node {} of {} ({}), MPI threading {threading:?}",
                joined.rank,
                joined.hosts.len(),
                joined.hosts[joined.rank]
            );
            serve(&world, &joined, &inbox);
            // `universe` drops here: MPI_Finalize, on the thread that initialised MPI.
        })
        .map_err(|e| format!("cannot start the MPI thread: {e}"))?;
    match members.recv() {
        Ok(Ok(joined)) => Ok((joined, Link { commands, thread })),
        Ok(Err(why)) => Err(why),
        Err(_) => Err("the MPI thread ended during start-up".into()),
    }
}

impl Link {
    pub fn serve(&self, server: Arc<Shared>) {
        let _ = self.commands.send(Command::Serve(server));
    }

    pub fn announce_stop(&self, why: &str) {
        let _ = self.commands.send(Command::Stop(why.to_owned()));
    }

    pub fn finish(self) {
        let _ = self.commands.send(Command::Finish);
        if self.thread.join().is_err() {
            warning!("the MPI thread panicked");
        }
    }
}

/// Every rank's processor name, gathered once at start-up (a collective: every rank is starting).
fn exchange_names(world: &SimpleCommunicator) -> Members {
    let name = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
    let mut mine = [0u8; NAME_BYTES];
    let n = name.len().min(NAME_BYTES);
    mine[..n].copy_from_slice(&name.as_bytes()[..n]);
    let size = world.size() as usize;
    let mut all = vec![0u8; NAME_BYTES * size];
    world.all_gather_into(&mine[..], &mut all[..]);
    let hosts = all
        .chunks(NAME_BYTES)
        .map(|c| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            String::from_utf8_lossy(&c[..end]).into_owned()
        })
        .collect();
    Members {
        rank: world.rank() as usize,
        hosts,
    }
}

/// The thread's loop: deliver what arrives, send what the server asks, until finished and every
/// other node has said it stops (so no message is left in flight at `MPI_Finalize`).
fn serve(world: &SimpleCommunicator, me: &Members, inbox: &Receiver<Command>) {
    let mut server: Option<Arc<Shared>> = None;
    // A stop heard before the server was handed over is delivered when it is.
    let mut early_stop: Option<String> = None;
    let mut stopped = vec![false; me.hosts.len()];
    stopped[me.rank] = true;
    let mut announced = false;
    let mut finishing = false;
    let mut nap = FIRST_NAP;
    loop {
        let mut busy = false;
        while let Some(matched) = world.any_process().immediate_matched_probe() {
            busy = true;
            let (bytes, status) = matched.matched_receive_vec::<u8>();
            let from = status.source_rank() as usize;
            match Message::decode(&bytes) {
                Ok(Message::Stop { why }) => {
                    stopped[from] = true;
                    let why = format!("node {from} ({}) stopped: {why}", me.hosts[from]);
                    match &server {
                        Some(s) => s.begin_shutdown(&why),
                        None => early_stop = Some(why),
                    }
                }
                Err(e) => warning!("ignored a message from node {from}: {e}"),
            }
        }
        if finishing && announced && stopped.iter().all(|&s| s) {
            return;
        }
        let wait = if busy { Duration::ZERO } else { nap };
        match inbox.recv_timeout(wait) {
            Ok(Command::Serve(s)) => {
                if let Some(why) = early_stop.take() {
                    s.begin_shutdown(&why);
                }
                server = Some(s);
                busy = true;
            }
            Ok(Command::Stop(why)) => {
                announced = announced || tell_every_other(world, me, why);
                busy = true;
            }
            Ok(Command::Finish) | Err(RecvTimeoutError::Disconnected) => {
                announced = announced || tell_every_other(world, me, "its server stopped".into());
                // Drop the server now: its Arc must not outlive the shutdown that asked us.
                server = None;
                finishing = true;
                busy = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        nap = if busy {
            FIRST_NAP
        } else {
            (nap * 2).min(LONGEST_NAP)
        };
    }
}

/// Send `Stop` to every other node; true once sent.
fn tell_every_other(world: &SimpleCommunicator, me: &Members, why: String) -> bool {
    let bytes = Message::Stop { why }.encode();
    for rank in (0..me.hosts.len()).filter(|&r| r != me.rank) {
        world.process_at_rank(rank as i32).send(&bytes[..]);
    }
    true
}
