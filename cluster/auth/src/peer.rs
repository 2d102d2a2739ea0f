//! Proofs that a node-to-node request comes from a holder of the cluster secret: an
//! HMAC-SHA256 tag over the method, the path, the sender's name, the time and the body,
//! carried in three headers. A request whose time is further than the allowed skew from the
//! receiver's clock is refused, which bounds how long a captured request can be replayed.

use std::time::Duration;

use crate::secret::{ClusterSecret, DerivedKey};
use crate::{from_hex, to_hex};

/// The sending node's name.
pub const NODE_HEADER: &str = "x-inkling-node";
/// Milliseconds since the Unix epoch when the request was signed.
pub const TIME_HEADER: &str = "x-inkling-time";
/// The hex tag.
pub const PROOF_HEADER: &str = "x-inkling-proof";

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

/// The three header values of one signed request.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerProof {
    pub node: String,
    pub time_ms: u64,
    pub tag: String,
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
        let tag = self
            .key
            .sign(&Self::parts(method, path, &self.node, &time, body));
        PeerProof {
            node: self.node.clone(),
            time_ms: now_ms,
            tag: to_hex(&tag),
        }
    }

    /// Checks a received request's proof, as found in its headers (`None` when absent).
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: [Option<&str>; 3],
        now_ms: u64,
    ) -> Result<PeerProof, ProofError> {
        let [Some(node), Some(time), Some(tag)] = headers else {
            return Err(ProofError::Missing);
        };
        let time_ms: u64 = time.parse().map_err(|_| ProofError::Mismatch)?;
        let skew_ms = now_ms.abs_diff(time_ms);
        if skew_ms > MAX_SKEW.as_millis() as u64 {
            return Err(ProofError::Stale { skew_ms });
        }
        let tag_bytes = from_hex(tag).ok_or(ProofError::Mismatch)?;
        if !self
            .key
            .verify(&Self::parts(method, path, node, time, body), &tag_bytes)
        {
            return Err(ProofError::Mismatch);
        }
        Ok(PeerProof {
            node: node.to_string(),
            time_ms,
            tag: tag.to_string(),
        })
    }

    fn parts<'a>(
        method: &'a str,
        path: &'a str,
        node: &'a str,
        time: &'a str,
        body: &'a [u8],
    ) -> [&'a [u8]; 5] {
        [
            method.as_bytes(),
            path.as_bytes(),
            node.as_bytes(),
            time.as_bytes(),
            body,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn proofs_hold_only_for_what_was_signed() {
        let secret = ClusterSecret::generate();
        let signer = PeerSigner::new(&secret, "node-1");
        let stranger = PeerSigner::new(&ClusterSecret::generate(), "node-1");
        let proof = signer.sign("POST", "/peer/raft/0/append", b"{}", NOW);
        let headers = |proof: &PeerProof| {
            [
                Some(proof.node.clone()),
                Some(proof.time_ms.to_string()),
                Some(proof.tag.clone()),
            ]
        };
        let forged = stranger.sign("POST", "/peer/raft/0/append", b"{}", NOW);
        let renamed = PeerProof {
            node: "node-3".into(),
            ..proof.clone()
        };
        let cases: Vec<(
            &str,
            [Option<String>; 3],
            &str,
            &[u8],
            u64,
            Result<(), ProofError>,
        )> = vec![
            (
                "as signed",
                headers(&proof),
                "/peer/raft/0/append",
                b"{}",
                NOW,
                Ok(()),
            ),
            (
                "other body",
                headers(&proof),
                "/peer/raft/0/append",
                b"{\"x\":1}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other path",
                headers(&proof),
                "/peer/raft/1/append",
                b"{}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other sender",
                headers(&renamed),
                "/peer/raft/0/append",
                b"{}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "other secret",
                headers(&forged),
                "/peer/raft/0/append",
                b"{}",
                NOW,
                Err(ProofError::Mismatch),
            ),
            (
                "no headers",
                [None, None, None],
                "/peer/raft/0/append",
                b"{}",
                NOW,
                Err(ProofError::Missing),
            ),
            (
                "replayed late",
                headers(&proof),
                "/peer/raft/0/append",
                b"{}",
                NOW + 31_000,
                Err(ProofError::Stale { skew_ms: 31_000 }),
            ),
        ];
        for (name, headers, path, body, now, expected) in cases {
            let headers = [
                headers[0].as_deref(),
                headers[1].as_deref(),
                headers[2].as_deref(),
            ];
            let checked = signer.verify("POST", path, body, headers, now).map(|_| ());
            assert_eq!(checked, expected, "{name}");
        }
    }
}
