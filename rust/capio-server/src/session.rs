//! One client's life on its connection: the `Hello` gate, the request loop, and the clean-up when
//! the connection ends (a crash unless the client sent `Exit`).

use crate::connection::Connection;
use crate::handlers;
use crate::log::{debug, warning};
use crate::namespace::ClientId;
use crate::server::Server;
use capio_proto::Kind;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

pub fn serve(server: Arc<Server>, stream: UnixStream, peer_pid: i32) {
    let mut conn = match Connection::new(stream) {
        Ok(conn) => conn,
        Err(e) => {
            warning!("pid {peer_pid}: cannot set up the connection: {e}");
            return;
        }
    };
    let Some(client) = greet(&server, &mut conn, peer_pid) else {
        return;
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
    handlers::persist_all(server.as_ref(), gone.commits, work.as_ref());
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

/// `Hello` must come first; anything else, or a refused `Hello`, ends the connection.
fn greet(server: &Server, conn: &mut Connection, peer_pid: i32) -> Option<ClientId> {
    let body = match conn.read_request() {
        Ok(Some((Kind::Hello, body))) => body,
        Ok(Some((kind, _))) => {
            warning!(
                "pid {peer_pid}: first request was {kind:?}, not Hello; dropping the connection"
            );
            return None;
        }
        Ok(None) => return None,
        Err(e) => {
            warning!("pid {peer_pid}: {e}; dropping the connection");
            return None;
        }
    };
    let (reply, client) = match handlers::hello(server, peer_pid, &body) {
        Ok(answer) => answer,
        Err(e) => {
            warning!("pid {peer_pid}: bad Hello: {e}; dropping the connection");
            return None;
        }
    };
    if let Err(e) = conn.send(reply) {
        debug!("pid {peer_pid}: Hello reply lost: {e}");
        if let Some(id) = client {
            server.ns().detach(id);
            check_teardown(server);
        }
        return None;
    }
    client
}

fn check_teardown(server: &Server) {
    if server.ns().teardown_due() {
        server.begin_shutdown("teardown requested and the last client has left");
    }
}
