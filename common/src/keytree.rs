//! A Merkle tree over a document's wrapped keys, so that each recipient can
//! be given its own key and a short proof instead of every recipient's key.
//!
//! A header that lists a wrapped key for every recipient costs O(N) bytes,
//! and every one of N recipients receives it: a 1.5 KB notice to 1,000
//! units put 98.6 MB on the wire. Signing the root of a tree over the keys
//! instead, each recipient needs its own leaf and about log₂ N hashes to
//! know that the sender signed its key: O(N log N) bytes in all.
//!
//! The tree is the one of Certificate Transparency (RFC 9162 §2.1), with
//! the suite's digest (SHA-256, or SM3 on the GM suite), so that a
//! recipient's proof can be checked with `openssl dgst` alone:
//!
//! ```text
//! leaf hash = H(0x00 ‖ leaf)         leaf = the recipient's wrapped key, encoded
//! node hash = H(0x01 ‖ left ‖ right)
//! root of n leaves: split at the largest power of two below n
//! ```
//!
//! Leaves are in the order the sender lists them (by unit id). Pure
//! functions over bytes.

use crate::suite::Suite;

/// A digest in the tree.
pub type Hash = [u8; 32];

/// The most leaves a tree may have (a path is then at most 32 hashes).
pub const MAX_LEAVES: usize = 1 << 24;

/// The hash of one leaf's bytes.
pub fn leaf_hash(suite: Suite, leaf: &[u8]) -> Hash {
    let mut b = Vec::with_capacity(1 + leaf.len());
    b.push(0x00);
    b.extend_from_slice(leaf);
    suite.digest(&b)
}

fn node_hash(suite: Suite, left: &Hash, right: &Hash) -> Hash {
    let mut b = [0u8; 65];
    b[0] = 0x01;
    b[1..33].copy_from_slice(left);
    b[33..].copy_from_slice(right);
    suite.digest(&b)
}

/// A whole tree, level by level: made once by whoever holds every leaf
/// (the sender, the hub), then asked for each leaf's path in O(log N).
#[derive(Debug, Clone)]
pub struct KeyTree {
    suite: Suite,
    /// `levels[0]` the leaf hashes; each next level pairs the one below,
    /// an odd last hash going up as it is (which gives RFC 9162's tree).
    levels: Vec<Vec<Hash>>,
}

impl KeyTree {
    /// The tree over `leaves` (their hashes, in order); `None` when there
    /// are none or more than [`MAX_LEAVES`].
    pub fn new(suite: Suite, leaves: Vec<Hash>) -> Option<KeyTree> {
        if leaves.is_empty() || leaves.len() > MAX_LEAVES {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let up = below
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(suite, l, r),
                    [odd] => *odd,
                    _ => unreachable!("chunks(2) yields one or two"),
                })
                .collect();
            levels.push(up);
        }
        Some(KeyTree { suite, levels })
    }

    pub fn size(&self) -> usize {
        self.levels[0].len()
    }

    pub fn root(&self) -> Hash {
        // The top level has one hash (new() made at least one level).
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// The audit path of leaf `index`: the sibling at each level that has
    /// one, from the leaf up. `None` past the last leaf.
    pub fn path(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.size() {
            return None;
        }
        let mut path = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if let Some(h) = level.get(sibling) {
                path.push(*h);
            }
            i /= 2;
        }
        Some(path)
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }
}

/// The root that leaf `index` of a tree of `size` leaves, with hash
/// `leaf`, and `path` give (RFC 9162 §2.1.3.2); `None` when the path does
/// not fit the index and size. The caller compares it with the signed root.
pub fn root_from_path(
    suite: Suite,
    leaf: Hash,
    index: u64,
    size: u64,
    path: &[Hash],
) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(suite, p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(suite, &r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// A POSIX sh function that does what [`root_from_path`] does with
/// `openssl dgst` alone, for the `verify.sh` of an evidence bundle:
/// `keytree_root DIGEST LEAF INDEX SIZE PATH_FILE...` writes the root
/// (binary) to standard output, or fails. DIGEST is `sha256` or `sm3`;
/// LEAF and each PATH_FILE hold bytes (the leaf, then each 32-byte hash
/// from the leaf up).
pub const VERIFY_SH_FUNCTION: &str = r#"keytree_root() {
  kt_dg=$1 kt_leaf=$2 kt_f=$3 kt_s=$(($4 - 1)); shift 4
  kt_r=$(mktemp) || return 1
  { printf '\000'; cat "$kt_leaf"; } | openssl dgst -"$kt_dg" -binary > "$kt_r" || return 1
  for kt_p in "$@"; do
    if [ "$kt_s" -eq 0 ]; then rm -f "$kt_r"; return 1; fi
    if [ $((kt_f % 2)) -eq 1 ] || [ "$kt_f" -eq "$kt_s" ]; then
      { printf '\001'; cat "$kt_p" "$kt_r"; } | openssl dgst -"$kt_dg" -binary > "$kt_r.n"
      if [ $((kt_f % 2)) -eq 0 ]; then
        while [ $((kt_f % 2)) -eq 0 ] && [ "$kt_f" -ne 0 ]; do
          kt_f=$((kt_f / 2)); kt_s=$((kt_s / 2))
        done
      fi
    else
      { printf '\001'; cat "$kt_r" "$kt_p"; } | openssl dgst -"$kt_dg" -binary > "$kt_r.n"
    fi
    mv "$kt_r.n" "$kt_r"
    kt_f=$((kt_f / 2)); kt_s=$((kt_s / 2))
  done
  if [ "$kt_s" -ne 0 ]; then rm -f "$kt_r"; return 1; fi
  cat "$kt_r"; rm -f "$kt_r"
}
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 9162's definition, recursive, as the reference.
    fn mth(suite: Suite, leaves: &[Hash]) -> Hash {
        match leaves {
            [one] => *one,
            _ => {
                let k = leaves.len().next_power_of_two() / 2;
                node_hash(suite, &mth(suite, &leaves[..k]), &mth(suite, &leaves[k..]))
            }
        }
    }

    fn leaves(suite: Suite, n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(suite, format!("county-{i:05}").as_bytes()))
            .collect()
    }

    #[test]
    fn the_levels_give_rfc_9162s_root_and_every_path_leads_to_it() {
        for suite in [Suite::Standard, Suite::Gm] {
            for n in (1..=70).chain([127, 128, 129, 1000]) {
                let l = leaves(suite, n);
                let tree = KeyTree::new(suite, l.clone()).unwrap();
                assert_eq!(tree.root(), mth(suite, &l), "{n} leaves");
                for (i, h) in l.iter().enumerate() {
                    let path = tree.path(i).unwrap();
                    assert!(path.len() <= 64 - (n as u64).leading_zeros() as usize);
                    assert_eq!(
                        root_from_path(suite, *h, i as u64, n as u64, &path),
                        Some(tree.root()),
                        "leaf {i} of {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_changed_leaf_index_size_or_path_does_not_lead_to_the_root() {
        let suite = Suite::Standard;
        let l = leaves(suite, 37);
        let tree = KeyTree::new(suite, l.clone()).unwrap();
        let root = tree.root();
        let path = tree.path(9).unwrap();
        let ok = |leaf: Hash, index: u64, size: u64, path: &[Hash]| {
            root_from_path(suite, leaf, index, size, path) == Some(root)
        };
        assert!(ok(l[9], 9, 37, &path));
        // Another unit's key presented as this one's, or the key changed.
        assert!(!ok(l[10], 9, 37, &path));
        assert!(!ok(leaf_hash(suite, b"county-00009 changed"), 9, 37, &path));
        // The same key claimed at another place, or in a list of a size
        // whose tree has another shape there. (A size whose tree has the
        // same shape around the leaf gives the same root: the size a
        // recipient checks with is the count in the signed header.)
        assert!(!ok(l[9], 8, 37, &path));
        assert!(!ok(l[9], 9, 10, &path));
        assert!(!ok(l[9], 9, 1000, &path));
        // A path cut short, lengthened, or with a hash changed.
        assert!(!ok(l[9], 9, 37, &path[..path.len() - 1]));
        let mut longer = path.clone();
        longer.push([0; 32]);
        assert!(!ok(l[9], 9, 37, &longer));
        let mut changed = path.clone();
        changed[1][0] ^= 1;
        assert!(!ok(l[9], 9, 37, &changed));
        assert_eq!(root_from_path(suite, l[9], 37, 37, &path), None);
        // A recipient list with one unit added or one left out has another root.
        let mut more = l.clone();
        more.push(leaf_hash(suite, b"county-99999"));
        assert_ne!(KeyTree::new(suite, more).unwrap().root(), root);
        assert_ne!(KeyTree::new(suite, l[..36].to_vec()).unwrap().root(), root);
    }

    #[test]
    fn a_leaf_cannot_pass_for_a_node() {
        // The 0x00/0x01 prefixes: the two children of a node, joined, are
        // not a leaf whose hash is that node.
        let suite = Suite::Standard;
        let l = leaves(suite, 2);
        let tree = KeyTree::new(suite, l.clone()).unwrap();
        let mut joined = l[0].to_vec();
        joined.extend_from_slice(&l[1]);
        assert_ne!(leaf_hash(suite, &joined), tree.root());
        assert!(KeyTree::new(suite, Vec::new()).is_none());
    }
}
