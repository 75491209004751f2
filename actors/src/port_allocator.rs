//! The PortAllocator: hands out free loopback ports to HTTP-mode children and takes them back.

use std::collections::BTreeSet;
use std::net::TcpListener;

use actix::prelude::*;

#[derive(Default)]
pub struct PortAllocator {
    leased: BTreeSet<u16>,
}

impl Actor for PortAllocator {
    type Context = Context<Self>;
}

/// A free port, leased until `ReleasePort`.
#[derive(Message)]
#[rtype(result = "Result<u16, String>")]
pub struct AllocatePort;

#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleasePort(pub u16);

impl Handler<AllocatePort> for PortAllocator {
    type Result = Result<u16, String>;

    fn handle(&mut self, _: AllocatePort, _: &mut Context<Self>) -> Self::Result {
        // The kernel picks a free ephemeral port; we skip ones we have leased but the child has not bound yet.
        for _ in 0..64 {
            let port = TcpListener::bind(("127.0.0.1", 0))
                .and_then(|listener| listener.local_addr())
                .map_err(|error| format!("no free port: {error}"))?
                .port();
            if self.leased.insert(port) {
                return Ok(port);
            }
        }
        Err("no free port after 64 tries".into())
    }
}

impl Handler<ReleasePort> for PortAllocator {
    type Result = ();

    fn handle(&mut self, message: ReleasePort, _: &mut Context<Self>) {
        self.leased.remove(&message.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn leased_ports_are_distinct_until_released() {
        let allocator = PortAllocator::default().start();
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            let port = allocator.send(AllocatePort).await.expect("mailbox").expect("a port");
            assert!(seen.insert(port), "port {port} leased twice");
        }
        let first = *seen.iter().next().expect("some port");
        allocator.send(ReleasePort(first)).await.expect("mailbox");
    }
}
