//! [`Embedder`]: the model pools as seen by their clients, with the model they serve,
//! request sizes that fit a pool's queue, and deadlines for queries and for passages.
//!
//! A request goes to this node's pool when it has one running, then to a pool on a GPU
//! elsewhere, then to any pool of the model: remote pools are members of the model's
//! process groups ([`pool_group`]), which ractor_cluster keeps in step across nodes, so
//! this code never learns where they run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use inkling_domain::{PassageVector, ProductWrite};
use inkling_models::encoder::{ModelName, TextKind};
use ractor::ActorRef;

use crate::ActorError;
use crate::model_pool::{Device, EmbedRequest, ModelPoolMsg, pool_group};
use crate::slot::ActorSlot;

#[derive(Clone)]
pub struct Embedder {
    /// This node's pool; `None` on a node that runs no encoder.
    pub local: Option<ActorSlot<ModelPoolMsg>>,
    pub model: ModelName,
    /// Most texts per request, so that a request always fits the pool's queue.
    pub chunk: usize,
    /// Deadline for one query inside an interactive request.
    pub query_timeout: Duration,
    /// Deadline for one request of at most `chunk` passages.
    pub passage_timeout: Duration,
    /// Spreads requests over remote pools.
    pub next_remote: Arc<AtomicUsize>,
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
            let (pool, name) = self.pool()?;
            let started = std::time::Instant::now();
            let trace = inkling_ops::trace::TraceContext::current();
            let message = |reply| ModelPoolMsg::Embed(request, trace, reply);
            let asked = crate::ask(&pool, message, timeout, &name).await;
            if !pool.get_id().is_local() {
                let answered = matches!(asked, Ok(Ok(_)));
                inkling_ops::metrics::observe_remote_call("model_pool", started, answered);
            }
            let answer = asked??;
            vectors.extend(answer);
        }
        Ok(vectors)
    }

    /// The pool to ask now, and what to call it in errors.
    fn pool(&self) -> Result<(ActorRef<ModelPoolMsg>, String), ActorError> {
        if let Some(local) = &self.local
            && let Ok(pool) = local.get()
        {
            return Ok((pool, local.name().to_string()));
        }
        for device in [Device::Cuda, Device::Cpu] {
            let remote: Vec<_> = ractor::pg::get_members(&pool_group(self.model, device))
                .into_iter()
                .filter(|pool| !pool.get_id().is_local())
                .collect();
            if remote.is_empty() {
                continue;
            }
            let pick = self.next_remote.fetch_add(1, Ordering::Relaxed) % remote.len();
            let name = format!(
                "remote {} model pool {}",
                device.as_str(),
                remote[pick].get_id()
            );
            return Ok((ActorRef::from(remote[pick].clone()), name));
        }
        Err(ActorError::Unavailable(format!(
            "no model pool for {} is running here or on a reachable node",
            self.model.as_str()
        )))
    }

    /// Gives each write that carries no vector of this encoder one computed here, counted
    /// in `inkling_passages_embedded_total` under `reason`; the others are left as they are.
    pub async fn complete_passage_vectors(
        &self,
        writes: &mut [ProductWrite],
        reason: &str,
    ) -> Result<(), ActorError> {
        let encoder = self.model.encoder_id();
        let missing: Vec<usize> = (0..writes.len())
            .filter(|at| {
                let vector = writes[*at].vector.as_ref();
                vector.and_then(|v| v.from_encoder(&encoder)).is_none()
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let passages = missing
            .iter()
            .map(|at| writes[*at].product.passage())
            .collect();
        let vectors = self.embed(TextKind::Passage, passages).await?;
        inkling_ops::metrics::PASSAGES_EMBEDDED
            .with_label_values(&[reason])
            .inc_by(missing.len() as u64);
        for (at, values) in missing.into_iter().zip(vectors) {
            writes[at].vector = Some(PassageVector {
                encoder: encoder.clone(),
                values,
            });
        }
        Ok(())
    }

    pub async fn embed_query(&self, query: &str) -> Result<Vec<f32>, ActorError> {
        let mut vectors = self.embed(TextKind::Query, vec![query.to_string()]).await?;
        vectors
            .pop()
            .ok_or_else(|| ActorError::Unavailable("model pool answered no vector".into()))
    }
}
