//! One client's life on its connection: the `Hello` gate, the request loop, and the clean-up when
//! the connection ends (a crash unless the client sent `Exit`).

use crate::connection::Connection;
use crate::handlers::{self, Greeted};
use crate::log::{debug, warning};
use crate::shared::Shared;
use capio_proto::Kind;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub fn serve(server: Arc<Shared>, stream: UnixStream, peer_pid: i32) {
    let mut conn = match Connection::new(stream) {
        Ok(conn) => conn,
        Err(e) => {
            warning!("pid {peer_pid}: cannot set up the connection: {e}");
            return;
        }
    };
    let client = match greet(&server, &mut conn, peer_pid) {
        Greeted::Client(client) => client,
        Greeted::Observer => return observe(&server, &mut conn, peer_pid),
        Greeted::Refused => return,
    };
    loop {
        let (kind, body) = match conn.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(e) => {
                warning!("client {client} (pid {peer_pid}): {e}; dropping the connection");
                break;
            }
        };
        server.client_requests.fetch_add(1, Ordering::Relaxed);
        let reply = match handlers::dispatch(&server, client, kind, &body) {
            Ok(reply) => reply,
            Err(e) => {
                warning!(
                    "client {client} (pid {peer_pid}): bad {kind:?} request: {e}; dropping the connection"
                );
                break;
            }
        };
        if let Some(Err(e)) = reply.map(|reply| conn.send(reply)) {
            debug!("client {client}: reply lost: {e}");
            break;
        }
        // Only once the reply is out, so the asker learns its request succeeded.
        match kind {
            Kind::Shutdown => server.begin_shutdown("Shutdown request"),
            Kind::Exit => check_teardown(&server),
            _ => {}
        }
    }
    let work = server.begin_work();
    let gone = server.ns().detach(client);
    crate::persist::all(server.as_ref(), gone.caused, work.as_ref());
    drop(work);
    if gone.crashed {
        warning!(
            "client {client}: {} disconnected without Exit (crashed or killed)",
            gone.label
        );
        for f in &gone.aborted {
            warning!(
                "aborted {} ({} bytes written): its producer {} terminated before the commit",
                f.path.display(),
                f.size,
                gone.label
            );
        }
    } else {
        debug!("client {client}: {} detached", gone.label);
    }
    check_teardown(&server);
}

/// An observer's connection: `Status` and `Shutdown` until it hangs up. It is no client: it
/// holds nothing, and its coming and going never starts a teardown.
fn observe(server: &Shared, conn: &mut Connection, peer_pid: i32) {
    server.observers.fetch_add(1, Ordering::SeqCst);
    loop {
        let (kind, body) = match conn.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(e) => {
                warning!("observer pid {peer_pid}: {e}; dropping the connection");
                break;
            }
        };
        let reply = match handlers::dispatch_observer(server, peer_pid, kind, &body) {
            Some(Ok(reply)) => reply,
            Some(Err(e)) => {
                warning!("observer pid {peer_pid}: bad {kind:?} request: {e}; dropping it");
                break;
            }
            None => {
                warning!(
                    "observer pid {peer_pid} sent {kind:?}, which observers may not; dropping it"
                );
                break;
            }
        };
        if conn.send(reply).is_err() {
            break;
        }
        if kind == Kind::Shutdown {
            server.begin_shutdown("Shutdown request from an observer");
        }
    }
    server.observers.fetch_sub(1, Ordering::SeqCst);
}

/// `Hello` must come first; anything else, or a refused `Hello`, ends the connection.
fn greet(server: &Shared, conn: &mut Connection, peer_pid: i32) -> Greeted {
    let body = match conn.read_request() {
        Ok(Some((Kind::Hello, body))) => body,
        Ok(Some((kind, _))) => {
            warning!(
                "pid {peer_pid}: first request was {kind:?}, not Hello; dropping the connection"
            );
            return Greeted::Refused;
        }
        Ok(None) => return Greeted::Refused,
        Err(e) => {
            warning!("pid {peer_pid}: {e}; dropping the connection");
            return Greeted::Refused;
        }
    };
    let (reply, greeted) = match handlers::hello(server, peer_pid, &body) {
        Ok(answer) => answer,
        Err(e) => {
            warning!("pid {peer_pid}: bad Hello: {e}; dropping the connection");
            return Greeted::Refused;
        }
    };
    if let Err(e) = conn.send(reply) {
        debug!("pid {peer_pid}: Hello reply lost: {e}");
        if let Greeted::Client(id) = greeted {
            server.ns().detach(id);
            check_teardown(server);
        }
        return Greeted::Refused;
    }
    greeted
}

fn check_teardown(server: &Shared) {
    if server.ns().teardown_due() {
        server.begin_shutdown("teardown requested and the last client has left");
    }
}
