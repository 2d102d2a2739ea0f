//! Shopper segments: k-means over fixed-size vectors hashed from profiles, so that shoppers
//! who like the same categories, brands and price levels share a segment and can share
//! segment-level recommendations.
//!
//! Fitting is an offline job and does its matrix maths with libtorch on the CPU; assigning a
//! shopper to a segment is plain Rust, so serving never touches libtorch.
//! Costs: [`profile_vector`] is O(affinities) per profile, [`Segments::fit`]
//! O(iterations × vectors × k × dims) and [`Segments::assign`] O(k × dims) per shopper.

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use inkling_domain::Profile;

/// Length of a [`profile_vector`].
pub const PROFILE_DIMS: usize = 64;

const CATEGORY_DIMS: Range<usize> = 0..40;
const BRAND_DIMS: Range<usize> = 40..56;
const PRICE_DIMS: Range<usize> = 56..PROFILE_DIMS;

/// The price buckets' centres spread evenly in log-price from 1 to 100 000.
const LOWEST_LOG_PRICE: f64 = 0.0;
const HIGHEST_LOG_PRICE: f64 = 11.512_925_464_970_229;

/// A profile as a unit vector of [`PROFILE_DIMS`] entries, or `None` when the profile holds no
/// category, brand or price evidence (yet, or any more as of `now_ms`).
///
/// Category and brand affinities are feature-hashed (the hashing trick), so the vector has a
/// fixed size however large the catalog; colliding names merely merge, which is harmless at
/// the coarseness of a segment. The mean log-price becomes a soft one-hot over price buckets,
/// so that neighbouring price levels stay close instead of being unrelated dimensions.
pub fn profile_vector(profile: &Profile, now_ms: u64, half_life_ms: u64) -> Option<Vec<f32>> {
    let categories = Profile::normalised(&profile.category_affinity, now_ms, half_life_ms);
    let brands = Profile::normalised(&profile.brand_affinity, now_ms, half_life_ms);
    let price = profile.price_affinity.band();
    if categories.is_empty() && brands.is_empty() && price.is_none() {
        return None;
    }
    let mut vector = vec![0.0f64; PROFILE_DIMS];
    hash_into(&mut vector[CATEGORY_DIMS], &categories);
    hash_into(&mut vector[BRAND_DIMS], &brands);
    if let Some((mean_log_price, _)) = price {
        soft_one_hot(&mut vector[PRICE_DIMS], mean_log_price);
    }
    unit_length(&vector)
}

fn hash_into(dims: &mut [f64], affinities: &[(String, f64)]) {
    for (name, affinity) in affinities {
        let index = fnv1a(name.as_bytes()) % dims.len() as u64;
        dims[index as usize] += affinity;
    }
}

/// FNV-1a: tiny, and stable across builds and machines, unlike `std`'s randomised hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A Gaussian kernel, one bucket wide, on the distance from `log_price` to each bucket centre.
fn soft_one_hot(buckets: &mut [f64], log_price: f64) {
    if !log_price.is_finite() {
        return;
    }
    let spacing = (HIGHEST_LOG_PRICE - LOWEST_LOG_PRICE) / (buckets.len() - 1) as f64;
    for (index, bucket) in buckets.iter_mut().enumerate() {
        let centre = LOWEST_LOG_PRICE + spacing * index as f64;
        let distance = (log_price - centre) / spacing;
        *bucket = (-0.5 * distance * distance).exp();
    }
}

fn unit_length(vector: &[f64]) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|value| value * value).sum::<f64>().sqrt();
    if !norm.is_finite() || norm <= f64::EPSILON {
        return None;
    }
    Some(vector.iter().map(|value| (value / norm) as f32).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentsError {
    #[error("no vectors to cluster")]
    NoVectors,
    #[error("at least one segment is needed")]
    NoSegments,
    #[error("vectors have no dimensions")]
    NoDimensions,
    #[error("vector {index} has {found} dimensions, expected {expected}")]
    MismatchedLengths {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("vector {index} holds a value that is not finite")]
    NotFinite { index: usize },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The centroids of the shopper segments; a segment's id is its centroid's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segments {
    pub centroids: Vec<Vec<f32>>,
}

impl Segments {
    /// k-means: k-means++ seeding from `seed`, then at most `iterations` Lloyd rounds, stopping
    /// once no vector changes segment. `k` is clamped to the number of distinct vectors, since
    /// more segments than that would have to repeat a centroid. A segment left empty by a round
    /// keeps its previous centroid.
    pub fn fit(
        vectors: &[Vec<f32>],
        k: usize,
        iterations: usize,
        seed: u64,
    ) -> Result<Segments, SegmentsError> {
        let dims = validate(vectors, k)?;
        let k = k.min(distinct_up_to(vectors, k));
        let flat = vectors.concat();
        let shape = [vectors.len() as i64, dims as i64];
        let centroids = tch::no_grad(|| {
            let points = Tensor::from_slice(&flat).view(shape);
            let seeded = seed_centroids(&points, k, &mut SplitMix64(seed))?;
            let centroids = refine(&points, seeded, iterations).contiguous();
            Vec::<Vec<f32>>::try_from(&centroids)
        })?;
        Ok(Segments { centroids })
    }

    /// The segment whose centroid is nearest to `vector` (the lowest id on a tie); `None` when
    /// there are no segments or `vector` has the wrong length.
    pub fn assign(&self, vector: &[f32]) -> Option<u32> {
        if self.centroids.first()?.len() != vector.len() {
            return None;
        }
        let (nearest, _) = self
            .centroids
            .iter()
            .map(|centroid| squared_distance(centroid, vector))
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        u32::try_from(nearest).ok()
    }

    pub fn len(&self) -> usize {
        self.centroids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }
}

/// Checks the input and returns its number of dimensions.
fn validate(vectors: &[Vec<f32>], k: usize) -> Result<usize, SegmentsError> {
    let Some(first) = vectors.first() else {
        return Err(SegmentsError::NoVectors);
    };
    if k == 0 {
        return Err(SegmentsError::NoSegments);
    }
    let expected = first.len();
    if expected == 0 {
        return Err(SegmentsError::NoDimensions);
    }
    for (index, vector) in vectors.iter().enumerate() {
        if vector.len() != expected {
            return Err(SegmentsError::MismatchedLengths {
                index,
                expected,
                found: vector.len(),
            });
        }
        if !vector.iter().all(|value| value.is_finite()) {
            return Err(SegmentsError::NotFinite { index });
        }
    }
    Ok(expected)
}

/// The number of distinct vectors, counting no further than `limit`.
fn distinct_up_to(vectors: &[Vec<f32>], limit: usize) -> usize {
    let mut seen = HashSet::new();
    for vector in vectors {
        // Adding zero turns -0.0 into 0.0, so the two compare equal as bits.
        seen.insert(
            vector
                .iter()
                .map(|value| (value + 0.0).to_bits())
                .collect::<Vec<_>>(),
        );
        if seen.len() >= limit {
            break;
        }
    }
    seen.len()
}

/// k-means++: each further centroid is a point drawn with probability proportional to its
/// squared distance from the nearest centroid so far, which spreads the seeds out.
fn seed_centroids(
    points: &Tensor,
    k: usize,
    rng: &mut SplitMix64,
) -> Result<Tensor, tch::TchError> {
    let count = points.size()[0] as usize;
    let first = ((rng.unit() * count as f64) as usize).min(count - 1);
    let mut chosen = vec![first as i64];
    let mut nearest = squared_distances_to(points, &points.get(first as i64));
    while chosen.len() < k {
        let weights = Vec::<f32>::try_from(&nearest)?;
        // Distinct points too close for f32 to tell apart leave nothing to draw: fewer seeds.
        let Some(next) = rng.weighted_choice(&weights) else {
            break;
        };
        chosen.push(next as i64);
        nearest = nearest.minimum(&squared_distances_to(points, &points.get(next as i64)));
    }
    Ok(points.index_select(0, &Tensor::from_slice(&chosen)))
}

/// Exact squared distances from every point to one centre: exactly zero for the centre's own
/// duplicates, so seeding never draws the same point twice.
fn squared_distances_to(points: &Tensor, centre: &Tensor) -> Tensor {
    (points - centre)
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

/// Lloyd rounds: assign every point to its nearest centroid, move each centroid to the mean
/// of its points.
fn refine(points: &Tensor, mut centroids: Tensor, iterations: usize) -> Tensor {
    let mut previous: Option<Tensor> = None;
    for _ in 0..iterations {
        let assignments = pairwise_squared_distances(points, &centroids).argmin(1, false);
        if previous
            .as_ref()
            .is_some_and(|last| last.equal(&assignments))
        {
            break;
        }
        centroids = cluster_means(points, &assignments, &centroids);
        previous = Some(assignments);
    }
    centroids
}

/// Squared distances between every point and every centroid as one matrix product:
/// |p - c|² = |p|² - 2 p·c + |c|².
fn pairwise_squared_distances(points: &Tensor, centroids: &Tensor) -> Tensor {
    let rows = [1i64].as_slice();
    let point_norms = points.square().sum_dim_intlist(rows, true, Kind::Float);
    let centroid_norms = centroids.square().sum_dim_intlist(rows, false, Kind::Float);
    let products = points.matmul(&centroids.transpose(0, 1));
    (point_norms - products * 2.0 + centroid_norms.unsqueeze(0)).clamp_min(0.0)
}

fn cluster_means(points: &Tensor, assignments: &Tensor, previous: &Tensor) -> Tensor {
    let k = previous.size()[0];
    let sums = previous.zeros_like().index_add(0, assignments, points);
    let counts = assignments
        .bincount::<Tensor>(None, k)
        .to_kind(Kind::Float)
        .unsqueeze(1);
    let means = sums / counts.clamp_min(1.0);
    means.where_self(&counts.gt(0.0), previous)
}

/// A tiny seeded generator (SplitMix64), so that a fit is reproducible without reseeding
/// libtorch's process-wide generator, which concurrent fits would race on.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index drawn with probability proportional to its weight; `None` when all are zero.
    fn weighted_choice(&mut self, weights: &[f32]) -> Option<usize> {
        let total: f64 = weights.iter().map(|&weight| f64::from(weight)).sum();
        if total <= 0.0 {
            return None;
        }
        let target = self.unit() * total;
        let mut cumulative = 0.0;
        let mut last_positive = None;
        for (index, &weight) in weights.iter().enumerate() {
            if weight <= 0.0 {
                continue;
            }
            cumulative += f64::from(weight);
            if cumulative > target {
                return Some(index);
            }
            last_positive = Some(index);
        }
        // Rounding can leave the target just past the last cumulative sum.
        last_positive
    }
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use inkling_domain::{Decayed, PriceAffinity};

    use super::*;

    /// `per_blob` points around each centre, each coordinate jittered by up to `jitter`.
    fn blobs(centres: &[Vec<f32>], per_blob: usize, jitter: f32) -> Vec<Vec<Vec<f32>>> {
        centres
            .iter()
            .enumerate()
            .map(|(blob, centre)| {
                (0..per_blob)
                    .map(|point| {
                        let offset = (blob * per_blob + point) * centre.len();
                        let wobble = |dim: usize| jitter * ((offset + dim) as f32 * 1.7).sin();
                        centre
                            .iter()
                            .enumerate()
                            .map(|(dim, value)| value + wobble(dim))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    /// Fits blobs and checks that each blob is exactly one segment, that blobs get different
    /// segments, and that `assign` agrees with the fit: every centroid is the mean of the
    /// points `assign` puts in its segment.
    fn check_blobs_recovered(blobs: &[Vec<Vec<f32>>], k: usize, seed: u64, expected_len: usize) {
        let points: Vec<Vec<f32>> = blobs.concat();
        let segments = Segments::fit(&points, k, 50, seed).unwrap();
        assert_eq!(segments.len(), expected_len, "seed {seed}");
        let labels: Vec<u32> = blobs
            .iter()
            .map(|blob| {
                let label = segments.assign(&blob[0]).unwrap();
                for point in blob {
                    assert_eq!(segments.assign(point), Some(label), "seed {seed}");
                }
                label
            })
            .collect();
        let distinct: HashSet<u32> = labels.iter().copied().collect();
        assert_eq!(distinct.len(), blobs.len(), "seed {seed}: {labels:?}");
        for (label, centroid) in segments.centroids.iter().enumerate() {
            let members: Vec<&Vec<f32>> = points
                .iter()
                .filter(|point| segments.assign(point) == Some(label as u32))
                .collect();
            for (dim, value) in centroid.iter().enumerate() {
                let mean =
                    members.iter().map(|point| point[dim]).sum::<f32>() / members.len() as f32;
                assert!(
                    (value - mean).abs() < 1e-4,
                    "seed {seed}: {value} vs {mean}"
                );
            }
        }
    }

    #[test]
    fn fit_recovers_well_separated_blobs() {
        let flat = vec![vec![0.0, 0.0], vec![10.0, 0.0], vec![0.0, 10.0]];
        let wide: Vec<Vec<f32>> = (0..3)
            .map(|blob| {
                (0..PROFILE_DIMS)
                    .map(|dim| ((dim % 3 == blob) as u8) as f32)
                    .collect()
            })
            .collect();
        // (centres, points per blob, jitter, k, seed, expected number of segments)
        type Case = (Vec<Vec<f32>>, usize, f32, usize, u64, usize);
        let cases: Vec<Case> = vec![
            (flat.clone(), 20, 0.5, 3, 1, 3),
            (flat.clone(), 20, 0.5, 3, 2, 3),
            (flat.clone(), 20, 0.5, 3, 42, 3),
            (wide.clone(), 10, 0.05, 3, 7, 3),
            (wide, 10, 0.05, 3, 8, 3),
            // Three distinct points only: k is clamped to three.
            (flat, 5, 0.0, 10, 3, 3),
        ];
        for (centres, per_blob, jitter, k, seed, expected_len) in cases {
            check_blobs_recovered(&blobs(&centres, per_blob, jitter), k, seed, expected_len);
        }
    }

    #[test]
    fn fit_is_reproducible_for_a_seed() {
        let points = blobs(&[vec![0.0, 0.0], vec![5.0, 5.0]], 10, 1.0).concat();
        let fit = |seed| Segments::fit(&points, 2, 20, seed).unwrap();
        assert_eq!(fit(9), fit(9));
    }

    #[test]
    fn assign_needs_centroids_of_the_same_length() {
        let segments = Segments {
            centroids: vec![vec![0.0, 0.0], vec![4.0, 0.0]],
        };
        let cases: Vec<(Vec<f32>, Option<u32>)> = vec![
            (vec![1.0, 0.0], Some(0)),
            (vec![3.0, 1.0], Some(1)),
            // Equidistant: the lowest id wins.
            (vec![2.0, 0.0], Some(0)),
            (vec![1.0], None),
        ];
        for (vector, expected) in cases {
            assert_eq!(segments.assign(&vector), expected, "{vector:?}");
        }
        let empty = Segments { centroids: vec![] };
        assert!(empty.is_empty());
        assert_eq!(empty.assign(&[1.0]), None);
    }

    #[test]
    fn fit_rejects_bad_input() {
        let cases: Vec<(Vec<Vec<f32>>, usize, &str)> = vec![
            (vec![], 2, "no vectors to cluster"),
            (vec![vec![1.0]], 0, "at least one segment is needed"),
            (vec![vec![], vec![]], 1, "vectors have no dimensions"),
            (
                vec![vec![1.0, 2.0], vec![1.0]],
                1,
                "vector 1 has 1 dimensions, expected 2",
            ),
            (
                vec![vec![1.0], vec![f32::NAN]],
                1,
                "vector 1 holds a value that is not finite",
            ),
        ];
        for (vectors, k, expected) in cases {
            let error = Segments::fit(&vectors, k, 10, 0).unwrap_err();
            assert_eq!(error.to_string(), expected, "{vectors:?}");
        }
    }

    const DAY: u64 = 24 * 60 * 60 * 1000;

    fn affinities(entries: &[(&str, f64)]) -> BTreeMap<String, Decayed> {
        entries
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    Decayed {
                        value: *value,
                        at_ms: 0,
                    },
                )
            })
            .collect()
    }

    fn profile(categories: &[(&str, f64)], brands: &[(&str, f64)], price: Option<f64>) -> Profile {
        let at = |value| Decayed { value, at_ms: 0 };
        let price_affinity = price.map_or_else(PriceAffinity::default, |price: f64| {
            let log_price = price.ln();
            PriceAffinity {
                weight: at(1.0),
                log_price_sum: at(log_price),
                log_price_square_sum: at(log_price * log_price),
            }
        });
        Profile {
            category_affinity: affinities(categories),
            brand_affinity: affinities(brands),
            price_affinity,
            ..Profile::new("u")
        }
    }

    #[test]
    fn profile_vectors_are_unit_length_when_there_is_evidence() {
        let cases: Vec<(Profile, bool)> = vec![
            (Profile::new("u"), false),
            (profile(&[("手机", 0.0)], &[], None), false),
            (profile(&[("手机", 2.0)], &[], None), true),
            (profile(&[], &[("Apple", 1.0)], None), true),
            (profile(&[], &[], Some(3000.0)), true),
            (
                profile(
                    &[("手机", 2.0), ("耳机", 1.0)],
                    &[("Apple", 1.0)],
                    Some(0.5),
                ),
                true,
            ),
        ];
        for (profile, has_vector) in cases {
            let vector = profile_vector(&profile, DAY, DAY);
            assert_eq!(vector.is_some(), has_vector, "{profile:?}");
            let Some(vector) = vector else { continue };
            assert_eq!(vector.len(), PROFILE_DIMS);
            let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
            assert_eq!(
                profile_vector(&profile, DAY, DAY),
                Some(vector),
                "deterministic"
            );
        }
    }

    #[test]
    fn similar_tastes_give_nearby_vectors() {
        let vector = |categories: &[(&str, f64)], price| {
            profile_vector(&profile(categories, &[], Some(price)), 0, DAY).unwrap()
        };
        let phones = vector(&[("手机", 1.0), ("耳机", 0.5)], 3000.0);
        // (the other profile, a profile that should be further from `phones` than it)
        let cases = vec![
            (
                vector(&[("手机", 0.8), ("耳机", 0.6)], 3000.0),
                vector(&[("厨具", 1.0), ("床品", 0.5)], 3000.0),
            ),
            (
                vector(&[("手机", 1.0), ("耳机", 0.5)], 2500.0),
                vector(&[("手机", 1.0), ("耳机", 0.5)], 30.0),
            ),
        ];
        for (near, far) in cases {
            let (near, far) = (
                squared_distance(&phones, &near),
                squared_distance(&phones, &far),
            );
            assert!(near < far, "{near} vs {far}");
        }
    }
}
