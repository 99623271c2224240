//! The one thread that talks MPI. MPI handles are not `Send`, and OpenMPI's blocking calls spin a
//! core while they wait (measured: a receive idling 3 s used 3 s of CPU), so this thread owns MPI
//! from `MPI_Init` to `MPI_Finalize` and does not wait inside MPI while serving: it probes for
//! incoming messages without blocking and sleeps on its command channel in between, the sleep
//! growing from 20 µs to 1 ms while nothing happens (a few % of a core idle). Work from the server's
//! threads arrives on that channel and is sent at once. Only start-up (init, the exchange of
//! names) and the end (`MPI_Finalize`) are collective and block.
//!
//! Two tags keep headers and bytes apart: every `Message` travels on `CONTROL`, and the bytes of
//! a `Data` message are the sender's next message on `DATA`, received straight after its header.
//! Control messages are small (eager) blocking sends; data goes out as non-blocking sends that
//! complete while the loop goes on, so two nodes streaming to each other never wait on each
//! other's receive.

use super::message::{CLUSTER_VERSION, Message};
use super::push::{self, Chunk, Credit};
use super::{Marker, Members, Moved};
use crate::log::{debug, error, info, warning};
use crate::namespace::{Caused, FileId, Lent, Notice, Outbox, Sink, hashed_home};
use crate::persist;
use crate::shared::Shared;
use capio_proto::SlotState;
use mpi::Threading;
use mpi::point_to_point::MatchedReceiveVec;
use mpi::request::{Request, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const FIRST_NAP: Duration = Duration::from_micros(20);
const LONGEST_NAP: Duration = Duration::from_millis(1);
/// After the last message in or out, the thread keeps probing without sleeping for this long: a
/// workflow exchanging messages gets answers at the network's latency, not the nap's.
const SPIN_FOR: Duration = Duration::from_millis(5);
/// Room for one node's entry in the start-up exchange: its message version, then its processor
/// name (MPI_MAX_PROCESSOR_NAME is 256 here).
const ENTRY_BYTES: usize = 2 + 256;
/// How long a node that has finished waits without a word from one that has not. Stopping nodes
/// say `Working` every `WORKING_EVERY`, however long their persisting takes; silence this long
/// means dead or hung, and the job is aborted rather than left hanging in MPI_Finalize.
const STRAGGLER_LIMIT: Duration = Duration::from_secs(60);
const WORKING_EVERY: Duration = Duration::from_secs(5);
/// Tags: node messages, and the bytes that follow a `Data` message.
const CONTROL: i32 = 1;
const DATA: i32 = 2;

enum Command {
    /// Tell the other nodes what happened in this namespace.
    Notice(Notice),
    /// A pusher's bytes or seal for another node.
    Push(Chunk),
    /// May this node create `path` exclusively? The answer goes to `reply`.
    Claim(PathBuf, Sender<bool>),
    /// A granted claim of `path` is given up.
    Release(PathBuf),
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
    credit: Arc<Credit>,
    moved: Arc<Moved>,
}

/// The namespace's outbox: notices go to the MPI thread in the order they happen.
struct Notices(Sender<Command>);

impl Outbox for Notices {
    fn send(&self, notice: Notice) {
        let _ = self.0.send(Command::Notice(notice));
    }
}

/// Initialise MPI on its own thread and learn the members of the job; `Err` says why not. The
/// first node writes `marker` at once, before any node's server listens.
pub fn start(marker: PathBuf) -> Result<(Members, Option<Marker>, Link), String> {
    let (report, members) = mpsc::channel();
    let (commands, inbox) = mpsc::channel();
    let credit = Arc::new(Credit::default());
    let moved = Arc::new(Moved::default());
    let node = Node {
        commands: commands.clone(),
        credit: credit.clone(),
        moved: moved.clone(),
    };
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
            serve(&world, &joined, &inbox, &node);
            // `universe` drops here: MPI_Finalize, on the thread that initialised MPI.
        })
        .map_err(|e| format!("cannot start the MPI thread: {e}"))?;
    match members.recv() {
        Ok(Ok((joined, mark))) => Ok((
            joined,
            mark,
            Link {
                commands,
                thread,
                credit,
                moved,
            },
        )),
        Ok(Err(why)) => {
            let _ = thread.join();
            Err(why)
        }
        Err(_) => Err("the MPI thread ended during start-up".into()),
    }
}

impl Link {
    pub fn outbox(&self) -> Box<dyn Outbox> {
        Box::new(Notices(self.commands.clone()))
    }

    pub fn moved(&self) -> Arc<Moved> {
        self.moved.clone()
    }

    pub fn serve(&self, server: Weak<Shared>) {
        let _ = self.commands.send(Command::Serve(server));
    }

    pub fn announce_stop(&self, why: &str) {
        let _ = self.commands.send(Command::Stop(why.to_owned()));
    }

    /// Claim `path` for an exclusive create; the answer arrives on the returned channel.
    pub fn claim(&self, path: &Path) -> Receiver<bool> {
        let (reply, answer) = mpsc::channel();
        let _ = self
            .commands
            .send(Command::Claim(path.to_path_buf(), reply));
        answer
    }

    pub fn release(&self, path: &Path) {
        let _ = self.commands.send(Command::Release(path.to_path_buf()));
    }

    pub fn finish(self) {
        let _ = self.commands.send(Command::Finish);
        // Pushers waiting for room must not wait for a thread that is going away.
        self.credit.give(u64::MAX);
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

/// What the MPI thread shares with the server's other threads.
struct Node {
    /// Its own command channel, for the pushers it starts.
    commands: Sender<Command>,
    credit: Arc<Credit>,
    moved: Arc<Moved>,
}

/// A data send in flight and the buffer it reads (leaked until the send completes).
type Sending = (Request<'static, [u8], StaticScope>, *mut [u8]);

/// The MPI thread's state while serving.
struct Serving<'a> {
    world: &'a SimpleCommunicator,
    me: &'a Members,
    node: &'a Node,
    server: Option<Weak<Shared>>,
    /// What other nodes said before the server was handed over, delivered when it is.
    early: Vec<(usize, Message)>,
    /// Fetches of this node in flight, by number: where their bytes go.
    sinks: HashMap<u64, Sink>,
    /// Data being sent: each request with the buffer it reads, freed once the send completes.
    sending: Vec<Sending>,
    /// Where received bytes land before they are written to their replica.
    landing: Vec<u8>,
    /// Names this node arbitrates, by the node granted an exclusive create of each (dropped
    /// when that node's file goes).
    claims: HashMap<PathBuf, usize>,
    /// This node's claims waiting for their arbiter's answer, by number.
    asking: HashMap<u64, (PathBuf, Sender<bool>)>,
    /// This node has said Done: nothing but the shutdown's own messages goes out any more, and
    /// every other node must finish too.
    done: bool,
    next_claim: u64,
    /// Fetches of files this node has not heard of yet (kept here by a home policy, and asked
    /// for by a node that heard of them first), tried again as news arrives.
    parked: Vec<Parked>,
}

/// Fetch `id` of round `round` of file `file` (at `path`, for logs), by node `to`, from
/// `offset` on.
struct Parked {
    to: usize,
    id: u64,
    file: FileId,
    round: u32,
    path: PathBuf,
    offset: u64,
    since: Instant,
}

/// How long a fetch of a file this node does not know waits for it before it is refused.
const PARK_LIMIT: Duration = Duration::from_secs(10);

/// The thread's loop: deliver what arrives, send what the server asks, until this node and every
/// other one are done (so no message is left in flight at `MPI_Finalize`). Each node sends `Stop`
/// once, when its shutdown begins, then `Done` once, when it is over; MPI keeps the two in order.
fn serve(world: &SimpleCommunicator, me: &Members, inbox: &Receiver<Command>, node: &Node) {
    let mut st = Serving {
        world,
        me,
        node,
        server: None,
        early: Vec::new(),
        sinks: HashMap::new(),
        sending: Vec::new(),
        landing: Vec::new(),
        claims: HashMap::new(),
        asking: HashMap::new(),
        done: false,
        next_claim: 1,
        parked: Vec::new(),
    };
    let mut nodes_done = vec![false; me.hosts.len()];
    nodes_done[me.rank] = true;
    let mut heard = vec![Instant::now(); me.hosts.len()];
    let mut announced = false;
    let mut last_working = Instant::now();
    let mut nap = FIRST_NAP;
    let mut last_busy = Instant::now();
    loop {
        let mut busy = st.complete_sends();
        while let Some(matched) = world
            .any_process()
            .immediate_matched_probe_with_tag(CONTROL)
        {
            busy = true;
            let (bytes, status) = matched.matched_receive_vec::<u8>();
            let from = status.source_rank() as usize;
            heard[from] = Instant::now();
            match Message::decode(&bytes) {
                Ok(Message::Done) => nodes_done[from] = true,
                Ok(Message::Working) => {}
                Ok(Message::Data { id, offset, len }) => st.land(from, id, offset, len),
                Ok(message) => st.deliver(from, message),
                Err(e) => warning!("ignored a message from node {from}: {e}"),
            }
        }
        if st
            .parked
            .first()
            .is_some_and(|p| p.since.elapsed() >= PARK_LIMIT)
            && let Some(server) = st.live_server()
        {
            for parked in std::mem::take(&mut st.parked) {
                st.serve_fetch(&server, parked);
            }
        }
        if st.done {
            if nodes_done.iter().all(|&d| d) {
                st.drain_sends();
                return;
            }
            let silent: Vec<String> = (0..nodes_done.len())
                .filter(|&r| !nodes_done[r] && heard[r].elapsed() >= STRAGGLER_LIMIT)
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
            st.tell_every_other(&Message::Working);
            last_working = Instant::now();
        }
        if busy {
            last_busy = Instant::now();
        }
        let spinning = busy || last_busy.elapsed() < SPIN_FOR;
        let wait = if spinning { Duration::ZERO } else { nap };
        if spinning && !busy {
            // Probing again at once, but leaving the core to the steps meanwhile.
            thread::yield_now();
        }
        match inbox.recv_timeout(wait) {
            Ok(Command::Serve(s)) => {
                st.server = Some(s);
                for (from, message) in std::mem::take(&mut st.early) {
                    st.deliver(from, message);
                }
                busy = true;
            }
            Ok(Command::Notice(notice)) => {
                st.send_notice(notice);
                busy = true;
            }
            Ok(Command::Claim(path, reply)) => {
                st.claim(path, reply);
                busy = true;
            }
            Ok(Command::Release(path)) => {
                st.release(path);
                busy = true;
            }
            // Nothing goes out after this node said it is done: its peers may have left.
            Ok(Command::Push(_)) if st.done => {}
            Ok(Command::Push(chunk)) => {
                st.push(chunk);
                busy = true;
            }
            Ok(Command::Stop(why)) => {
                if !announced {
                    st.tell_every_other(&Message::Stop { why });
                    announced = true;
                    last_working = Instant::now();
                }
                busy = true;
            }
            Ok(Command::Finish) | Err(RecvTimeoutError::Disconnected) if !st.done => {
                if !announced {
                    let why = "its server stopped".to_owned();
                    st.tell_every_other(&Message::Stop { why });
                    announced = true;
                }
                st.tell_every_other(&Message::Done);
                st.done = true;
                // Silence is counted from now: the others may have been quiet while we worked.
                heard.fill(Instant::now());
                busy = true;
            }
            Ok(Command::Finish) => {}
            // No server left to wake us: nap here instead of on the channel.
            Err(RecvTimeoutError::Disconnected) => thread::sleep(wait),
            Err(RecvTimeoutError::Timeout) => {}
        }
        nap = if spinning {
            FIRST_NAP
        } else {
            (nap * 2).min(LONGEST_NAP)
        };
    }
}

impl Serving<'_> {
    fn send(&self, to: usize, message: &Message) {
        // After this node's Done its peers may have left MPI: only the shutdown's own messages
        // (a Working while the others finish) still go out.
        if self.done
            && !matches!(
                message,
                Message::Done | Message::Working | Message::Stop { .. }
            )
        {
            return;
        }
        let bytes = message.encode();
        self.world
            .process_at_rank(to as i32)
            .send_with_tag(&bytes[..], CONTROL);
    }

    /// Send `message` to every other node.
    fn tell_every_other(&self, message: &Message) {
        for rank in (0..self.me.hosts.len()).filter(|&r| r != self.me.rank) {
            self.send(rank, message);
        }
    }

    fn live_server(&self) -> Option<Arc<Shared>> {
        self.server.as_ref().and_then(Weak::upgrade)
    }

    /// Ask the arbiter of `path` (perhaps this node) whether this node may create it exclusively.
    fn claim(&mut self, path: PathBuf, reply: Sender<bool>) {
        let arbiter = hashed_home(&path, self.me.hosts.len());
        if arbiter == self.me.rank {
            let _ = reply.send(self.grant(self.me.rank, path));
            return;
        }
        let id = self.next_claim;
        self.next_claim += 1;
        self.send(
            arbiter,
            &Message::Claim {
                id,
                path: path.clone(),
            },
        );
        self.asking.insert(id, (path, reply));
    }

    fn release(&mut self, path: PathBuf) {
        let arbiter = hashed_home(&path, self.me.hosts.len());
        if arbiter == self.me.rank {
            self.drop_claim(self.me.rank, &path);
        } else {
            self.send(arbiter, &Message::Release { path });
        }
    }

    /// As the arbiter of `path`: the first node to claim it gets it, until its file goes (the
    /// same node asking again gets it again: its own namespace decides between its steps). A name
    /// this node knows a file of, from another writer, is taken already.
    fn grant(&mut self, node: usize, path: PathBuf) -> bool {
        if let Some(&holder) = self.claims.get(&path) {
            return holder == node;
        }
        let writer = self.live_server().and_then(|s| s.ns().writer_of(&path));
        if writer.is_some_and(|w| w != node) {
            return false;
        }
        self.claims.insert(path, node);
        true
    }

    /// `node`'s file at `path` went (or its claim was given up): the name is free again.
    fn drop_claim(&mut self, node: usize, path: &Path) {
        if self.claims.get(path) == Some(&node) {
            self.claims.remove(path);
        }
    }

    /// What the namespace asks: announcements go to every node, requests to a file's home.
    fn send_notice(&mut self, notice: Notice) {
        // A name this node arbitrates is free again once its file goes.
        if let Notice::Removed { path } | Notice::Renamed { from: path, .. } = &notice {
            self.drop_claim(self.me.rank, path);
        }
        let path_message = match notice {
            Notice::Created(created) => Message::Created(created),
            Notice::State {
                path,
                state,
                len,
                round,
            } => Message::State {
                path,
                state: state as u32,
                len,
                round,
            },
            Notice::Removed { path } => Message::Removed { path },
            Notice::Renamed { from, to } => Message::Renamed { from, to },
            Notice::Apps { live, ended } => Message::Apps { live, ended },
            Notice::Fetch {
                from: source,
                file,
                round,
                path,
                id,
                sink,
            } => {
                let from = sink.from;
                self.sinks.insert(id, sink);
                let (writer, serial) = (file.writer as u64, file.serial);
                let fetch = Message::Fetch {
                    id,
                    writer,
                    serial,
                    round,
                    path,
                    from,
                };
                return self.send(source, &fetch);
            }
            Notice::Unlink { writer, path } => return self.send(writer, &Message::Unlink { path }),
        };
        self.tell_every_other(&path_message);
    }

    /// A pusher's chunk: the header, then the bytes as a non-blocking send on the data tag.
    fn push(&mut self, chunk: Chunk) {
        match chunk {
            Chunk::Seal {
                to,
                id,
                state,
                len,
                round,
            } => self.send(
                to,
                &Message::Seal {
                    id,
                    state: state as u32,
                    len,
                    round,
                },
            ),
            Chunk::Data {
                to,
                id,
                offset,
                bytes,
            } => {
                let len = bytes.len() as u64;
                self.send(to, &Message::Data { id, offset, len });
                let buffer: &'static mut [u8] = Box::leak(bytes.into_boxed_slice());
                let raw: *mut [u8] = buffer;
                let request = self
                    .world
                    .process_at_rank(to as i32)
                    .immediate_send_with_tag(StaticScope, &*buffer, DATA);
                self.sending.push((request, raw));
                self.node.moved.sent.fetch_add(len, Relaxed);
            }
        }
    }

    /// Free the buffers of the data sends that completed; true if any did.
    fn complete_sends(&mut self) -> bool {
        let before = self.sending.len();
        let mut still = Vec::with_capacity(before);
        for (request, raw) in self.sending.drain(..) {
            match request.test() {
                Ok(_) => {
                    // SAFETY: `raw` came from `Box::leak` in `push`, and its send has completed,
                    // so MPI no longer reads it and nothing else refers to it.
                    let buffer = unsafe { Box::from_raw(raw) };
                    self.node.credit.give(buffer.len() as u64);
                }
                Err(request) => still.push((request, raw)),
            }
        }
        self.sending = still;
        self.sending.len() != before
    }

    /// Before `MPI_Finalize`: every data send must have completed.
    fn drain_sends(&mut self) {
        for (request, raw) in self.sending.drain(..) {
            request.wait();
            // SAFETY: as in `complete_sends`: leaked by `push`, and its send is complete.
            drop(unsafe { Box::from_raw(raw) });
        }
    }

    /// The bytes of a `Data` header from `from`: its next message on the data tag. They go into
    /// the replica of fetch `id` and are published to its local readers.
    fn land(&mut self, from: usize, id: u64, offset: u64, len: u64) {
        let (message, status) = self
            .world
            .process_at_rank(from as i32)
            .matched_probe_with_tag(DATA);
        let got = status.count(u8::equivalent_datatype()) as usize;
        if got as u64 != len {
            warning!("node {from} sent {got} bytes for fetch {id} where it announced {len}");
        }
        self.landing.resize(got, 0);
        message.matched_receive_into(&mut self.landing[..]);
        self.node.moved.received.fetch_add(got as u64, Relaxed);
        // A fetch called off (its file is written anew) drops what is still on its way.
        let Some(sink) = self.sinks.get(&id).filter(|s| s.live.load(SeqCst)) else {
            return;
        };
        let Some(server) = self.live_server() else {
            return;
        };
        let Some(slot) = server.table.slot(sink.slot) else {
            return;
        };
        let end = offset + got as u64;
        let kept = slot
            .prepare_write(sink.file.as_fd(), offset, end, false)
            .and_then(|claimed| {
                let written = sink.file.write_all_at(&self.landing, offset);
                if written.is_err() {
                    slot.write_failed(sink.file.as_fd(), claimed, end);
                }
                written
            });
        if let Err(e) = kept {
            warning!("cannot keep bytes of fetch {id} from node {from}: {e}");
            return;
        }
        slot.publish(end);
    }

    /// A message from `from` for the namespace.
    fn deliver(&mut self, from: usize, message: Message) {
        let server = match self.server.as_ref().map(Weak::upgrade) {
            Some(Some(server)) => server,
            Some(None) => return, // already gone: it stopped
            None => return self.early.push((from, message)),
        };
        if let Message::Removed { path } | Message::Renamed { from: path, .. } = &message {
            self.drop_claim(from, path);
        }
        let caused = match message {
            Message::Claim { id, path } => {
                let granted = self.grant(from, path);
                return self.send(from, &Message::Claimed { id, granted });
            }
            Message::Claimed { id, granted } => {
                // An answer nobody waits for any more (it came too late) gives the name back.
                if let Some((path, reply)) = self.asking.remove(&id)
                    && reply.send(granted).is_err()
                    && granted
                {
                    self.release(path);
                }
                return;
            }
            Message::Release { path } => {
                self.drop_claim(from, &path);
                return;
            }
            Message::Stop { why } => {
                let why = format!("node {from} ({}) stopped: {why}", self.me.hosts[from]);
                server.begin_shutdown(&why);
                return;
            }
            Message::Created(mut created) => {
                // A node outside the job cannot keep it: its writer does.
                if created.home >= self.me.hosts.len() {
                    created.home = from;
                }
                let caused = server.ns().remote_created(from, created);
                // A fetch that came first (from a node that heard of the file first) goes on.
                for parked in std::mem::take(&mut self.parked) {
                    self.serve_fetch(&server, parked);
                }
                caused
            }
            Message::State {
                path,
                state,
                len,
                round,
            } => {
                let state = SlotState::from_u32(state);
                let caused = server.ns().remote_state(from, &path, (state, len, round));
                // A fetch of a round this node has just heard of goes on.
                for parked in std::mem::take(&mut self.parked) {
                    self.serve_fetch(&server, parked);
                }
                caused
            }
            Message::Removed { path } => {
                server.ns().remote_removed(from, &path);
                return;
            }
            Message::Renamed { from: src, to } => server.ns().remote_renamed(from, &src, &to),
            Message::Apps { live, ended } => server.ns().remote_apps(from, live, ended),
            Message::Unlink { path } => {
                server.ns().remote_unlink(from, &path);
                return;
            }
            Message::Seal {
                id,
                state,
                len,
                round,
            } => {
                self.sinks.remove(&id);
                let state = SlotState::from_u32(state);
                server.ns().fetch_sealed(id, (state, len, round))
            }
            Message::Fetch {
                id,
                writer,
                serial,
                round,
                path,
                from: offset,
            } => {
                let writer = usize::try_from(writer).unwrap_or(usize::MAX);
                let fetch = Parked {
                    to: from,
                    id,
                    file: FileId { writer, serial },
                    round,
                    path,
                    offset,
                    since: Instant::now(),
                };
                self.serve_fetch(&server, fetch);
                return;
            }
            Message::Done | Message::Working | Message::Data { .. } => return,
        };
        persist_in_background(&server, caused);
    }

    /// Node `to` wants the bytes of a file from `offset` on: a pusher follows the file. Another
    /// node's file this node keeps but has not heard of yet is parked until it has (or refused
    /// once parked too long); one of this node's own that is gone is refused at once.
    fn serve_fetch(&mut self, server: &Arc<Shared>, fetch: Parked) {
        let lent = server.ns().lend(fetch.file, fetch.round, fetch.offset);
        let (to, id, offset) = (fetch.to, fetch.id, fetch.offset);
        let seal = |state: SlotState, round| Message::Seal {
            id,
            state: state as u32,
            len: 0,
            round,
        };
        let (slot, file, round, mark) = match lent {
            Lent::Ready {
                slot,
                data,
                round,
                mark,
            } => (slot, data, round, mark),
            // Kept here, but not heard of (in that round) yet: the news is on its way.
            Lent::Gone | Lent::NotYet
                if fetch.file.writer != self.me.rank && fetch.since.elapsed() < PARK_LIMIT =>
            {
                return self.parked.push(fetch);
            }
            // The asker holds bytes of an older round: it starts over.
            Lent::Newer(round) => return self.send(to, &seal(SlotState::Open, round)),
            Lent::Gone | Lent::NotYet => {
                debug!("node {to} fetched {}: not here", fetch.path.display());
                return self.send(to, &seal(SlotState::Aborted, fetch.round));
            }
        };
        // A committed file that fits one message goes out at once, from this thread (if it did
        // not start over while it was read).
        let rest = push::committed_rest(&server.table, slot, &file, offset)
            .filter(|_| server.ns().round_of(slot).1 == mark);
        if let Some((bytes, len)) = rest {
            if !bytes.is_empty() {
                self.node.credit.charge(bytes.len() as u64);
                self.push(Chunk::Data {
                    to,
                    id,
                    offset,
                    bytes,
                });
            }
            let state = SlotState::Committed;
            self.push(Chunk::Seal {
                to,
                id,
                state,
                len,
                round,
            });
            server.ns().give_back(slot);
            return;
        }
        let fetch = push::Fetch {
            to,
            id,
            from: offset,
            slot,
            file,
            round,
            mark,
        };
        let commands = self.node.commands.clone();
        let started = push::spawn(
            Arc::downgrade(server),
            server.table.clone(),
            self.node.credit.clone(),
            fetch,
            move |chunk| commands.send(Command::Push(chunk)).is_ok(),
        );
        if let Err(e) = started {
            warning!("cannot start a thread to serve fetch {id} of node {to}: {e}");
            self.send(to, &seal(SlotState::Aborted, round));
            server.ns().give_back(slot);
        }
    }
}

/// Commits another node's news caused here (an `on_file` dependency met, a directory complete)
/// persist on a thread of their own: the MPI thread never copies files.
fn persist_in_background(server: &Arc<Shared>, caused: Caused) {
    if caused.is_empty() {
        return;
    }
    let work = server.begin_work();
    let server = server.clone();
    let spawned = thread::Builder::new()
        .name("persist".into())
        .spawn(move || persist::all(&server, caused, work.as_ref()));
    if let Err(e) = spawned {
        warning!("cannot start a thread to persist: {e}");
    }
}
