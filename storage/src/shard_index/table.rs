//! The in-memory product table: which product version each slot holds, and which slot is
//! each product's live one.

use std::collections::HashMap;
use std::sync::Arc;

use inkling_domain::Product;
use xxhash_rust::xxh3::xxh3_64;

/// A stable fingerprint of a product's content: equal products have equal versions on every
/// node and release (xxh3 of the product's JSON, whose maps are ordered), so the catalog and
/// a shard can be compared id by id without shipping products.
pub fn product_version(product: &Product) -> u64 {
    xxh3_64(&serde_json::to_vec(product).expect("products always serialise"))
}

/// One product version in the table.
struct Entry {
    product: Arc<Product>,
    /// [`product_version`] of the product, kept so reconciliation need not serialise it.
    version: u64,
}

/// The live products by slot, plus versions staged by a write in progress. Sparse, so
/// retired slots take no memory however high slot numbers climb.
#[derive(Default)]
pub(super) struct ProductTable {
    slots: HashMap<usize, Entry>,
    pub(super) by_id: HashMap<String, usize>,
    /// One past the highest slot handed out.
    pub(super) next_slot: usize,
}

impl ProductTable {
    pub(super) fn get(&self, slot: usize) -> Option<&Arc<Product>> {
        Some(&self.slots.get(&slot)?.product)
    }

    /// Entries in the table: the live products plus any staged version.
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Makes `slot` resolvable; the product's id still names its previous slot, if any.
    pub(super) fn stage(&mut self, slot: usize, product: Arc<Product>, version: u64) {
        self.next_slot = self.next_slot.max(slot + 1);
        self.slots.insert(slot, Entry { product, version });
    }

    /// Drops a staged slot whose write failed; it was never published.
    pub(super) fn unstage(&mut self, slot: usize) {
        self.slots.remove(&slot);
    }

    /// Makes the staged `slot` the product's one version and returns the slot it retires.
    pub(super) fn publish(&mut self, slot: usize, id: &str) -> Option<usize> {
        let previous = self.by_id.insert(id.to_string(), slot)?;
        if previous == slot {
            return None;
        }
        self.slots.remove(&previous);
        Some(previous)
    }

    /// Stages and publishes at once; returns the retired slot.
    pub(super) fn put(&mut self, slot: usize, product: Arc<Product>) -> Option<usize> {
        let id = product.id.clone();
        let version = product_version(&product);
        self.stage(slot, product, version);
        self.publish(slot, &id)
    }

    /// Retires the product's slot, if it has one, and returns it.
    pub(super) fn remove(&mut self, id: &str) -> Option<usize> {
        let slot = self.by_id.remove(id)?;
        self.slots.remove(&slot);
        Some(slot)
    }

    pub(super) fn versions(&self) -> HashMap<String, u64> {
        self.by_id
            .iter()
            .filter_map(|(id, slot)| Some((id.clone(), self.slots.get(slot)?.version)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_index::ShardIndex;
    use crate::shard_index::testing::{demo_index, demo_taxonomy, indexed, layout, product};

    #[test]
    fn versions_follow_the_stored_product() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let versions = index.versions();
        assert_eq!(versions.len(), 6);
        for product in index.lookup(&index.product_ids()) {
            assert_eq!(versions[&product.id], product_version(&product));
        }
        type Change = fn(&mut Product);
        // (why, change to iphone14, whether its version changes)
        let cases: [(&str, Change, bool); 4] = [
            ("the same content again", |_| {}, false),
            ("a new price", |product| product.price = 7999.0, true),
            ("out of stock", |product| product.in_stock = false, true),
            (
                "a new attribute",
                |product| {
                    product.attributes.insert("colour".into(), "red".into());
                },
                true,
            ),
        ];
        let id = "iphone14".to_string();
        for (why, change, changes) in cases {
            let before = index.versions()[&id];
            let mut product = (*index.lookup(std::slice::from_ref(&id))[0]).clone();
            change(&mut product);
            index.upsert(vec![indexed(product.clone())]).unwrap();
            let after = index.versions()[&id];
            assert_eq!(after != before, changes, "{why}");
            assert_eq!(after, product_version(&product), "{why}");
        }
        // Versions and slot numbering survive a reopen; slots are never reused.
        let versions = index.versions();
        let high_water = index.stats().slot_high_water;
        drop(index);
        let reopened = ShardIndex::open(dir.path(), demo_taxonomy(), &layout()).unwrap();
        assert_eq!(reopened.versions(), versions);
        assert_eq!(reopened.stats().slot_high_water, high_water);
        reopened
            .upsert(vec![indexed(product(
                "watch", "Watch", "手表", "Apple", 1.0,
            ))])
            .unwrap();
        assert_eq!(reopened.stats().slot_high_water, high_water + 1);
    }
}
