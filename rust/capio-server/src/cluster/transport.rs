//! The one thread that talks MPI. MPI handles are not `Send`, and OpenMPI's blocking calls spin a
//! core while they wait (measured: a receive idling 3 s used 3 s of CPU), so this thread owns MPI
//! from `MPI_Init` to `MPI_Finalize` and does not wait inside MPI while serving: it probes for
//! incoming messages without blocking and sleeps on its command channel in between, the sleep
//! growing from 20 µs to 1 ms while nothing happens (~2% of a core idle). Work from the server's
//! threads arrives on that channel and is sent at once (small eager sends). Only start-up (init,
//! the exchange of names) and the end (`MPI_Finalize`) are collective and block.

use super::message::{CLUSTER_VERSION, Message};
use super::{Marker, Members};
use crate::log::{error, info, warning};
use crate::shared::Shared;
use mpi::Threading;
use mpi::point_to_point::MatchedReceiveVec;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::path::PathBuf;
use std::sync::Weak;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const FIRST_NAP: Duration = Duration::from_micros(20);
const LONGEST_NAP: Duration = Duration::from_millis(1);
/// Room for one node's entry in the start-up exchange: its message version, then its processor
/// name (MPI_MAX_PROCESSOR_NAME is 256 here).
const ENTRY_BYTES: usize = 2 + 256;
/// How long a node that has finished waits without a word from one that has not. Stopping nodes
/// say `Working` every `WORKING_EVERY`, however long their persisting takes; silence this long
/// means dead or hung, and the job is aborted rather than left hanging in MPI_Finalize.
const STRAGGLER_LIMIT: Duration = Duration::from_secs(60);
const WORKING_EVERY: Duration = Duration::from_secs(5);

enum Command {
    /// Start delivering what other nodes say to this server (weakly held: the server owns us).
    Serve(Weak<Shared>),
    /// Tell every other node that this one stops (sent once, whoever asks again).
    Stop(String),
    /// The server is done: say so, wait until every other node is done too, then finalize MPI.
    Finish,
}

/// The server's end of the MPI thread.
pub struct Link {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

/// Initialise MPI on its own thread and learn the members of the job; `Err` says why not. The
/// first node writes `marker` at once, before any node's server listens.
pub fn start(marker: PathBuf) -> Result<(Members, Option<Marker>, Link), String> {
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
            let mark = (world.rank() == 0).then(|| Marker::write(marker)).flatten();
            let joined = match exchange_names(&world) {
                Ok(joined) => joined,
                Err(why) => {
                    // Every node sees the same table, so every node refuses: all finalize.
                    let _ = report.send(Err(why));
                    return;
                }
            };
            info!(
                "node {} of {} ({}), MPI threading {threading:?}",
                joined.rank,
                joined.hosts.len(),
                joined.hosts[joined.rank]
            );
            let _ = report.send(Ok((joined.clone(), mark)));
            serve(&world, &joined, &inbox);
            // `universe` drops here: MPI_Finalize, on the thread that initialised MPI.
        })
        .map_err(|e| format!("cannot start the MPI thread: {e}"))?;
    match members.recv() {
        Ok(Ok((joined, mark))) => Ok((joined, mark, Link { commands, thread })),
        Ok(Err(why)) => {
            let _ = thread.join();
            Err(why)
        }
        Err(_) => Err("the MPI thread ended during start-up".into()),
    }
}

impl Link {
    pub fn serve(&self, server: Weak<Shared>) {
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

/// Every node's message version and processor name, gathered once at start-up (a collective:
/// every node is starting). Nodes of different pycapio versions refuse to form one job.
fn exchange_names(world: &SimpleCommunicator) -> Result<Members, String> {
    let name = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
    let mut mine = [0u8; ENTRY_BYTES];
    mine[..2].copy_from_slice(&CLUSTER_VERSION.to_le_bytes());
    let n = name.len().min(ENTRY_BYTES - 2);
    mine[2..2 + n].copy_from_slice(&name.as_bytes()[..n]);
    let size = world.size() as usize;
    let mut all = vec![0u8; ENTRY_BYTES * size];
    world.all_gather_into(&mine[..], &mut all[..]);
    let mut hosts = Vec::with_capacity(size);
    for (rank, entry) in all.chunks(ENTRY_BYTES).enumerate() {
        let version = u16::from_le_bytes([entry[0], entry[1]]);
        let name = &entry[2..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let host = String::from_utf8_lossy(&name[..end]).into_owned();
        if version != CLUSTER_VERSION {
            return Err(format!(
                "node {rank} ({host}) speaks node message version {version}, this server \
                 {CLUSTER_VERSION}: every node must run the same pycapio"
            ));
        }
        hosts.push(host);
    }
    Ok(Members {
        rank: world.rank() as usize,
        hosts,
    })
}

/// The thread's loop: deliver what arrives, send what the server asks, until this node and every
/// other one are done (so no message is left in flight at `MPI_Finalize`). Each node sends `Stop`
/// once, when its shutdown begins, then `Done` once, when it is over; MPI keeps the two in order.
fn serve(world: &SimpleCommunicator, me: &Members, inbox: &Receiver<Command>) {
    let mut server: Option<Weak<Shared>> = None;
    // A stop heard before the server was handed over is delivered when it is.
    let mut early_stop: Option<String> = None;
    let mut done = vec![false; me.hosts.len()];
    done[me.rank] = true;
    let mut heard = vec![Instant::now(); me.hosts.len()];
    let mut announced = false;
    let mut last_working = Instant::now();
    // Set once the server is done: by then every other node must finish too.
    let mut finishing = false;
    let mut nap = FIRST_NAP;
    loop {
        let mut busy = false;
        while let Some(matched) = world.any_process().immediate_matched_probe() {
            busy = true;
            let (bytes, status) = matched.matched_receive_vec::<u8>();
            let from = status.source_rank() as usize;
            heard[from] = Instant::now();
            match Message::decode(&bytes) {
                Ok(Message::Done) => done[from] = true,
                Ok(Message::Working) => {}
                Ok(Message::Stop { why }) => {
                    let why = format!("node {from} ({}) stopped: {why}", me.hosts[from]);
                    match server.as_ref().map(Weak::upgrade) {
                        Some(Some(s)) => s.begin_shutdown(&why),
                        Some(None) => {} // already gone: it stopped
                        None => early_stop = Some(why),
                    }
                }
                Err(e) => warning!("ignored a message from node {from}: {e}"),
            }
        }
        if finishing {
            if done.iter().all(|&d| d) {
                return;
            }
            let silent: Vec<String> = (0..done.len())
                .filter(|&r| !done[r] && heard[r].elapsed() >= STRAGGLER_LIMIT)
                .map(|r| format!("{r} ({})", me.hosts[r]))
                .collect();
            if !silent.is_empty() {
                error!(
                    "nodes {} went silent before finishing their shutdown: aborting the MPI job \
                     rather than hang",
                    silent.join(", ")
                );
                world.abort(1);
            }
        } else if announced && last_working.elapsed() >= WORKING_EVERY {
            tell_every_other(world, me, &Message::Working);
            last_working = Instant::now();
        }
        let wait = if busy { Duration::ZERO } else { nap };
        match inbox.recv_timeout(wait) {
            Ok(Command::Serve(s)) => {
                if let (Some(why), Some(live)) = (early_stop.take(), s.upgrade()) {
                    live.begin_shutdown(&why);
                }
                server = Some(s);
                busy = true;
            }
            Ok(Command::Stop(why)) => {
                if !announced {
                    tell_every_other(world, me, &Message::Stop { why });
                    announced = true;
                    last_working = Instant::now();
                }
                busy = true;
            }
            Ok(Command::Finish) | Err(RecvTimeoutError::Disconnected) if !finishing => {
                if !announced {
                    let why = "its server stopped".to_owned();
                    tell_every_other(world, me, &Message::Stop { why });
                    announced = true;
                }
                tell_every_other(world, me, &Message::Done);
                // Silence is counted from now: the others may have been quiet while we worked.
                heard.fill(Instant::now());
                finishing = true;
                busy = true;
            }
            Ok(Command::Finish) => {}
            // No server left to wake us: nap here instead of on the channel.
            Err(RecvTimeoutError::Disconnected) => thread::sleep(wait),
            Err(RecvTimeoutError::Timeout) => {}
        }
        nap = if busy {
            FIRST_NAP
        } else {
            (nap * 2).min(LONGEST_NAP)
        };
    }
}

/// Send `message` to every other node.
fn tell_every_other(world: &SimpleCommunicator, me: &Members, message: &Message) {
    let bytes = message.encode();
    for rank in (0..me.hosts.len()).filter(|&r| r != me.rank) {
        world.process_at_rank(rank as i32).send(&bytes[..]);
    }
}
