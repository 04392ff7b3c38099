//! The sockets the network runs on: the operating system's (tokio's), or, with the `sim`
//! feature, a simulated network's (turmoil's), chosen by the listener a node is started on.
//!
//! Everything above this module (the accept loop, dialing, the Noise handshake, the links and
//! the gossip socket) is the same code in both: a node started on a [`Listener::Sim`] dials,
//! accepts and gossips over the simulated network of the turmoil host it runs in, so whole
//! nodes run in one process under simulated time (`voldisefs-node/tests/simulation/`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bound peer listener: the OS's, or (feature `sim`) a turmoil host's.
pub enum Listener {
    /// A listener of the operating system.
    Os(tokio::net::TcpListener),
    /// A listener on the simulated network of the turmoil host this runs in.
    #[cfg(feature = "sim")]
    Sim(turmoil::net::TcpListener),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport() {
            Transport::Os => "Os",
            #[cfg(feature = "sim")]
            Transport::Sim => "Sim",
        };
        f.debug_struct("Listener")
            .field("transport", &kind)
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

impl From<tokio::net::TcpListener> for Listener {
    fn from(listener: tokio::net::TcpListener) -> Self {
        Listener::Os(listener)
    }
}

#[cfg(feature = "sim")]
impl From<turmoil::net::TcpListener> for Listener {
    fn from(listener: turmoil::net::TcpListener) -> Self {
        Listener::Sim(listener)
    }
}

impl Listener {
    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Os(l) => l.local_addr(),
            #[cfg(feature = "sim")]
            Listener::Sim(l) => l.local_addr(),
        }
    }

    /// Whether it is on turmoil's simulated network (feature `sim`): a node started on one
    /// runs its CPU work inline, so that a simulation replays exactly.
    pub fn is_simulated(&self) -> bool {
        match self {
            Listener::Os(_) => false,
            #[cfg(feature = "sim")]
            Listener::Sim(_) => true,
        }
    }

    /// The network its connections run on (outbound ones and the gossip socket too).
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Listener::Os(_) => Transport::Os,
            #[cfg(feature = "sim")]
            Listener::Sim(_) => Transport::Sim,
        }
    }

    /// The next inbound connection and its address.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Os(l) => l.accept().await.map(|(s, a)| (Stream::Os(s), a)),
            #[cfg(feature = "sim")]
            Listener::Sim(l) => l.accept().await.map(|(s, a)| (Stream::Sim(s), a)),
        }
    }
}

/// Which network a node's sockets belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The operating system's.
    Os,
    /// The simulated network of the current turmoil host.
    #[cfg(feature = "sim")]
    Sim,
}

impl Transport {
    /// Opens a TCP connection to `addr`.
    pub(crate) async fn connect(self, addr: SocketAddr) -> io::Result<Stream> {
        match self {
            Transport::Os => tokio::net::TcpStream::connect(addr).await.map(Stream::Os),
            #[cfg(feature = "sim")]
            Transport::Sim => turmoil::net::TcpStream::connect(addr)
                .await
                .map(Stream::Sim),
        }
    }

    /// Binds a UDP socket on `addr` (the gossip socket).
    pub(crate) fn bind_udp(self, addr: SocketAddr) -> io::Result<Udp> {
        match self {
            Transport::Os => {
                let socket = std::net::UdpSocket::bind(addr)?;
                socket.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(socket).map(Udp::Os)
            }
            #[cfg(feature = "sim")]
            Transport::Sim => {
                use futures_util::FutureExt as _;
                // turmoil binds at once (the future never waits).
                turmoil::net::UdpSocket::bind(addr)
                    .now_or_never()
                    .unwrap_or_else(|| Err(io::Error::other("simulated bind did not complete")))
                    .map(Udp::Sim)
            }
        }
    }
}

/// A TCP connection of either network.
#[derive(Debug)]
pub(crate) enum Stream {
    Os(tokio::net::TcpStream),
    #[cfg(feature = "sim")]
    Sim(turmoil::net::TcpStream),
}

impl Stream {
    /// Sends small writes at once (the OS's `TCP_NODELAY`; the simulated network has no delay
    /// to turn off).
    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Os(s) => s.set_nodelay(on),
            #[cfg(feature = "sim")]
            Stream::Sim(s) => s.set_nodelay(on),
        }
    }

    /// Splits the connection into halves that read and write independently.
    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Os(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Os(r), WriteHalf::Os(w))
            }
            #[cfg(feature = "sim")]
            Stream::Sim(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Sim(r), WriteHalf::Sim(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Os(tokio::net::tcp::OwnedReadHalf),
    #[cfg(feature = "sim")]
    Sim(turmoil::net::tcp::OwnedReadHalf),
}

/// The writing half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Os(tokio::net::tcp::OwnedWriteHalf),
    #[cfg(feature = "sim")]
    Sim(turmoil::net::tcp::OwnedWriteHalf),
}

/// Forwards a poll to whichever socket the enum holds (all are `Unpin`).
macro_rules! forward {
    ($self:expr, $s:ident => $call:expr) => {
        match $self.get_mut() {
            Self::Os($s) => $call,
            #[cfg(feature = "sim")]
            Self::Sim($s) => $call,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The gossip socket of either network.
#[derive(Debug)]
pub(crate) enum Udp {
    Os(tokio::net::UdpSocket),
    #[cfg(feature = "sim")]
    Sim(turmoil::net::UdpSocket),
}

impl Udp {
    /// Receives one datagram into `buf`: its length and sender.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Udp::Os(s) => s.recv_from(buf).await,
            #[cfg(feature = "sim")]
            Udp::Sim(s) => s.recv_from(buf).await,
        }
    }

    /// Sends one datagram to `to`.
    pub(crate) async fn send_to(&self, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            Udp::Os(s) => s.send_to(packet, to).await,
            #[cfg(feature = "sim")]
            Udp::Sim(s) => s.send_to(packet, to).await,
        }
    }
}
