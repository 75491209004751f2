//! The client's end of the connection, to notice a client that hung up while the fake is silent
//! (`stall`, `stall-mid`): actix-web only notices a closed connection when a write fails, and a
//! stalled answer writes nothing.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use actix_web::rt::time::{Instant, sleep_until};

/// How often a silent answer looks for the client's hang-up.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// A duplicate of the connection's socket, kept in the connection's data by `remember`.
#[derive(Clone)]
pub struct Peer(Arc<socket2::Socket>);

/// `HttpServer::on_connect`: keeps a duplicate of each TCP connection's socket.
pub fn remember(connection: &dyn std::any::Any, data: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Ok(socket) = socket2::SockRef::from(tcp).try_clone()
    {
        data.insert(Peer(Arc::new(socket)));
    }
}

impl Peer {
    pub fn of(request: &HttpRequest) -> Option<Peer> {
        request.conn_data::<Peer>().cloned()
    }

    /// Whether the client closed its end (a peek reads end-of-file). Bytes waiting (a pipelined
    /// request) or nothing to read mean it is still there.
    fn hung_up(&self) -> bool {
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        // The socket is non-blocking (tokio made it so; the duplicate shares the flag).
        matches!(self.0.peek(&mut byte), Ok(0))
    }
}

/// Waits until `deadline`, or until the client hung up; returns whether it hung up.
pub async fn wait_or_hang_up(peer: Option<&Peer>, deadline: Instant) -> bool {
    let Some(peer) = peer else {
        sleep_until(deadline).await;
        return false;
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if peer.hung_up() {
            return true;
        }
        sleep_until((now + PROBE_EVERY).min(deadline)).await;
    }
}
