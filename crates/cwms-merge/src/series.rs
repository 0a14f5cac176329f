//! The identity of a series, stored once per series and shared by all its points.

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// The identity of one series: account, region, namespace, metric name and dimensions, with the
/// two keys the lake derives from them (`dimension_key` and `series_id`) computed once.
///
/// A [`crate::Partition`] keeps one `SeriesKey` per series and lets every point refer to it, so
/// a million points of a few thousand series carry a few thousand copies of their strings, not a
/// million.
///
/// Two keys are equal exactly when their account, region, namespace, metric name and dimensions
/// are; `dimension_key` and `series_id` follow from those.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    account_id: Box<str>,
    region: Box<str>,
    namespace: Box<str>,
    metric_name: Box<str>,
    /// Sorted by name, then value (the order [`cwms_model::dimension_key`] uses).
    dimensions: Box<[(Box<str>, Box<str>)]>,
    dimension_key: Box<str>,
    series_id: i64,
}

impl SeriesKey {
    /// Builds the key of a series; the dimensions may come in any order.
    pub fn new<'a>(
        account_id: &str,
        region: &str,
        namespace: &str,
        metric_name: &str,
        dimensions: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut pairs: Vec<(&str, &str)> = dimensions.into_iter().collect();
        pairs.sort_unstable();
        Self::from_sorted(account_id, region, namespace, metric_name, &pairs)
    }

    /// Builds the key from dimensions already sorted by (name, value).
    pub(crate) fn from_sorted<D: AsRef<str>>(
        account_id: &str,
        region: &str,
        namespace: &str,
        metric_name: &str,
        dimensions: &[(D, D)],
    ) -> Self {
        debug_assert!(is_sorted_pairs(dimensions));
        let dimension_key = cwms_model::dimension_key(dimensions.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let series_id = cwms_model::series_id(account_id, region, namespace, metric_name, &dimension_key);
        SeriesKey {
            account_id: account_id.into(),
            region: region.into(),
            namespace: namespace.into(),
            metric_name: metric_name.into(),
            dimensions: dimensions.iter().map(|(k, v)| (k.as_ref().into(), v.as_ref().into())).collect(),
            dimension_key: dimension_key.into(),
            series_id,
        }
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn metric_name(&self) -> &str {
        &self.metric_name
    }

    /// The dimension name and value pairs, sorted by name (then value).
    pub fn dimensions(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        self.dimensions.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The canonical `Name=Value,...` text of the dimensions (see [`cwms_model::dimension_key`]).
    pub fn dimension_key(&self) -> &str {
        &self.dimension_key
    }

    /// The stable 64-bit fingerprint of the series (see [`cwms_model::series_id`]).
    pub fn series_id(&self) -> i64 {
        self.series_id
    }

    /// The order of series in a lake file: `metric_name`, `dimension_key`, then `account_id`,
    /// `region` and `namespace`, which make it total.
    ///
    /// A file sorts rows by (`metric_name`, `dimension_key`, `timestamp`, `account_id`, `region`);
    /// [`crate::Partition::rows`] combines this order with the timestamp.
    pub fn lake_order(&self, other: &SeriesKey) -> Ordering {
        self.metric_name
            .cmp(&other.metric_name)
            .then_with(|| self.dimension_key.cmp(&other.dimension_key))
            .then_with(|| self.account_id.cmp(&other.account_id))
            .then_with(|| self.region.cmp(&other.region))
            .then_with(|| self.namespace.cmp(&other.namespace))
    }

    fn matches<D: AsRef<str>>(&self, parts: &SeriesParts<'_, D>) -> bool {
        *self.account_id == *parts.account_id
            && *self.region == *parts.region
            && *self.namespace == *parts.namespace
            && *self.metric_name == *parts.metric_name
            && self.dimensions.len() == parts.dimensions.len()
            && self.dimensions.iter().zip(parts.dimensions).all(|((ak, av), (bk, bv))| **ak == *bk.as_ref() && **av == *bv.as_ref())
    }

    fn parts(&self) -> SeriesParts<'_, Box<str>> {
        SeriesParts {
            account_id: &self.account_id,
            region: &self.region,
            namespace: &self.namespace,
            metric_name: &self.metric_name,
            dimensions: &self.dimensions,
        }
    }
}

/// The identity of a series as borrowed strings, with dimensions sorted by (name, value).
pub(crate) struct SeriesParts<'x, D> {
    pub account_id: &'x str,
    pub region: &'x str,
    pub namespace: &'x str,
    pub metric_name: &'x str,
    pub dimensions: &'x [(D, D)],
}

impl<D: AsRef<str>> SeriesParts<'_, D> {
    fn hash_with(&self, state: &RandomState) -> u64 {
        let mut h = state.build_hasher();
        // `str::hash` ends each string with 0xff, a byte UTF-8 never contains, so fields cannot
        // run into each other.
        self.account_id.hash(&mut h);
        self.region.hash(&mut h);
        self.namespace.hash(&mut h);
        self.metric_name.hash(&mut h);
        h.write_usize(self.dimensions.len());
        for (k, v) in self.dimensions {
            k.as_ref().hash(&mut h);
            v.as_ref().hash(&mut h);
        }
        h.finish()
    }
}

/// Whether pairs are sorted by (name, value), the canonical order of a series' dimensions.
pub(crate) fn is_sorted_pairs<D: AsRef<str>>(pairs: &[(D, D)]) -> bool {
    pairs.is_sorted_by(|(ak, av), (bk, bv)| (ak.as_ref(), av.as_ref()) <= (bk.as_ref(), bv.as_ref()))
}

/// Hands out one small index per distinct series, looked up from borrowed strings so that
/// finding a known series allocates nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeriesInterner {
    keys: Vec<Arc<SeriesKey>>,
    /// (identity hash, index into `keys`). The table stores the hash so that growing it never
    /// hashes a key's strings again; the hash is foldhash's (fast, not DoS-resistant: the
    /// series come from the operator's own account, and a collision only costs a comparison).
    index: HashTable<(u64, usize)>,
    state: RandomState,
}

impl SeriesInterner {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn get(&self, index: usize) -> &Arc<SeriesKey> {
        &self.keys[index]
    }

    pub fn keys(&self) -> &[Arc<SeriesKey>] {
        &self.keys
    }

    /// The index of the series, adding it if it is new.
    pub fn intern<D: AsRef<str>>(&mut self, parts: &SeriesParts<'_, D>) -> usize {
        let hash = parts.hash_with(&self.state);
        if let Some(&(_, found)) = self.index.find(hash, |&(h, i)| h == hash && self.keys[i].matches(parts)) {
            return found;
        }
        let key = SeriesKey::from_sorted(parts.account_id, parts.region, parts.namespace, parts.metric_name, parts.dimensions);
        self.push(hash, Arc::new(key))
    }

    /// The index of an existing key (from another partition), sharing it if it is new here.
    pub fn intern_key(&mut self, key: &Arc<SeriesKey>) -> usize {
        let parts = key.parts();
        let hash = parts.hash_with(&self.state);
        if let Some(&(_, found)) = self.index.find(hash, |&(h, i)| h == hash && self.keys[i].matches(&parts)) {
            return found;
        }
        self.push(hash, Arc::clone(key))
    }

    fn push(&mut self, hash: u64, key: Arc<SeriesKey>) -> usize {
        let index = self.keys.len();
        self.index.insert_unique(hash, (hash, index), |&(h, _)| h);
        self.keys.push(key);
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sorts_dimensions_and_derives_the_lake_keys() {
        let key = SeriesKey::new("1", "us-east-1", "AWS/EC2", "CPU", [("b", "2"), ("a", "1")]);
        assert_eq!(key.dimensions().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        assert_eq!(key.dimension_key(), "a=1,b=2");
        assert_eq!(key.series_id(), cwms_model::series_id("1", "us-east-1", "AWS/EC2", "CPU", "a=1,b=2"));
    }

    #[test]
    fn interner_finds_a_series_by_borrowed_parts() {
        let mut interner = SeriesInterner::default();
        let parts = |ns| SeriesParts { account_id: "1", region: "r", namespace: ns, metric_name: "m", dimensions: &[("a", "1")] };
        assert_eq!(interner.intern(&parts("x")), 0);
        assert_eq!(interner.intern(&parts("y")), 1);
        assert_eq!(interner.intern(&parts("x")), 0);
        let other = Arc::new(SeriesKey::new("1", "r", "y", "m", [("a", "1")]));
        assert_eq!(interner.intern_key(&other), 1);
        assert_eq!(interner.len(), 2);
    }
}
