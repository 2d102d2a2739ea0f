//! Who may speak to a node: the cluster secret nodes share, the proofs of it that peer
//! traffic and gossip carry, and the API keys (each with a scope) that clients present.
//!
//! `inkling-auth` owns credentials and the checks on them, as plain functions over bytes
//! and strings. It must never know about HTTP frameworks, actors, raft or storage: the
//! gateway and the peer plane turn its answers into refusals, and the node decides where
//! credentials come from.

pub mod keys;
pub mod peer;
pub mod secret;

pub use keys::{ApiKey, Caller, KeyHash, KeyRing, Refusal, Scope};
pub use peer::{PeerProof, PeerSigner, ProofError};
pub use secret::{ClusterSecret, DerivedKey, SecretError};

/// `count` random bytes from the operating system.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    // The OS random source failing means the machine cannot make any secret safely.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}
