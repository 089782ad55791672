//! One owner per environment: operations on an environment (activities, cron runs,
//! health actions) run one at a time. An operation that spans several environments
//! (copying a parent's data, merging into a parent) takes all of them at once, in one
//! global order, so two operations can never wait for each other in a circle whatever
//! the tree looks like or how it is reparented meanwhile.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// `(project, environment name)`.
pub type EnvKey = (String, String);

/// The environments' owner slots. An entry lives only while somebody holds or waits
/// for it, so the map does not grow with every environment ever named.
#[derive(Default)]
pub struct Owners {
    slots: Mutex<HashMap<EnvKey, Weak<AsyncMutex<()>>>>,
}

/// Held while an operation owns its environments; dropping it releases them all.
pub struct Ownership {
    _guards: Vec<OwnedMutexGuard<()>>,
}

impl Owners {
    /// Waits until the operation owns every environment in `keys`. Keys are taken in
    /// their sorted order (the global order), duplicates once.
    pub async fn acquire(&self, keys: impl IntoIterator<Item = EnvKey>) -> Ownership {
        let ordered: BTreeSet<EnvKey> = keys.into_iter().collect();
        let slots: Vec<Arc<AsyncMutex<()>>> = ordered.iter().map(|k| self.slot(k)).collect();
        let mut guards = Vec::with_capacity(slots.len());
        for slot in slots {
            guards.push(slot.lock_owned().await);
        }
        Ownership { _guards: guards }
    }

    /// Owns one environment if nobody else does right now (cron runs and health
    /// actions skip a turn rather than wait behind a deploy).
    pub fn try_acquire(&self, key: EnvKey) -> Option<Ownership> {
        let slot = self.slot(&key);
        let guard = slot.try_lock_owned().ok()?;
        Some(Ownership {
            _guards: vec![guard],
        })
    }

    fn slot(&self, key: &EnvKey) -> Arc<AsyncMutex<()>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(key).and_then(Weak::upgrade) {
            return slot;
        }
        // Forget the slots nobody holds any more before adding one.
        slots.retain(|_, w| w.strong_count() > 0);
        let slot = Arc::new(AsyncMutex::new(()));
        slots.insert(key.clone(), Arc::downgrade(&slot));
        slot
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(env: &str) -> EnvKey {
        ("p".to_string(), env.to_string())
    }

    #[tokio::test]
    async fn opposite_orders_never_deadlock() {
        let owners = Arc::new(Owners::default());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let owners = owners.clone();
            tasks.push(tokio::spawn(async move {
                // Half ask child-then-parent, half parent-then-child.
                let keys = if i % 2 == 0 {
                    vec![key("child"), key("main")]
                } else {
                    vec![key("main"), key("child")]
                };
                let _owned = owners.acquire(keys).await;
                tokio::task::yield_now().await;
            }));
        }
        let all = futures_util::future::join_all(tasks);
        let joined = tokio::time::timeout(Duration::from_secs(30), all).await;
        assert!(joined.is_ok(), "acquiring in opposite orders deadlocked");
    }

    #[tokio::test]
    async fn the_slot_map_shrinks_when_nobody_holds_a_slot() {
        let owners = Owners::default();
        for i in 0..100 {
            let _owned = owners.acquire([key(&format!("env-{i}"))]).await;
        }
        let _last = owners.acquire([key("last")]).await;
        let stored = owners.slots.lock().map(|s| s.len()).unwrap_or(usize::MAX);
        assert!(stored <= 2, "{stored} slots kept for released environments");
        let live = owners
            .slots
            .lock()
            .map(|s| s.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or_default();
        assert_eq!(live, 1);
    }

    #[tokio::test]
    async fn try_acquire_refuses_an_owned_environment() {
        let owners = Owners::default();
        let held = owners.acquire([key("main")]).await;
        assert!(owners.try_acquire(key("main")).is_none());
        drop(held);
        assert!(owners.try_acquire(key("main")).is_some());
    }
}
