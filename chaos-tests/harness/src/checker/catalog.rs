//! (h) The catalog: once the cluster is whole, every node's search finds each product the
//! merchant wrote at the edition its last acknowledged write gave it, or at one it sent
//! later (a write whose answer was lost may still have been applied), and a product whose
//! last acknowledged write deleted it does not come back.

use std::collections::BTreeMap;

use crate::workload::{CatalogWrite, Journal};

/// What each node's search found of the merchant's products: product → edition, or why
/// the node could not be read.
pub type CatalogReadBacks = BTreeMap<String, Result<BTreeMap<String, u64>, String>>;

pub struct CatalogCheck {
    pub acknowledged: usize,
    pub violations: usize,
    pub findings: Vec<String>,
}

impl CatalogCheck {
    pub fn failure(&self) -> Option<String> {
        (self.violations > 0).then(|| {
            format!(
                "(h) {} catalog read-backs contradict an acknowledged write",
                self.violations
            )
        })
    }
}

/// What a product may be found as after `writes` (in the order sent): absent (`None`) or
/// an edition.
fn allowed(writes: &[&CatalogWrite]) -> Vec<Option<u64>> {
    match writes.iter().rposition(|write| write.acknowledged) {
        Some(last) => writes[last..].iter().map(|write| write.edition).collect(),
        None => std::iter::once(None)
            .chain(writes.iter().map(|write| write.edition))
            .collect(),
    }
}

/// What each product the merchant wrote may be found as.
fn allowed_by_product(journal: &Journal) -> BTreeMap<&str, Vec<Option<u64>>> {
    let mut by_product: BTreeMap<&str, Vec<&CatalogWrite>> = BTreeMap::new();
    for write in &journal.catalog {
        by_product.entry(&write.product).or_default().push(write);
    }
    by_product
        .into_iter()
        .map(|(product, writes)| (product, allowed(&writes)))
        .collect()
}

/// The findings of one node's read-back: one for each product found as it may not be.
pub fn node_findings(
    journal: &Journal,
    node: &str,
    found: &Result<BTreeMap<String, u64>, String>,
) -> Vec<String> {
    let found = match found {
        Ok(found) => found,
        Err(error) => return vec![format!("{node}: the catalog could not be read: {error}")],
    };
    let show = |state: Option<u64>| state.map_or("absent".to_string(), |e| format!("edition {e}"));
    allowed_by_product(journal)
        .into_iter()
        .filter_map(|(product, allowed)| {
            let state = found.get(product).copied();
            if allowed.contains(&state) {
                return None;
            }
            let expected: Vec<String> = allowed.into_iter().map(show).collect();
            Some(format!(
                "{node}: {product} found {}, where the writes acknowledged allow {}",
                show(state),
                expected.join(" or ")
            ))
        })
        .collect()
}

pub fn check_catalog(journal: &Journal, read_backs: &CatalogReadBacks) -> CatalogCheck {
    let findings: Vec<String> = read_backs
        .iter()
        .flat_map(|(node, found)| node_findings(journal, node, found))
        .collect();
    CatalogCheck {
        acknowledged: journal.catalog.iter().filter(|w| w.acknowledged).count(),
        violations: findings.len(),
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(edition: Option<u64>, acknowledged: bool) -> CatalogWrite {
        CatalogWrite {
            product: "chaosware-1".into(),
            edition,
            acknowledged,
        }
    }

    #[test]
    fn a_product_is_found_as_its_last_acknowledged_write_left_it_or_later() {
        // (name, the writes in order, what was found, whether that is allowed)
        let cases = [
            (
                "the last acknowledged edition",
                vec![write(Some(1), true), write(Some(2), true)],
                Some(2),
                true,
            ),
            (
                "an older edition",
                vec![write(Some(1), true), write(Some(2), true)],
                Some(1),
                false,
            ),
            (
                "a later edition whose answer was lost",
                vec![write(Some(1), true), write(Some(2), false)],
                Some(2),
                true,
            ),
            (
                "an acknowledged deletion",
                vec![write(Some(1), true), write(None, true)],
                None,
                true,
            ),
            (
                "a deleted product back",
                vec![write(Some(1), true), write(None, true)],
                Some(1),
                false,
            ),
            ("lost", vec![write(Some(1), true)], None, false),
            (
                "never acknowledged, absent",
                vec![write(Some(1), false)],
                None,
                true,
            ),
            (
                "never acknowledged, applied",
                vec![write(Some(1), false)],
                Some(1),
                true,
            ),
        ];
        for (name, writes, state, ok) in cases {
            let journal = Journal {
                catalog: writes,
                ..Journal::default()
            };
            let found: BTreeMap<String, u64> = state
                .map(|edition| ("chaosware-1".to_string(), edition))
                .into_iter()
                .collect();
            let read_backs = CatalogReadBacks::from([("node-1".to_string(), Ok(found))]);
            let check = check_catalog(&journal, &read_backs);
            assert_eq!(check.violations == 0, ok, "{name}: {:?}", check.findings);
            assert_eq!(check.failure().is_none(), ok, "{name}");
        }
    }

    #[test]
    fn a_node_that_cannot_be_read_is_a_violation() {
        let journal = Journal {
            catalog: vec![write(Some(1), true)],
            ..Journal::default()
        };
        let read_backs = CatalogReadBacks::from([("node-2".to_string(), Err("timed out".into()))]);
        let check = check_catalog(&journal, &read_backs);
        assert_eq!(check.violations, 1);
        assert!(check.findings[0].starts_with("node-2: the catalog could not be read"));
    }
}
