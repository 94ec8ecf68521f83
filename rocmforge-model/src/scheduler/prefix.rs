//! The prompt-prefix cache of the engine: KV caches of finished sequences with the tokens they
//! hold, most recently used last. A new request whose prompt starts with the tokens of an entry
//! (a shared system prompt, the earlier turns of a conversation) shares those keys and values
//! (the paged cache's blocks) instead of prefilling them again. Entries go first-in-first-out beyond the entry limit and
//! whenever a new sequence's cache cannot be allocated.

use crate::generate::SequenceCache;

/// Shortest shared prefix worth copying (tokens).
pub(crate) const MIN_REUSE: usize = 16;

struct Entry<C> {
    tokens: Vec<u32>,
    cache: C,
}

/// Finished sequences' caches kept for reuse.
pub(crate) struct PrefixCache<C> {
    entries: Vec<Entry<C>>,
    max_entries: usize,
}

pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<C: SequenceCache> PrefixCache<C> {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: Vec::new(),
            max_entries,
        }
    }

    /// The entry sharing the longest prefix with `prompt` and the tokens to reuse from it: at
    /// least [`MIN_REUSE`], and never the whole prompt (its last token must run to give the
    /// logits of the first generated token). The entry becomes the most recently used.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<(&C, usize)> {
        let usable = prompt.len().saturating_sub(1);
        let (index, reuse) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt).min(usable)))
            .filter(|&(_, n)| n >= MIN_REUSE)
            .max_by_key(|&(i, n)| (n, i))?;
        let entry = self.entries.remove(index);
        self.entries.push(entry);
        self.entries.last().map(|e| (&e.cache, reuse))
    }

    /// Keeps `cache`, which holds `tokens`; an entry whose tokens it extends is replaced, and
    /// the oldest go beyond the entry limit.
    pub fn insert(&mut self, tokens: Vec<u32>, cache: C) {
        if self.max_entries == 0 || tokens.len() < MIN_REUSE {
            return;
        }
        self.entries
            .retain(|e| common_prefix(&e.tokens, &tokens) < e.tokens.len());
        self.entries.push(Entry { tokens, cache });
        while self.entries.len() > self.max_entries {
            self.entries.remove(0);
        }
    }

    /// Frees the least recently used entry; `false` when there is none.
    pub fn evict_oldest(&mut self) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        self.entries.remove(0);
        true
    }

    /// Frees every entry; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    /// Bytes the kept caches take.
    pub fn size_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.cache.size_bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(usize);
    impl SequenceCache for Fake {
        fn len(&self) -> usize {
            self.0
        }
        fn remaining(&self) -> usize {
            0
        }
        fn size_bytes(&self) -> usize {
            self.0
        }
    }

    fn toks(n: u32, tail: u32) -> Vec<u32> {
        (0..n).chain([tail]).collect()
    }

    #[test]
    fn longest_prefix_wins_and_the_last_prompt_token_always_runs() {
        let mut p = PrefixCache::new(3);
        p.insert(toks(20, 100), Fake(21));
        p.insert(toks(30, 200), Fake(31));
        // Shares 30 tokens with the second entry, 20 with the first.
        let (c, n) = p
            .lookup(&toks(30, 7))
            .map(|(c, n)| (c.0, n))
            .unwrap_or((0, 0));
        assert_eq!((c, n), (31, 30));
        // A prompt equal to an entry's tokens reuses all but its last token.
        assert_eq!(p.lookup(&toks(30, 200)).map(|(_, n)| n), Some(30));
        // Below the minimum, nothing.
        assert!(p.lookup(&toks(10, 5)).is_none());
        assert!(p.lookup(&[9; 40]).is_none());
    }

    #[test]
    fn extended_entries_replace_their_prefix_and_the_oldest_go() {
        let mut p = PrefixCache::new(2);
        p.insert(toks(20, 1), Fake(1));
        // Extends the first entry's tokens: replaces it.
        let mut longer = toks(20, 1);
        longer.extend([2, 3]);
        p.insert(longer, Fake(2));
        assert_eq!(p.entries.len(), 1);
        p.insert(vec![5; 20], Fake(3));
        p.insert(vec![6; 20], Fake(4));
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.size_bytes(), 7);
        assert!(p.evict_oldest() && p.evict_oldest() && !p.evict_oldest());
        // Too short to keep, or kept by nobody.
        p.insert(vec![1; 3], Fake(9));
        assert_eq!(p.size_bytes(), 0);
        let mut off = PrefixCache::new(0);
        off.insert(vec![1; 30], Fake(9));
        assert!(off.lookup(&[1; 40]).is_none());
    }
}
