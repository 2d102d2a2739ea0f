//! Plain HTTP calls to a node, with a timeout per call: the harness and the shoppers only
//! ever talk to nodes through their public and internal HTTP APIs.

use std::time::Duration;

/// One attempt may take this long before a client tries the next gateway: a frozen node
/// accepts connections and never answers, and a client that waited out the node's own
/// 5 s deadline would see every failover as slow as that.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(CALL_TIMEOUT)
        .timeout_connect(Duration::from_secs(1))
        .build()
}

thread_local! {
    static AGENT: ureq::Agent = agent();
}

/// An administrative call (a drain moves replicas before it answers) may take this long.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A POST that may take long to answer, for the harness's administrative calls.
pub fn post_admin(
    base_url: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let agent = ureq::AgentBuilder::new().timeout(ADMIN_TIMEOUT).build();
    outcome(agent.post(&format!("{base_url}{path}")).send_json(body))
        .map_err(|error| error.to_string())
}

/// Why a call failed: the HTTP status (0 when there was no answer at all) and the message.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            0 => write!(f, "no answer: {}", self.message),
            status => write!(f, "HTTP {status}: {}", self.message),
        }
    }
}

fn outcome(called: Result<ureq::Response, ureq::Error>) -> Result<serde_json::Value, CallError> {
    match called {
        Ok(response) => response.into_json().map_err(|error| CallError {
            status: 0,
            message: format!("unreadable answer: {error}"),
        }),
        Err(ureq::Error::Status(status, response)) => Err(CallError {
            status,
            message: response.into_string().unwrap_or_default(),
        }),
        Err(error) => Err(CallError {
            status: 0,
            message: error.to_string(),
        }),
    }
}

pub fn get_json(base_url: &str, path: &str) -> Result<serde_json::Value, CallError> {
    AGENT.with(|agent| outcome(agent.get(&format!("{base_url}{path}")).call()))
}

pub fn post_json(
    base_url: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, CallError> {
    AGENT.with(|agent| outcome(agent.post(&format!("{base_url}{path}")).send_json(body)))
}

pub fn get(base_url: &str, path: &str) -> Result<serde_json::Value, String> {
    get_json(base_url, path).map_err(|error| error.to_string())
}

pub fn post(
    base_url: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    post_json(base_url, path, body).map_err(|error| error.to_string())
}
