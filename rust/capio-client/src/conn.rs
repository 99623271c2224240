//! One control connection to the server: typed requests, replies that may carry an fd.
//! Requests from all threads of a process share it under a mutex, held for one round trip. The
//! server blocks a request only on a file's append lock, which no client holds across a round
//! trip (see `Handle::write_published`), so that round trip always ends.

use crate::error::{ClientError, Result};
use capio_proto::{
    NoReply, ReplyBody, Request, WireError, decode, encode_request, recv_frame, sys,
};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use std::time::Duration;

/// How long `receive` checks for a reply before blocking at most, and at least while replies
/// come within it: waking a thread that slept costs 100-200 us on a busy VM, more than most
/// replies take; replies that take longer than the most are slept for at once.
const REPLY_SPIN_MOST: Duration = Duration::from_micros(300);
const REPLY_SPIN_LEAST: Duration = Duration::from_micros(100);

pub struct Conn {
    stream: UnixStream,
    workflow: String,
    /// How long replies take of late (a moving average), which sets how long to spin for one.
    typical_reply: Duration,
    /// Calls made: every so often one spins its longest, so slow replies that became quick again
    /// are noticed.
    calls: u32,
}

/// A reply: its fixed part `T` (the request's `Reply` type), its tail, and the fd it carried.
pub struct Reply<T> {
    pub fixed: T,
    body: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

impl<T: ReplyBody> Reply<T> {
    /// The reply, or its negative status as an error about `path`.
    pub fn check(self, path: &Path) -> Result<Reply<T>> {
        match self.fixed.status() {
            s if s < 0 => Err(ClientError::os(-s, path.to_path_buf())),
            _ => Ok(self),
        }
    }

    /// The bytes after the fixed part.
    pub fn tail(&self) -> &[u8] {
        &self.body[size_of::<T>()..]
    }
}

impl Conn {
    pub fn new(stream: UnixStream, workflow: &str) -> Conn {
        Conn {
            stream,
            workflow: workflow.to_owned(),
            typical_reply: Duration::ZERO,
            calls: 0,
        }
    }

    /// A second handle on the socket, used to notice the server's death while waiting.
    pub fn probe(&self) -> std::io::Result<UnixStream> {
        self.stream.try_clone()
    }

    fn gone(&self) -> ClientError {
        ClientError::ServerGone(self.workflow.clone())
    }

    /// Send a request that gets no reply (`Close`).
    pub fn send<R: Request<Reply = NoReply>>(&mut self, req: &R, tail: &[u8]) -> Result<()> {
        self.write(req, tail)
    }

    /// One round trip; the reply is `R`'s reply type.
    pub fn call<R: Request>(&mut self, req: &R, tail: &[u8]) -> Result<Reply<R::Reply>>
    where
        R::Reply: ReplyBody,
    {
        self.write(req, tail)?;
        self.receive::<R>()
    }

    fn write<R: Request>(&mut self, req: &R, tail: &[u8]) -> Result<()> {
        let frame = encode_request(req, tail)?;
        sys::send_with_fd(&self.stream, &frame, None).map_err(|_| self.gone())
    }

    /// How long to check for the next reply before sleeping. Most replies come within tens of
    /// microseconds: checking for a while (four times what they take of late) saves a sleep and
    /// a wake-up per request; when they take longer than spinning may, a wake-up is the cheaper.
    fn next_spin(&mut self) -> Duration {
        self.calls = self.calls.wrapping_add(1);
        match self.typical_reply * 4 {
            _ if self.calls.is_multiple_of(16) => REPLY_SPIN_MOST,
            t if t > REPLY_SPIN_MOST => Duration::ZERO,
            t => t.max(REPLY_SPIN_LEAST),
        }
    }

    /// A reply came `took` after the request, spinning for at most `spin`. Learnt only from
    /// replies it spun for (one slept for at once took a wake-up too), and at most twice the
    /// longest spin: one slow reply (a server starting) must not keep the next ones from spinning
    /// for long.
    fn learn(&mut self, spin: Duration, took: Duration) {
        if spin > Duration::ZERO {
            let took = took.min(REPLY_SPIN_MOST * 2);
            self.typical_reply = (self.typical_reply * 7 + took) / 8;
        }
    }

    fn receive<R: Request>(&mut self) -> Result<Reply<R::Reply>>
    where
        R::Reply: ReplyBody,
    {
        let spin = self.next_spin();
        let start = std::time::Instant::now();
        while start.elapsed() < spin
            && !sys::poll_readable(self.stream.as_fd(), Duration::ZERO).unwrap_or(true)
        {
            std::thread::yield_now();
        }
        let (header, body, fd) = match recv_frame(&self.stream) {
            Ok(frame) => frame,
            Err(WireError::Eof | WireError::Io(_)) => return Err(self.gone()),
            Err(e) => return Err(e.into()),
        };
        self.learn(spin, start.elapsed());
        if header.kind != R::KIND.reply_code() {
            return Err(WireError::UnknownKind(header.kind).into());
        }
        let (fixed, _) = decode::<R::Reply>(&body)?;
        Ok(Reply { fixed, body, fd })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capio_proto::{
        CloseReq, Kind, OpenReply, OpenReq, StatusReply, encode, encode_reply, read_frame,
    };
    use std::io::Write;

    /// A connection and the server's end of its socket.
    fn pair() -> (Conn, UnixStream) {
        let (client, server) = UnixStream::pair().unwrap();
        (Conn::new(client, "wf"), server)
    }

    #[test]
    fn the_reply_spin_follows_how_long_replies_take_and_probes_again_when_they_are_slow() {
        let (mut conn, _server) = pair();
        let us = Duration::from_micros;
        // Quick replies: four times their time, never under the least.
        for _ in 0..40 {
            let spin = conn.next_spin();
            conn.learn(spin, us(60));
        }
        assert!(
            (us(200)..=us(260)).contains(&conn.next_spin()),
            "{:?}",
            conn.next_spin()
        );
        // Slow replies (a loaded server): no spin, but a probe every 16th call.
        for _ in 0..40 {
            let spin = conn.next_spin();
            conn.learn(spin, us(5000));
        }
        let spins: Vec<Duration> = (0..32).map(|_| conn.next_spin()).collect();
        assert_eq!(
            spins.iter().filter(|s| **s == REPLY_SPIN_MOST).count(),
            2,
            "{spins:?}"
        );
        assert_eq!(
            spins.iter().filter(|s| s.is_zero()).count(),
            30,
            "{spins:?}"
        );
        // Quick again: the probes bring the spin back.
        for _ in 0..400 {
            let spin = conn.next_spin();
            conn.learn(spin, us(30));
        }
        assert_eq!(conn.next_spin(), REPLY_SPIN_LEAST.max(us(120)));
    }

    #[test]
    fn a_call_gets_its_typed_reply_and_the_fd_that_rode_on_it() {
        let (mut conn, server) = pair();
        let reply = OpenReply {
            kind: 1,
            slot: 7,
            size: 3,
            ..OpenReply::default()
        };
        let frame = encode_reply::<OpenReq>(&reply, b"tail").unwrap();
        let fd = sys::memfd("conn-test").unwrap();
        sys::send_with_fd(&server, &frame, Some(fd.as_fd())).unwrap();
        let got = conn
            .call(&OpenReq { flags: 0, mode: 0 }, b"/c/f")
            .unwrap()
            .check(Path::new("/c/f"))
            .unwrap();
        assert_eq!(
            (got.fixed.slot, got.fixed.size, got.tail()),
            (7, 3, &b"tail"[..])
        );
        assert!(got.fd.is_some());
        // What the server read: one `Open` request with its path.
        let (header, body) = read_frame(&mut &server).unwrap();
        assert_eq!(header.kind, Kind::Open as u16);
        assert_eq!(&body[size_of::<OpenReq>()..], b"/c/f");
    }

    #[test]
    fn a_negative_status_is_the_error_about_the_path() {
        let (mut conn, mut server) = pair();
        let frame = encode_reply::<capio_proto::UnlinkReq>(
            &StatusReply {
                status: -libc::ENOENT,
                _pad: 0,
            },
            &[],
        )
        .unwrap();
        server.write_all(&frame).unwrap();
        let err = conn
            .call(&capio_proto::UnlinkReq {}, b"/c/x")
            .unwrap()
            .check(Path::new("/c/x"))
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                ClientError::Os {
                    errno: libc::ENOENT,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_reply_of_another_kind_is_a_protocol_error() {
        let (mut conn, mut server) = pair();
        let frame = encode(Kind::Stat.reply_code(), &StatusReply::default(), &[]).unwrap();
        server.write_all(&frame).unwrap();
        let err = conn
            .call(&capio_proto::UnlinkReq {}, b"/c/x")
            .err()
            .unwrap();
        assert!(
            matches!(err, ClientError::Protocol(WireError::UnknownKind(k)) if k == Kind::Stat.reply_code()),
            "{err:?}"
        );
    }

    #[test]
    fn a_closed_or_truncating_server_is_gone() {
        let (mut conn, server) = pair();
        drop(server);
        let err = conn.call(&capio_proto::StatusReq {}, &[]).err().unwrap();
        assert!(
            matches!(err, ClientError::ServerGone(ref w) if w == "wf"),
            "{err:?}"
        );

        let (mut conn, mut server) = pair();
        let frame = encode_reply::<capio_proto::StatusReq>(&StatusReply::default(), b"{}").unwrap();
        server.write_all(&frame[..frame.len() - 1]).unwrap();
        // The request still goes out; the reply ends one byte short.
        server.shutdown(std::net::Shutdown::Write).unwrap();
        let err = conn.call(&capio_proto::StatusReq {}, &[]).err().unwrap();
        assert!(matches!(err, ClientError::ServerGone(_)), "{err:?}");
    }

    #[test]
    fn a_one_way_request_is_sent_and_not_waited_for() {
        let (mut conn, server) = pair();
        conn.send(
            &CloseReq {
                slot: 4,
                writable: 1,
                ..CloseReq::default()
            },
            &[],
        )
        .unwrap();
        let (header, body) = read_frame(&mut &server).unwrap();
        assert_eq!(header.kind, Kind::Close as u16);
        let (req, _): (CloseReq, _) = capio_proto::decode(&body).unwrap();
        assert_eq!((req.slot, req.writable), (4, 1));
    }
}
