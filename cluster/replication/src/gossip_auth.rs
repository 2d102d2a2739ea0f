//! Gossip only members can speak: a chitchat transport over UDP whose every datagram
//! carries the sender's clock and an HMAC-SHA256 tag made with a key derived from the
//! cluster secret. A datagram without a valid tag, or whose time is further than
//! [`MAX_SKEW`] from this node's clock, is dropped and counted before chitchat sees it.
//!
//! Wire format of one datagram:
//!
//! ```text
//! version (1) | time ms (8) | message id (8) | fragment index (1) | fragment count (1)
//!     | chunk of the chitchat envelope | tag (32) over (the header, the chunk)
//! ```
//!
//! chitchat fills a reply up to the largest UDP payload (65,507 bytes), and its packing
//! limit is a private constant, so a full reply plus this overhead does not fit one
//! datagram: such a message travels as two signed fragments and is put together again on
//! arrival. Fragments are only kept once their tag checks, so only secret holders can make
//! a node hold partial messages, and then only a few, for a short while.
//!
//! chitchat 0.13 keeps its envelope encoding private to the crate, so each socket keeps one
//! of chitchat's own UDP sockets on loopback as the codec: an envelope to send goes through
//! it to a second loopback socket, which reads back its bytes; a checked payload goes the
//! other way, and chitchat's socket decodes it. Both loopback sockets accept only what the
//! other one sends.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use futures::future::BoxFuture;
use inkling_auth::DerivedKey;
use inkling_auth::peer::MAX_SKEW;
use inkling_auth::secret::TAG_BYTES;
use tokio::time::Instant;

/// The largest payload of one UDP datagram over IPv4: what chitchat packs messages up to.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
const WIRE_VERSION: u8 = 1;
/// version, time, message id, fragment index, fragment count.
const HEADER_BYTES: usize = 1 + 8 + 8 + 1 + 1;
/// What signing adds to a message that fits one datagram.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + TAG_BYTES;
const MAX_CHUNK_BYTES: usize = MAX_DATAGRAM_BYTES - OVERHEAD_BYTES;
/// chitchat never sends more than one datagram's worth, so two fragments always suffice.
const MAX_FRAGMENTS: usize = MAX_DATAGRAM_BYTES.div_ceil(MAX_CHUNK_BYTES);
/// How long the fragments of one message wait for the others.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many messages may be partly received at once.
const MAX_PARTIAL_MESSAGES: usize = 16;
/// How long the loopback codec may take: it answers at once unless the host is broken.
const CODEC_TIMEOUT: Duration = Duration::from_secs(1);
/// The least time between two log lines about dropped datagrams.
const REPORT_INTERVAL_MS: u64 = 10_000;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Too short, an unknown version, or fragment numbers that make no sense.
    Malformed,
    /// The tag is not the cluster key's: another secret, or altered on the way.
    BadTag,
    /// Signed, but with a time too far from this node's clock: a replay or a bad clock.
    Stale { skew_ms: u64 },
}

impl Rejection {
    /// The reason label of `inkling_gossip_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadTag => "tag",
            Rejection::Stale { .. } => "stale",
        }
    }
}

/// One checked datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fragment {
    message_id: u64,
    index: u8,
    count: u8,
    chunk: Vec<u8>,
}

fn header(time_ms: u64, message_id: u64, index: u8, count: u8) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0] = WIRE_VERSION;
    header[1..9].copy_from_slice(&time_ms.to_be_bytes());
    header[9..17].copy_from_slice(&message_id.to_be_bytes());
    header[17] = index;
    header[18] = count;
    header
}

/// The signed datagrams that carry `payload`, sent at `time_ms`.
fn seal(key: &DerivedKey, time_ms: u64, message_id: u64, payload: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(MAX_CHUNK_BYTES).collect()
    };
    let count = chunks.len() as u8;
    chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let header = header(time_ms, message_id, index as u8, count);
            let tag = key.sign(&[&header, chunk]);
            let mut datagram = Vec::with_capacity(header.len() + chunk.len() + tag.len());
            datagram.extend_from_slice(&header);
            datagram.extend_from_slice(chunk);
            datagram.extend_from_slice(&tag);
            datagram
        })
        .collect()
}

/// Checks one received datagram's tag and time.
fn open(key: &DerivedKey, datagram: &[u8], now_ms: u64) -> Result<Fragment, Rejection> {
    if datagram.len() < OVERHEAD_BYTES || datagram[0] != WIRE_VERSION {
        return Err(Rejection::Malformed);
    }
    let (signed, tag) = datagram.split_at(datagram.len() - TAG_BYTES);
    let (header, chunk) = signed.split_at(HEADER_BYTES);
    if !key.verify(&[header, chunk], tag) {
        return Err(Rejection::BadTag);
    }
    let number = |range: std::ops::Range<usize>| {
        u64::from_be_bytes(header[range].try_into().expect("eight header bytes"))
    };
    let skew_ms = now_ms.abs_diff(number(1..9));
    if skew_ms > MAX_SKEW.as_millis() as u64 {
        return Err(Rejection::Stale { skew_ms });
    }
    let (index, count) = (header[17], header[18]);
    if count == 0 || usize::from(count) > MAX_FRAGMENTS || index >= count {
        return Err(Rejection::Malformed);
    }
    Ok(Fragment {
        message_id: number(9..17),
        index,
        count,
        chunk: chunk.to_vec(),
    })
}

/// A message whose fragments are arriving.
struct Partial {
    chunks: Vec<Option<Vec<u8>>>,
    started: Instant,
}

/// Puts messages sent in several fragments together again.
#[derive(Default)]
struct Reassembly {
    partial: HashMap<(SocketAddr, u64), Partial>,
}

impl Reassembly {
    /// The whole message once `fragment` completes it.
    fn add(&mut self, from: SocketAddr, fragment: Fragment, now: Instant) -> Option<Vec<u8>> {
        if fragment.count == 1 {
            return Some(fragment.chunk);
        }
        self.partial
            .retain(|_, partial| now.duration_since(partial.started) < REASSEMBLY_TIMEOUT);
        let key = (from, fragment.message_id);
        if !self.partial.contains_key(&key) && self.partial.len() >= MAX_PARTIAL_MESSAGES {
            let oldest = self
                .partial
                .iter()
                .min_by_key(|(_, partial)| partial.started)
                .map(|(key, _)| *key)?;
            self.partial.remove(&oldest);
        }
        let partial = self.partial.entry(key).or_insert_with(|| Partial {
            chunks: vec![None; usize::from(fragment.count)],
            started: now,
        });
        // A fragment that disagrees on the count belongs to no message this one knows.
        if partial.chunks.len() != usize::from(fragment.count) {
            return None;
        }
        *partial.chunks.get_mut(usize::from(fragment.index))? = Some(fragment.chunk);
        if partial.chunks.iter().any(Option::is_none) {
            return None;
        }
        let partial = self.partial.remove(&key)?;
        Some(partial.chunks.into_iter().flatten().flatten().collect())
    }
}

/// What the signed transport dropped, and when it last said so.
#[derive(Debug, Default)]
pub struct GossipCounters {
    accepted: AtomicU64,
    malformed: AtomicU64,
    bad_tag: AtomicU64,
    stale: AtomicU64,
    last_report_ms: AtomicU64,
}

impl GossipCounters {
    /// Datagrams whose tag and time checked.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Datagrams dropped, for any reason.
    pub fn rejected(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
            + self.bad_tag.load(Ordering::Relaxed)
            + self.stale.load(Ordering::Relaxed)
    }

    /// Datagrams dropped for one reason (any `Stale` counts for all).
    pub fn rejected_for(&self, rejection: Rejection) -> u64 {
        self.counter(rejection).load(Ordering::Relaxed)
    }

    fn counter(&self, rejection: Rejection) -> &AtomicU64 {
        match rejection {
            Rejection::Malformed => &self.malformed,
            Rejection::BadTag => &self.bad_tag,
            Rejection::Stale { .. } => &self.stale,
        }
    }

    /// Counts a dropped datagram, and logs the counts at most once per report interval: a
    /// flood of forged datagrams must not become a flood of log lines.
    fn reject(&self, rejection: Rejection, from: SocketAddr) {
        self.counter(rejection).fetch_add(1, Ordering::Relaxed);
        inkling_ops::metrics::GOSSIP_REFUSALS
            .with_label_values(&[rejection.label()])
            .inc();
        let now = inkling_domain::now_ms();
        let last = self.last_report_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < REPORT_INTERVAL_MS {
            return;
        }
        let claimed =
            self.last_report_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed);
        if claimed.is_ok() {
            tracing::warn!(
                %from,
                ?rejection,
                malformed = self.malformed.load(Ordering::Relaxed),
                bad_tag = self.bad_tag.load(Ordering::Relaxed),
                stale = self.stale.load(Ordering::Relaxed),
                "dropping gossip datagrams without a valid proof of the cluster secret"
            );
        }
    }
}

/// chitchat's transport with every datagram signed by, and checked against, the gossip key.
pub struct SignedUdpTransport {
    key: DerivedKey,
    counters: Arc<GossipCounters>,
}

impl SignedUdpTransport {
    pub fn new(key: DerivedKey) -> Self {
        Self {
            key,
            counters: Arc::default(),
        }
    }

    /// What every socket this transport opens has accepted and dropped.
    pub fn counters(&self) -> Arc<GossipCounters> {
        self.counters.clone()
    }
}

// `Transport` and `Socket` are `async_trait` traits: their methods return boxed futures.
impl Transport for SignedUdpTransport {
    fn open<'life0, 'async_trait>(
        &'life0 self,
        listen_addr: SocketAddr,
    ) -> BoxFuture<'async_trait, anyhow::Result<Box<dyn Socket>>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let socket =
                SignedSocket::open(listen_addr, self.key.clone(), self.counters.clone()).await?;
            Ok(Box::new(socket) as Box<dyn Socket>)
        })
    }
}

/// A received payload handed to the codec and not yet decoded.
struct Decoding {
    from: SocketAddr,
    bytes: usize,
    give_up: Instant,
}

/// One signed gossip socket: the public UDP socket peers reach, and the loopback codec.
pub struct SignedSocket {
    public: tokio::net::UdpSocket,
    /// chitchat's own socket, used only to encode and decode envelopes.
    codec: chitchat::transport::UdpSocket,
    codec_addr: SocketAddr,
    /// The codec's other end: reads encoded envelopes, writes checked payloads.
    tap: tokio::net::UdpSocket,
    tap_addr: SocketAddr,
    key: DerivedKey,
    counters: Arc<GossipCounters>,
    reassembly: Reassembly,
    decoding: Option<Decoding>,
    next_message_id: u64,
    buffer: Vec<u8>,
}

impl SignedSocket {
    pub async fn open(
        listen_addr: SocketAddr,
        key: DerivedKey,
        counters: Arc<GossipCounters>,
    ) -> anyhow::Result<Self> {
        let public = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let loopback: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let codec = chitchat::transport::UdpSocket::open(loopback).await?;
        let codec_addr = codec.local_addr()?;
        let tap = tokio::net::UdpSocket::bind(loopback)
            .await
            .context("cannot bind the gossip codec's loopback socket")?;
        let tap_addr = tap.local_addr()?;
        let id_seed: [u8; 8] = inkling_auth::random_bytes(8)
            .try_into()
            .expect("eight random bytes");
        Ok(Self {
            public,
            codec,
            codec_addr,
            tap,
            tap_addr,
            key,
            counters,
            reassembly: Reassembly::default(),
            decoding: None,
            next_message_id: u64::from_be_bytes(id_seed),
            buffer: vec![0u8; 1 << 16],
        })
    }

    /// The envelope's bytes, as chitchat's own socket writes them.
    async fn encode(&mut self, envelope: ChitchatEnvelope) -> anyhow::Result<Vec<u8>> {
        let written = self.codec.send(self.tap_addr, envelope).await?;
        let give_up = Instant::now() + CODEC_TIMEOUT;
        loop {
            let read = tokio::time::timeout_at(give_up, self.tap.recv_from(&mut self.buffer));
            let (len, from) = read
                .await
                .context("the gossip codec did not answer")?
                .context("cannot read from the gossip codec")?;
            // Anything else was sent to this loopback port by another process (chitchat never
            // cancels a send, so no earlier envelope can be left waiting here).
            if from == self.codec_addr && len == written.num_bytes_sent {
                return Ok(self.buffer[..len].to_vec());
            }
        }
    }

    /// A checked payload's envelope, once the codec has decoded it; `None` when the codec
    /// gave none in time (the payload did not decode: chitchat logs why).
    async fn decoded(&mut self) -> anyhow::Result<Option<RecvOutcome>> {
        let Some(decoding) = &self.decoding else {
            return Ok(None);
        };
        let read = tokio::time::timeout_at(decoding.give_up, self.codec.recv()).await;
        let Ok(outcome) = read else {
            self.decoding = None;
            return Ok(None);
        };
        let outcome = outcome?;
        if outcome.from_addr != self.tap_addr {
            // Another local process wrote to the codec's port; the payload is still queued.
            return Ok(None);
        }
        let decoding = self.decoding.take().expect("checked above");
        Ok(Some(RecvOutcome {
            from_addr: decoding.from,
            envelope: outcome.envelope,
            num_bytes_received: decoding.bytes,
        }))
    }

    /// The next datagram that completes a message whose every fragment checked.
    async fn receive_checked(&mut self) -> anyhow::Result<(SocketAddr, Vec<u8>)> {
        loop {
            let (len, from) = match self.public.recv_from(&mut self.buffer).await {
                Ok(received) => received,
                Err(error) if is_transient(&error) => continue,
                Err(error) => return Err(error).context("fatal UDP recv error"),
            };
            match open(&self.key, &self.buffer[..len], inkling_domain::now_ms()) {
                Err(rejection) => self.counters.reject(rejection, from),
                Ok(fragment) => {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    if let Some(payload) = self.reassembly.add(from, fragment, Instant::now()) {
                        return Ok((from, payload));
                    }
                }
            }
        }
    }
}

/// Errors a UDP socket reports for one datagram, after which it still works.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::OutOfMemory | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

impl Socket for SignedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.public
            .local_addr()
            .context("failed to get UDP socket address")
    }

    fn send<'life0, 'async_trait>(
        &'life0 mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> BoxFuture<'async_trait, anyhow::Result<SendOutcome>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let payload = self.encode(envelope).await?;
            let message_id = self.next_message_id;
            self.next_message_id = message_id.wrapping_add(1);
            let mut num_bytes_sent = 0;
            for datagram in seal(&self.key, inkling_domain::now_ms(), message_id, &payload) {
                num_bytes_sent += self
                    .public
                    .send_to(&datagram, to)
                    .await
                    .context("failed to send chitchat message to peer")?;
            }
            Ok(SendOutcome { num_bytes_sent })
        })
    }

    /// Cancel-safe, as chitchat needs: what a cancelled call had received waits in `self`.
    fn recv<'life0, 'async_trait>(
        &'life0 mut self,
    ) -> BoxFuture<'async_trait, anyhow::Result<RecvOutcome>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            loop {
                if self.decoding.is_some() {
                    if let Some(outcome) = self.decoded().await? {
                        return Ok(outcome);
                    }
                    continue;
                }
                let (from, payload) = self.receive_checked().await?;
                if let Err(error) = self.tap.send_to(&payload, self.codec_addr).await {
                    tracing::warn!(%error, "cannot hand a gossip message to the codec");
                    continue;
                }
                self.decoding = Some(Decoding {
                    from,
                    bytes: payload.len(),
                    give_up: Instant::now() + CODEC_TIMEOUT,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use chitchat::{ChitchatMessage, ProtocolVersion};
    use inkling_auth::ClusterSecret;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn key() -> DerivedKey {
        ClusterSecret::from_hex("00112233445566778899aabbccddeeff")
            .expect("a valid secret")
            .derive("gossip test")
    }

    fn other_key() -> DerivedKey {
        ClusterSecret::generate().derive("gossip test")
    }

    fn loopback() -> SocketAddr {
        (Ipv4Addr::LOCALHOST, 0).into()
    }

    /// A SYN whose cluster id tells one test message from another.
    fn syn(cluster_id: &str) -> ChitchatEnvelope {
        ChitchatEnvelope {
            version: ProtocolVersion::V1,
            message: ChitchatMessage::Syn {
                cluster_id: cluster_id.to_string(),
                digest: Default::default(),
            },
        }
    }

    /// An envelope's bytes as chitchat writes them.
    async fn encoded(envelope: ChitchatEnvelope) -> Vec<u8> {
        let mut socket = SignedSocket::open(loopback(), key(), Arc::default())
            .await
            .expect("a socket");
        socket.encode(envelope).await.expect("encoded")
    }

    async fn receive(socket: &mut SignedSocket) -> RecvOutcome {
        tokio::time::timeout(WAIT, socket.recv())
            .await
            .expect("a message in time")
            .expect("a working socket")
    }

    /// How a test datagram is made from the encoded payload.
    type Forge = fn(&[u8]) -> Vec<Vec<u8>>;

    fn now() -> u64 {
        inkling_domain::now_ms()
    }

    struct Case {
        name: &'static str,
        forge: Forge,
        /// `None`: the message passes.
        rejected: Option<Rejection>,
    }

    async fn check(case: &Case) {
        let counters = Arc::new(GossipCounters::default());
        let mut receiver = SignedSocket::open(loopback(), key(), counters.clone())
            .await
            .expect("a socket");
        let to = receiver.local_addr().expect("an address");
        let sender = tokio::net::UdpSocket::bind(loopback())
            .await
            .expect("bound");
        let payload = encoded(syn("the case")).await;
        for datagram in (case.forge)(&payload) {
            sender.send_to(&datagram, to).await.expect("sent");
        }
        // A signed message after the case's: whatever the case sent has been handled once
        // this one arrives.
        let sentinel = encoded(syn("sentinel")).await;
        for datagram in seal(&key(), now(), 7, &sentinel) {
            sender.send_to(&datagram, to).await.expect("sent");
        }
        let first = receive(&mut receiver).await;
        assert_eq!(
            first.from_addr,
            sender.local_addr().unwrap(),
            "{}",
            case.name
        );
        match case.rejected {
            None => {
                assert_eq!(first.envelope, syn("the case"), "{}", case.name);
                assert_eq!(receive(&mut receiver).await.envelope, syn("sentinel"));
                assert_eq!(counters.rejected(), 0, "{}", case.name);
            }
            Some(rejection) => {
                assert_eq!(first.envelope, syn("sentinel"), "{}", case.name);
                assert_eq!(counters.rejected(), 1, "{}", case.name);
                assert_eq!(counters.rejected_for(rejection), 1, "{}", case.name);
            }
        }
    }

    const MINUTE_MS: u64 = 60_000;

    fn altered(datagram: &mut [u8], at: usize) {
        datagram[at] ^= 0x01;
    }

    #[tokio::test]
    async fn only_fresh_datagrams_signed_with_the_cluster_key_pass() {
        let cases = [
            Case {
                name: "signed with the cluster key",
                forge: |payload| seal(&key(), now(), 1, payload),
                rejected: None,
            },
            Case {
                name: "signed at the edge of the allowed skew",
                forge: |payload| {
                    seal(
                        &key(),
                        now() - MAX_SKEW.as_millis() as u64 + 2_000,
                        1,
                        payload,
                    )
                },
                rejected: None,
            },
            Case {
                name: "signed with another secret",
                forge: |payload| seal(&other_key(), now(), 1, payload),
                rejected: Some(Rejection::BadTag),
            },
            Case {
                name: "a payload byte altered",
                forge: |payload| {
                    let mut datagrams = seal(&key(), now(), 1, payload);
                    altered(&mut datagrams[0], HEADER_BYTES + 3);
                    datagrams
                },
                rejected: Some(Rejection::BadTag),
            },
            Case {
                name: "the time altered",
                forge: |payload| {
                    let mut datagrams = seal(&key(), now(), 1, payload);
                    altered(&mut datagrams[0], 8);
                    datagrams
                },
                rejected: Some(Rejection::BadTag),
            },
            Case {
                name: "the tag cut short",
                forge: |payload| {
                    let mut datagrams = seal(&key(), now(), 1, payload);
                    datagrams[0].pop();
                    datagrams
                },
                rejected: Some(Rejection::BadTag),
            },
            Case {
                name: "signed a minute ago (a replay)",
                forge: |payload| seal(&key(), now() - MINUTE_MS, 1, payload),
                rejected: Some(Rejection::Stale { skew_ms: 0 }),
            },
            Case {
                name: "signed a minute ahead",
                forge: |payload| seal(&key(), now() + MINUTE_MS, 1, payload),
                rejected: Some(Rejection::Stale { skew_ms: 0 }),
            },
            Case {
                name: "plain chitchat, unsigned",
                forge: |payload| vec![payload.to_vec()],
                rejected: Some(Rejection::Malformed),
            },
            Case {
                name: "empty",
                forge: |_| vec![Vec::new()],
                rejected: Some(Rejection::Malformed),
            },
        ];
        for case in &cases {
            check(case).await;
        }
    }

    #[tokio::test]
    async fn a_full_size_message_crosses_in_signed_fragments() {
        let empty = encoded(syn("")).await.len();
        let cluster_id = "x".repeat(MAX_DATAGRAM_BYTES - empty);
        let envelope = syn(&cluster_id);
        assert_eq!(encoded(syn(&cluster_id)).await.len(), MAX_DATAGRAM_BYTES);
        let mut sender = SignedSocket::open(loopback(), key(), Arc::default())
            .await
            .expect("a socket");
        let counters = Arc::new(GossipCounters::default());
        let mut receiver = SignedSocket::open(loopback(), key(), counters.clone())
            .await
            .expect("a socket");
        let to = receiver.local_addr().unwrap();
        let sent = sender.send(to, syn(&cluster_id)).await.expect("sent");
        assert_eq!(sent.num_bytes_sent, MAX_DATAGRAM_BYTES + 2 * OVERHEAD_BYTES);
        assert_eq!(receive(&mut receiver).await.envelope, envelope);
        assert_eq!(counters.accepted(), 2, "two fragments");
    }

    #[test]
    fn fragments_make_a_message_only_when_all_have_come() {
        /// (sender's port, message id, fragment index, fragment count, chunk)
        type Arrival = (u16, u64, u8, u8, &'static str);
        let cases: [(&str, &[Arrival], Option<&str>); 6] = [
            ("a whole message", &[(9, 1, 0, 1, "ab")], Some("ab")),
            (
                "in order",
                &[(9, 1, 0, 2, "ab"), (9, 1, 1, 2, "cd")],
                Some("abcd"),
            ),
            (
                "out of order",
                &[(9, 1, 1, 2, "cd"), (9, 1, 0, 2, "ab")],
                Some("abcd"),
            ),
            ("one fragment of two", &[(9, 1, 0, 2, "ab")], None),
            (
                "two messages",
                &[(9, 1, 0, 2, "ab"), (9, 2, 1, 2, "cd")],
                None,
            ),
            (
                "two senders",
                &[(9, 1, 0, 2, "ab"), (10, 1, 1, 2, "cd")],
                None,
            ),
        ];
        for (name, arrivals, expected) in cases {
            let mut reassembly = Reassembly::default();
            let now = Instant::now();
            let completed: Vec<Vec<u8>> = arrivals
                .iter()
                .filter_map(|&(port, message_id, index, count, chunk)| {
                    let fragment = Fragment {
                        message_id,
                        index,
                        count,
                        chunk: chunk.as_bytes().to_vec(),
                    };
                    reassembly.add((Ipv4Addr::LOCALHOST, port).into(), fragment, now)
                })
                .collect();
            let expected: Vec<Vec<u8>> = expected
                .iter()
                .map(|text| text.as_bytes().to_vec())
                .collect();
            assert_eq!(completed, expected, "{name}");
        }
    }

    #[test]
    fn partial_messages_are_bounded_and_expire() {
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let half = |message_id, index| Fragment {
            message_id,
            index,
            count: 2,
            chunk: vec![index],
        };
        let start = Instant::now();
        let mut reassembly = Reassembly::default();
        for message_id in 0..(MAX_PARTIAL_MESSAGES as u64 * 2) {
            assert_eq!(reassembly.add(from, half(message_id, 0), start), None);
        }
        assert_eq!(reassembly.partial.len(), MAX_PARTIAL_MESSAGES);
        let later = start + REASSEMBLY_TIMEOUT;
        assert_eq!(reassembly.add(from, half(1_000, 0), later), None);
        assert_eq!(reassembly.partial.len(), 1, "the old ones expired");
    }
}
