//! Writes: upserts and deletes, each committed and visible before it returns, and the
//! undoing of a write that failed half-way.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::{IndexWriter, Term};
use xxhash_rust::xxh3::xxh3_64;

use super::ShardIndex;
use crate::{Result, StorageError};
use inkling_domain::Product;

/// A product with its embedding, when the node has an encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedProduct {
    pub product: Product,
    pub vector: Option<Vec<f32>>,
}

impl ShardIndex {
    /// Adds or replaces products and makes them searchable before returning. A failed write
    /// leaves neither its documents nor its staged versions behind.
    pub fn upsert(&self, products: Vec<IndexedProduct>) -> Result<()> {
        self.check_dimensions(&products)?;
        let mut writer = self.writer.lock();
        let mut staged = Vec::with_capacity(products.len());
        let written = self
            .stage(&mut writer, products, &mut staged)
            .and_then(|()| self.commit(&mut writer));
        if let Err(error) = written {
            self.abandon(&mut writer, &staged);
            return Err(error);
        }
        // Only now does the old version leave, so a product is never missing in between
        // (for a moment a vector search may see both versions; callers dedupe by id).
        let retired: Vec<usize> = {
            let mut table = self.table.write();
            staged
                .iter()
                .filter_map(|(slot, id)| table.publish(*slot, id))
                .collect()
        };
        self.forget_vectors(&retired);
        Ok(())
    }

    /// Gives each product a new slot, resolvable at once, and queues its document; `staged`
    /// lists the (slot, id) pairs staged so far, even when a later product fails.
    fn stage(
        &self,
        writer: &mut IndexWriter,
        products: Vec<IndexedProduct>,
        staged: &mut Vec<(usize, String)>,
    ) -> Result<()> {
        for (slot, IndexedProduct { product, vector }) in (self.next_slot()..).zip(products) {
            // One serialisation serves the stored copy and the version.
            let json = serde_json::to_string(&product).expect("products always serialise");
            let document = self.document(&product, slot, vector.as_deref(), &json);
            let id = product.id.clone();
            self.table
                .write()
                .stage(slot, Arc::new(product), xxh3_64(json.as_bytes()));
            staged.push((slot, id.clone()));
            if let Some(vector) = &vector {
                let vectors = self.vector_index(vector.len(), 1_000)?;
                vectors.insert(slot, vector.as_slice().into());
            }
            writer.delete_term(Term::from_field_text(self.fields.id, &id));
            writer.add_document(document)?;
        }
        Ok(())
    }

    /// Undoes a failed upsert: the writer drops its uncommitted documents (so a later commit
    /// cannot write them behind the table's back) and the staged slots leave memory.
    fn abandon(&self, writer: &mut IndexWriter, staged: &[(usize, String)]) {
        if let Err(error) = writer.rollback() {
            tracing::warn!(%error, "cannot roll back a failed shard write");
        }
        let slots: Vec<usize> = staged.iter().map(|(slot, _)| *slot).collect();
        {
            let mut table = self.table.write();
            for slot in &slots {
                table.unstage(*slot);
            }
        }
        self.forget_vectors(&slots);
    }

    /// Drops the vectors of retired slots; the vector index rebuilds its graph when enough
    /// of it is dead.
    fn forget_vectors(&self, slots: &[usize]) {
        if slots.is_empty() {
            return;
        }
        if let Some(vectors) = self.vectors.get() {
            vectors.remove(slots);
        }
    }

    /// Refuses a batch whose vectors disagree with each other or with the shard's, before
    /// anything of it is written.
    fn check_dimensions(&self, products: &[IndexedProduct]) -> Result<()> {
        let mut dimensions = products
            .iter()
            .filter_map(|indexed| indexed.vector.as_ref().map(Vec::len));
        let Some(first) = dimensions.next() else {
            return Ok(());
        };
        if let Some(other) = dimensions.find(|dimension| *dimension != first) {
            return Err(StorageError::Other(format!(
                "vectors of {first} and {other} dimensions in one batch"
            )));
        }
        self.vector_index(first, products.len()).map(|_| ())
    }

    /// Removes products by id and makes the removal visible before returning. Returns how
    /// many of `ids` the shard held (each counted once).
    pub fn delete(&self, ids: &[String]) -> Result<usize> {
        let mut writer = self.writer.lock();
        let removed: Vec<usize> = {
            let mut table = self.table.write();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        self.forget_vectors(&removed);
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        self.commit(&mut writer)?;
        Ok(removed.len())
    }

    fn next_slot(&self) -> usize {
        self.table.read().next_slot
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ChineseSegmentation;
    use crate::shard_index::testing::{
        check, demo_index, demo_taxonomy, indexed, layout, product, query, text, vector_of,
    };
    use crate::shard_index::{Retrieval, ShardLayout};
    use inkling_domain::{Filters, Taxonomy};

    #[test]
    fn updates_and_deletes_are_visible_at_once_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let near_tablets = query(Retrieval::Vector(vector_of("平板")), Filters::default());
        {
            let index = demo_index(dir.path());
            index
                .delete(&["macbook".into(), "ipadmini".into()])
                .unwrap();
            index
                .upsert(vec![indexed(product(
                    "xiaomi12",
                    "Xiaomi 12",
                    "手机",
                    "Xiaomi",
                    2999.0,
                ))])
                .unwrap();
            check(
                &index,
                query(text("macbook"), Filters::default()),
                &[],
                false,
            );
            let near = index.search(&near_tablets).unwrap();
            assert!(near.iter().all(|hit| hit.product.id != "ipadmini"));
        }
        let reopened = ShardIndex::open(dir.path(), demo_taxonomy(), &layout()).unwrap();
        assert_eq!(reopened.num_docs(), 4);
        let hits = reopened
            .search(&query(text("xiaomi"), Filters::default()))
            .unwrap();
        assert_eq!(hits[0].product.price, 2999.0);
        assert_eq!(reopened.search(&near_tablets).unwrap().len(), 4);
        drop(reopened);
        // Other settings or other category aliases mean another index: it starts empty,
        // to be refilled from the catalog.
        let other = ShardLayout::new(ChineseSegmentation::Bigram, Some("toy".into()));
        let rebuilt = ShardIndex::open(dir.path(), demo_taxonomy(), &other).unwrap();
        assert_eq!(rebuilt.num_docs(), 0);
        rebuilt
            .upsert(vec![indexed(product("x", "X", "手机", "Xiaomi", 1.0))])
            .unwrap();
        drop(rebuilt);
        let same = ShardIndex::open(dir.path(), demo_taxonomy(), &other).unwrap();
        assert_eq!(same.num_docs(), 1);
        drop(same);
        let renamed = Taxonomy {
            aliases: [("手机".to_string(), vec!["cell phones".to_string()])].into(),
            ..Default::default()
        };
        let rebuilt = ShardIndex::open(dir.path(), renamed, &other).unwrap();
        assert_eq!(rebuilt.num_docs(), 0);
    }

    #[test]
    fn delete_counts_the_products_the_shard_held() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        // (ids to delete, how many the shard held), in order on one shard
        let cases: [(&[&str], usize); 4] = [
            (&["macbook", "ipadmini"], 2),
            (&["macbook", "unknown"], 0),
            (&["case", "case"], 1),
            (&[], 0),
        ];
        for (ids, held) in cases {
            let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            assert_eq!(index.delete(&ids).unwrap(), held, "{ids:?}");
        }
        let stats = index.stats();
        assert_eq!(index.num_docs(), 3);
        assert_eq!(
            (stats.live_products, stats.product_slots, stats.live_vectors),
            (3, 3, 3)
        );
        assert_eq!(stats.dead_graph_points, 3);
    }
}
