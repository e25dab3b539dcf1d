//! How a registry's list changes an upstream's list, with the C module's
//! observable semantics (upsync-compat.md, "Apply semantics").

use std::collections::{HashMap, HashSet};

use crate::server::Server;

/// What applying a registry list does to the current list.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// The new list, in order (primary and backup servers together).
    Changed(Vec<Server>),
    /// The registry's list is empty: an upstream is never emptied.
    RefusedEmpty,
}

/// Merges `desired` (the registry's answer, in its order) into `current`.
///
/// Servers are matched by name; a matched server takes the registry's
/// attributes; new servers go to the front of the list in answer order (the
/// last new one first); servers missing from the answer are removed. The
/// first change that adds or removes a server turns the list around first,
/// as the C module's peer copy does; `reversed` remembers that it happened.
pub fn merge(current: &[Server], desired: &[Server], reversed: &mut bool) -> Outcome {
    if desired.is_empty() {
        return Outcome::RefusedEmpty;
    }
    let mut list: Vec<Server> = current.to_vec();
    let mut matched = vec![false; list.len()];
    let mut added: Vec<&Server> = Vec::new();
    let mut changed = false;
    // Each name once: a name the answer repeats is matched once, the repeat
    // is ignored.
    let mut seen: HashSet<&str> = HashSet::with_capacity(desired.len());
    let position: HashMap<&str, usize> = current
        .iter()
        .enumerate()
        .rev()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();

    for want in desired {
        if !seen.insert(want.name.as_str()) {
            continue;
        }
        match position.get(want.name.as_str()) {
            Some(&i) => {
                matched[i] = true;
                if list[i] != *want {
                    list[i] = want.clone();
                    changed = true;
                }
            }
            None => added.push(want),
        }
    }

    let removed = matched.iter().any(|m| !m);
    if added.is_empty() && !removed {
        return if changed {
            Outcome::Changed(list)
        } else {
            Outcome::Unchanged
        };
    }

    let mut kept: Vec<Server> = list
        .into_iter()
        .zip(matched)
        .filter_map(|(s, m)| m.then_some(s))
        .collect();
    if !*reversed {
        kept.reverse();
        *reversed = true;
    }
    let mut out: Vec<Server> = added.into_iter().rev().cloned().collect();
    out.extend(kept);
    Outcome::Changed(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(port: u16) -> Server {
        Server {
            name: format!("127.0.0.1:{port}"),
            weight: 1,
            max_fails: 2,
            fail_timeout: 10,
            down: false,
            backup: false,
            host: None,
        }
    }

    fn names(o: &Outcome) -> Vec<String> {
        match o {
            Outcome::Changed(list) => list.iter().map(|s| s.name.clone()).collect(),
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn the_c_module_order() {
        // config [8088]; the registry gets 8089 and 8088 leaves -> [8089]
        let mut reversed = false;
        let o = merge(&[s(8088)], &[s(8089)], &mut reversed);
        assert_eq!(names(&o), ["127.0.0.1:8089"]);
        // then 8088 comes back -> 8088, 8089
        let o = merge(&[s(8089)], &[s(8089), s(8088)], &mut reversed);
        assert_eq!(names(&o), ["127.0.0.1:8088", "127.0.0.1:8089"]);
    }

    #[test]
    fn new_servers_go_first_last_new_one_first_and_the_first_change_reverses() {
        let mut reversed = false;
        let o = merge(&[s(1), s(2)], &[s(1), s(2), s(3), s(4)], &mut reversed);
        assert_eq!(
            names(&o),
            ["127.0.0.1:4", "127.0.0.1:3", "127.0.0.1:2", "127.0.0.1:1"]
        );
        assert!(reversed);
        let current = match o {
            Outcome::Changed(l) => l,
            _ => unreachable!(),
        };
        // later changes keep the order
        let o = merge(&current, &[s(1), s(2), s(3), s(4), s(5)], &mut reversed);
        assert_eq!(
            names(&o),
            [
                "127.0.0.1:5",
                "127.0.0.1:4",
                "127.0.0.1:3",
                "127.0.0.1:2",
                "127.0.0.1:1"
            ]
        );
    }

    #[test]
    fn attributes_update_in_place_without_reordering() {
        let mut reversed = false;
        let mut heavy = s(2);
        heavy.weight = 40;
        let o = merge(&[s(1), s(2)], &[heavy.clone(), s(1), s(2)], &mut reversed);
        // the second 127.0.0.1:2 repeats a name: the first one wins
        assert_eq!(o, Outcome::Changed(vec![s(1), heavy]));
        assert!(!reversed);
    }

    #[test]
    fn unchanged_and_empty() {
        let mut reversed = false;
        assert_eq!(merge(&[s(1)], &[s(1)], &mut reversed), Outcome::Unchanged);
        assert_eq!(merge(&[s(1)], &[], &mut reversed), Outcome::RefusedEmpty);
        assert!(!reversed);
    }
}
