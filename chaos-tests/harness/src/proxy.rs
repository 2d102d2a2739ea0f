//! The fault-injecting proxy: every byte between nodes passes through it, so links can be
//! cut (both ways or one way), delayed, made lossy or reset, without root.
//!
//! Node `i` advertises [`Addresses::advertised`] to its peers, where the proxy listens, and
//! really listens on [`Addresses::real`]. Nodes send from their real IP (`--advertise`
//! makes them bind it), so the proxy in front of node `i` knows the sending node from the
//! peer IP of a TCP connection or UDP datagram. A rule applies to one directed link
//! (from, to). Traffic from anyone else (clients, the harness) is never touched.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// What happens to traffic on one directed link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkRule {
    Pass,
    /// Nothing gets through: new TCP connections are refused (closed at once), existing
    /// ones were reset when the cut began, bytes already in a one-way-cut direction are
    /// held back, UDP datagrams are dropped.
    Drop,
    /// Every chunk of bytes and every datagram waits this long.
    Delay(Duration),
    /// UDP datagrams are dropped with this probability; TCP cannot lose bytes without
    /// breaking its stream, so a "lost" TCP chunk waits as long as a retransmission would.
    Loss(f64),
}

/// How long a TCP chunk "lost" under [`LinkRule::Loss`] waits: a retransmission timeout.
const TCP_RETRANSMIT: Duration = Duration::from_millis(200);
/// How long a connection to the real node may take before the proxy gives up on it.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(2);

/// The loopback addresses of a chaos cluster on 127.`subnet`.x.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub subnet: u8,
}

impl Addresses {
    /// Where peers reach node `index` (the proxy listens here).
    pub fn advertised_ip(&self, index: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.subnet, 0, host(index)))
    }

    /// Where node `index` really listens, and the IP it sends from.
    pub fn real_ip(&self, index: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.subnet, 1, host(index)))
    }

    /// The node a peer IP belongs to, if it is a node's real IP.
    pub fn node_of(&self, ip: IpAddr) -> Option<usize> {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                (a == 127 && b == self.subnet && c == 1 && d >= 1).then(|| usize::from(d) - 1)
            }
            IpAddr::V6(_) => None,
        }
    }
}

fn host(index: usize) -> u8 {
    u8::try_from(index + 1).expect("at most 254 nodes")
}

/// The rules of every directed link, and a reset signal per unordered pair of nodes.
#[derive(Default)]
struct Rules {
    links: Mutex<HashMap<(usize, usize), LinkRule>>,
    resets: Mutex<HashMap<(usize, usize), watch::Sender<u64>>>,
}

impl Rules {
    fn get(&self, from: Option<usize>, to: Option<usize>) -> LinkRule {
        match (from, to) {
            (Some(from), Some(to)) => self
                .links
                .lock()
                .get(&(from, to))
                .copied()
                .unwrap_or(LinkRule::Pass),
            _ => LinkRule::Pass,
        }
    }

    fn reset_signal(&self, a: usize, b: usize) -> watch::Receiver<u64> {
        let key = (a.min(b), a.max(b));
        self.resets
            .lock()
            .entry(key)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn reset(&self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        let mut resets = self.resets.lock();
        let sender = resets.entry(key).or_insert_with(|| watch::channel(0).0);
        sender.send_modify(|epoch| *epoch += 1);
    }
}

/// The proxy of a whole cluster: one TCP forwarder per (node, port) and one UDP forwarder
/// per node's gossip port, on a runtime of its own.
pub struct Proxy {
    addresses: Addresses,
    rules: Arc<Rules>,
    runtime: tokio::runtime::Runtime,
}

impl Proxy {
    pub fn new(addresses: Addresses) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("chaos-proxy")
            .enable_all()
            .build()?;
        Ok(Self {
            addresses,
            rules: Arc::new(Rules::default()),
            runtime,
        })
    }

    /// Forwards TCP on node `index`'s advertised `port` to its real one.
    pub fn forward_tcp(&self, index: usize, port: u16) -> anyhow::Result<()> {
        let listen = SocketAddr::new(self.addresses.advertised_ip(index), port);
        let upstream = SocketAddr::new(self.addresses.real_ip(index), port);
        // Bound here, synchronously, so a taken address is an error to the caller; the
        // runtime takes the socket over (no `block_on`: callers may run inside a runtime).
        let listener = std::net::TcpListener::bind(listen)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|error| anyhow::anyhow!("proxy cannot listen on tcp {listen}: {error}"))?;
        let (rules, addresses) = (self.rules.clone(), self.addresses);
        self.runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            loop {
                let Ok((client, peer)) = listener.accept().await else {
                    continue;
                };
                let from = addresses.node_of(peer.ip());
                let rules = rules.clone();
                tokio::spawn(async move {
                    let _ = tcp_connection(client, from, index, upstream, rules).await;
                });
            }
        });
        Ok(())
    }

    /// Forwards UDP (gossip) on node `index`'s advertised `port` to its real one.
    pub fn forward_udp(&self, index: usize, port: u16) -> anyhow::Result<()> {
        let listen = SocketAddr::new(self.addresses.advertised_ip(index), port);
        let upstream = SocketAddr::new(self.addresses.real_ip(index), port);
        let socket = std::net::UdpSocket::bind(listen)
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
            .map_err(|error| anyhow::anyhow!("proxy cannot listen on udp {listen}: {error}"))?;
        let (rules, addresses) = (self.rules.clone(), self.addresses);
        self.runtime.spawn(async move {
            if let Ok(socket) = UdpSocket::from_std(socket) {
                udp_forwarder(Arc::new(socket), index, upstream, addresses, rules).await;
            }
        });
        Ok(())
    }

    /// Sets the rule of the directed link `from` → `to`. A cut resets the pair's open TCP
    /// connections, as a failed link would, so nothing rides through on an old connection.
    pub fn set(&self, from: usize, to: usize, rule: LinkRule) {
        let previous = self.rules.links.lock().insert((from, to), rule);
        if rule == LinkRule::Drop && previous != Some(LinkRule::Drop) {
            self.rules.reset(from, to);
        }
    }

    /// Every link back to `Pass`.
    pub fn heal(&self) {
        self.rules.links.lock().clear();
    }
}

/// One proxied TCP connection from node `from` (if a node) to node `to`.
async fn tcp_connection(
    client: TcpStream,
    from: Option<usize>,
    to: usize,
    upstream: SocketAddr,
    rules: Arc<Rules>,
) -> std::io::Result<()> {
    if rules.get(from, Some(to)) == LinkRule::Drop {
        return Ok(()); // dropped: the caller sees the connection close at once
    }
    let server = tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream))
        .await
        .map_err(|_| std::io::Error::other("upstream connect timed out"))??;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let forward = pump(client_read, server_write, from, Some(to), rules.clone());
    let backward = pump(server_read, client_write, Some(to), from, rules.clone());
    // A cut of this pair of nodes ends the connection; a client's is never cut.
    let reset = async {
        match from {
            Some(from) => {
                let mut signal = rules.reset_signal(from, to);
                signal.borrow_and_update();
                let _ = signal.changed().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = forward => {}
        _ = backward => {}
        () = reset => {}
    }
    // Dropping both halves closes both sockets.
    Ok(())
}

/// Copies bytes one way, applying the link's rule to each chunk as it goes.
async fn pump(
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut write: tokio::net::tcp::OwnedWriteHalf,
    from: Option<usize>,
    to: Option<usize>,
    rules: Arc<Rules>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read_bytes = read.read(&mut buffer).await?;
        if read_bytes == 0 {
            let _ = write.shutdown().await;
            return Ok(());
        }
        loop {
            match rules.get(from, to) {
                LinkRule::Pass => break,
                LinkRule::Delay(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                LinkRule::Loss(probability) => {
                    if random_unit() < probability {
                        tokio::time::sleep(TCP_RETRANSMIT).await;
                    }
                    break;
                }
                // A one-way cut holds this direction's bytes until it heals (a two-way cut
                // has reset the connection already).
                LinkRule::Drop => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        write.write_all(&buffer[..read_bytes]).await?;
    }
}

/// Gossip datagrams from each sender go to the node from a socket of their own, so the
/// node's answers come back to that socket and can be sent on to the right sender.
async fn udp_forwarder(
    socket: Arc<UdpSocket>,
    to: usize,
    upstream: SocketAddr,
    addresses: Addresses,
    rules: Arc<Rules>,
) {
    let mut relays: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buffer = vec![0u8; 65_536];
    loop {
        let Ok((length, sender)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let from = addresses.node_of(sender.ip());
        let relay = match relays.get(&sender) {
            Some(relay) => relay.clone(),
            None => {
                let bind = SocketAddr::new(addresses.advertised_ip(to), 0);
                let Ok(relay) = UdpSocket::bind(bind).await else {
                    continue;
                };
                let relay = Arc::new(relay);
                relays.insert(sender, relay.clone());
                tokio::spawn(udp_answers(
                    relay.clone(),
                    socket.clone(),
                    sender,
                    Some(to),
                    from,
                    rules.clone(),
                ));
                relay
            }
        };
        let datagram = buffer[..length].to_vec();
        send_by_rule(relay, upstream, datagram, rules.get(from, Some(to)));
    }
}

/// The node's answers to one sender, back through the proxy's listening socket.
async fn udp_answers(
    relay: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    sender: SocketAddr,
    from: Option<usize>,
    to: Option<usize>,
    rules: Arc<Rules>,
) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let Ok((length, _)) = relay.recv_from(&mut buffer).await else {
            continue;
        };
        let datagram = buffer[..length].to_vec();
        send_by_rule(socket.clone(), sender, datagram, rules.get(from, to));
    }
}

fn send_by_rule(socket: Arc<UdpSocket>, target: SocketAddr, datagram: Vec<u8>, rule: LinkRule) {
    let delay = match rule {
        LinkRule::Pass => Duration::ZERO,
        LinkRule::Drop => return,
        LinkRule::Loss(probability) if random_unit() < probability => return,
        LinkRule::Loss(_) => Duration::ZERO,
        LinkRule::Delay(delay) => delay,
    };
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let _ = socket.send_to(&datagram, target).await;
    });
}

/// A uniform number in [0, 1) for packet loss. Loss is not part of the replayable schedule
/// (which datagrams a node sends depends on timing anyway), so a cheap per-thread
/// generator seeded from the clock is enough.
fn random_unit() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64 | 1)
                .unwrap_or(0x9e37_79b9_7f4a_7c15),
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ips_name_their_node_and_nothing_else() {
        let addresses = Addresses { subnet: 90 };
        for (ip, node) in [
            ("127.90.1.1", Some(0)),
            ("127.90.1.3", Some(2)),
            ("127.90.0.1", None),
            ("127.91.1.1", None),
            ("127.0.0.1", None),
        ] {
            assert_eq!(addresses.node_of(ip.parse().unwrap()), node, "{ip}");
        }
        assert_eq!(addresses.real_ip(1).to_string(), "127.90.1.2");
        assert_eq!(addresses.advertised_ip(1).to_string(), "127.90.0.2");
    }

    /// A real TCP echo server behind the proxy: bytes pass, a cut closes the connection and
    /// refuses new ones from the cut node, and a heal lets them through again.
    #[test]
    fn a_cut_resets_and_refuses_then_heals() {
        let addresses = Addresses { subnet: 91 };
        let proxy = Proxy::new(addresses).unwrap();
        let echo = std::net::TcpListener::bind((addresses.real_ip(0), 0)).unwrap();
        let port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut copy = stream.try_clone().unwrap();
                    let _ = std::io::copy(&mut stream, &mut copy);
                });
            }
        });
        proxy.forward_tcp(0, port).unwrap();
        let connect_from_node_1 = || {
            let socket = socket_from(addresses.real_ip(1), addresses.advertised_ip(0), port);
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            socket
        };
        let round_trip = |stream: &mut std::net::TcpStream| -> bool {
            use std::io::{Read, Write};
            if stream.write_all(b"ping").is_err() {
                return false;
            }
            let mut answer = [0u8; 4];
            stream.read_exact(&mut answer).is_ok() && &answer == b"ping"
        };
        let mut open = connect_from_node_1();
        assert!(round_trip(&mut open));
        proxy.set(1, 0, LinkRule::Drop);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!round_trip(&mut open), "the cut reset the open connection");
        let mut refused = connect_from_node_1();
        assert!(!round_trip(&mut refused), "a new connection is refused");
        proxy.heal();
        let mut healed = connect_from_node_1();
        assert!(round_trip(&mut healed));
    }

    /// A blocking TCP stream from `source` (std cannot bind before connecting).
    fn socket_from(source: IpAddr, target: IpAddr, port: u16) -> std::net::TcpStream {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(source, 0)).unwrap();
            let stream = socket.connect(SocketAddr::new(target, port)).await.unwrap();
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            stream
        })
    }
}
