//! Proofs that a node-to-node request comes from a holder of the cluster secret: an
//! HMAC-SHA256 tag over the method, the path, the sender's name, the time and the body's
//! SHA-256, carried in four headers. The tag covers the body's hash rather than the body,
//! so a receiver checks the proof before it reads a byte of the body, and a stranger can
//! never make it buffer one. A request whose time is further than the allowed skew from
//! the receiver's clock is refused, which bounds how long a captured request can be
//! replayed.

use std::time::Duration;

use crate::secret::{ClusterSecret, DerivedKey};

/// The sending node's name.
pub const NODE_HEADER: &str = "x-inkling-node";
/// Milliseconds since the Unix epoch when the request was signed.
pub const TIME_HEADER: &str = "x-inkling-time";
/// The hex tag.
pub const PROOF_HEADER: &str = "x-inkling-proof";
/// The body's SHA-256, hex.
pub const BODY_HASH_HEADER: &str = "x-inkling-body-sha256";

/// The headers of a proof, in the order [`PeerSigner::verify`] takes their values.
pub const HEADERS: [&str; 4] = [NODE_HEADER, TIME_HEADER, BODY_HASH_HEADER, PROOF_HEADER];

/// How far a request's time may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(30);

const LABEL: &str = "inkling peer http v1";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProofError {
    #[error("no proof of the cluster secret: this listener answers only cluster members")]
    Missing,
    #[error("the request's time is {skew_ms} ms from this node's clock; at most {} s are allowed", MAX_SKEW.as_secs())]
    Stale { skew_ms: u64 },
    #[error("the proof of the cluster secret does not match")]
    Mismatch,
}

/// The header values of one signed request.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerProof {
    pub node: String,
    pub time_ms: u64,
    pub body_hash: String,
    pub tag: String,
}

impl PeerProof {
    /// The header values, in the order of [`HEADERS`].
    pub fn header_values(&self) -> [String; 4] {
        [
            self.node.clone(),
            self.time_ms.to_string(),
            self.body_hash.clone(),
            self.tag.clone(),
        ]
    }

    /// Whether `body` is the body this proof was made for.
    pub fn matches_body(&self, body: &[u8]) -> bool {
        body_hash(body) == self.body_hash
    }
}

fn body_hash(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

/// Signs and checks peer requests with a key derived from the cluster secret.
#[derive(Debug, Clone)]
pub struct PeerSigner {
    key: DerivedKey,
    node: String,
}

impl PeerSigner {
    /// Signs as `node`.
    pub fn new(secret: &ClusterSecret, node: impl Into<String>) -> Self {
        Self {
            key: secret.derive(LABEL),
            node: node.into(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The proof for a request signed now.
    pub fn sign(&self, method: &str, path: &str, body: &[u8], now_ms: u64) -> PeerProof {
        let time = now_ms.to_string();
        let body_hash = body_hash(body);
        let tag = self
            .key
            .sign(&Self::parts(method, path, &self.node, &time, &body_hash));
        PeerProof {
            node: self.node.clone(),
            time_ms: now_ms,
            body_hash,
            tag: hex::encode(tag),
        }
    }

    /// Checks a received request's proof from its headers (values in the order of
    /// [`HEADERS`], `None` when absent), before its body is read; the caller then checks
    /// the body with [`PeerProof::matches_body`].
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        headers: [Option<&str>; 4],
        now_ms: u64,
    ) -> Result<PeerProof, ProofError> {
        let [Some(node), Some(time), Some(body_hash), Some(tag)] = headers else {
            return Err(ProofError::Missing);
        };
        let time_ms: u64 = time.parse().map_err(|_| ProofError::Mismatch)?;
        let skew_ms = now_ms.abs_diff(time_ms);
        if skew_ms > MAX_SKEW.as_millis() as u64 {
            return Err(ProofError::Stale { skew_ms });
        }
        let tag_bytes = hex::decode(tag).map_err(|_| ProofError::Mismatch)?;
        let parts = Self::parts(method, path, node, time, body_hash);
        if !self.key.verify(&parts, &tag_bytes) {
            return Err(ProofError::Mismatch);
        }
        Ok(PeerProof {
            node: node.to_string(),
            time_ms,
            body_hash: body_hash.to_string(),
            tag: tag.to_string(),
        })
    }

    fn parts<'a>(
        method: &'a str,
        path: &'a str,
        node: &'a str,
        time: &'a str,
        body_hash: &'a str,
    ) -> [&'a [u8]; 5] {
        [
            method.as_bytes(),
            path.as_bytes(),
            node.as_bytes(),
            time.as_bytes(),
            body_hash.as_bytes(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const PATH: &str = "/peer/raft/0/append";

    /// Whether a request with `proof`'s headers (or none), to `path`, with `body`, at
    /// `now`, passes both checks.
    fn check(
        signer: &PeerSigner,
        proof: Option<&PeerProof>,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), ProofError> {
        let values = proof.map(PeerProof::header_values);
        let header = |at: usize| values.as_ref().map(|values| values[at].as_str());
        let headers = [header(0), header(1), header(2), header(3)];
        let proof = signer.verify("POST", path, headers, now)?;
        if !proof.matches_body(body) {
            return Err(ProofError::Mismatch);
        }
        Ok(())
    }

    #[test]
    fn proofs_hold_only_for_what_was_signed() {
        let secret = ClusterSecret::generate();
        let signer = PeerSigner::new(&secret, "node-1");
        let stranger = PeerSigner::new(&ClusterSecret::generate(), "node-1");
        let proof = signer.sign("POST", PATH, b"{}", NOW);
        let forged = stranger.sign("POST", PATH, b"{}", NOW);
        let renamed = PeerProof {
            node: "node-3".into(),
            ..proof.clone()
        };
        let rehashed = PeerProof {
            body_hash: body_hash(b"{\"x\":1}"),
            ..proof.clone()
        };
        type Case<'a> = (
            &'a str,
            Option<&'a PeerProof>,
            &'a str,
            &'a [u8],
            u64,
            Result<(), ProofError>,
        );
        let cases: Vec<Case> = vec![
            ("as signed", Some(&proof), PATH, b"{}", NOW, Ok(())),
            (
                "other body",
                Some(&proof),
                PATH,
                b"{\"x\":1}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other body, its hash swapped in",
                Some(&rehashed),
                PATH,
                b"{\"x\":1}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other path",
                Some(&proof),
                "/peer/raft/1/append",
                b"{}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other sender",
                Some(&renamed),
                PATH,
                b"{}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other secret",
                Some(&forged),
                PATH,
                b"{}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "no headers",
                None,
                PATH,
                b"{}",
                NOW,
                Err(ProofError::Missing),
            ),
            (
                "replayed late",
                Some(&proof),
                PATH,
                b"{}",
                NOW + 31_000,
                Err(ProofError::Stale { skew_ms: 31_000 }),
            ),
        ];
        for (name, proof, path, body, now, expected) in cases {
            assert_eq!(check(&signer, proof, path, body, now), expected, "{name}");
        }
    }
}
