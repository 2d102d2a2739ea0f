//! [`Embedder`]: the model pool as seen by its clients, with the model it serves, request
//! sizes that fit its queue, and deadlines for queries and for passages.

use std::time::Duration;

use inkling_models::encoder::{ModelName, TextKind};

use crate::ActorError;
use crate::model_pool::{EmbedRequest, ModelPoolMsg};
use crate::slot::ActorSlot;

#[derive(Clone)]
pub struct Embedder {
    pub pool: ActorSlot<ModelPoolMsg>,
    pub model: ModelName,
    /// Most texts per request, so that a request always fits the pool's queue.
    pub chunk: usize,
    /// Deadline for one query inside an interactive request.
    pub query_timeout: Duration,
    /// Deadline for one request of at most `chunk` passages.
    pub passage_timeout: Duration,
}

impl Embedder {
    /// One unit vector per text, in order; long inputs go in several requests, one at a
    /// time, so interactive queries can slip in between them.
    pub async fn embed(
        &self,
        kind: TextKind,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, ActorError> {
        let timeout = match kind {
            TextKind::Query => self.query_timeout,
            TextKind::Passage => self.passage_timeout,
        };
        let mut vectors = Vec::with_capacity(texts.len());
        for part in texts.chunks(self.chunk.max(1)) {
            let request = EmbedRequest {
                model: self.model,
                kind,
                texts: part.to_vec(),
            };
            let answer = self
                .pool
                .ask(|reply| ModelPoolMsg::Embed(request, reply), timeout)
                .await??;
            vectors.extend(answer);
        }
        Ok(vectors)
    }

    pub async fn embed_query(&self, query: &str) -> Result<Vec<f32>, ActorError> {
        let mut vectors = self.embed(TextKind::Query, vec![query.to_string()]).await?;
        vectors
            .pop()
            .ok_or_else(|| ActorError::Unavailable("model pool answered no vector".into()))
    }
}
