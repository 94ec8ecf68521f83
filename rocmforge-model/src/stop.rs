//! Stop strings over streamed text: hold back what might be the start of a stop
//! string, cut the text where one appears.

/// Streams text through a set of stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What [`StopMatcher::push`] decided for one piece of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopStep {
    /// Text that is safe to show now.
    pub emit: String,
    /// Whether a stop string was found (the text before it is in `emit`).
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Adds `piece`; returns the text that can no longer be part of a stop string.
    pub fn push(&mut self, piece: &str) -> StopStep {
        self.pending.push_str(piece);
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            let emit = self.pending[..at].to_string();
            self.pending.clear();
            return StopStep {
                emit,
                stopped: true,
            };
        }
        let keep = self.held_suffix_len();
        let cut = self.pending.len() - keep;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopStep {
            emit,
            stopped: false,
        }
    }

    /// The held-back text, once generation has ended without a stop.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn held_suffix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.pending.len());
            for len in (best + 1..=max).rev() {
                let start = self.pending.len() - len;
                if self.pending.is_char_boundary(start) && stop.starts_with(&self.pending[start..])
                {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let step = m.push(p);
            out.push_str(&step.emit);
            if step.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn no_stops_passes_everything_through() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".to_string(), false));
    }

    #[test]
    fn stop_split_over_pieces_is_cut() {
        assert_eq!(
            run(&["\n\nUser:"], &["Hi", " there\n", "\nUs", "er: x"]),
            ("Hi there".to_string(), true)
        );
    }

    #[test]
    fn false_start_is_released() {
        let stops = vec!["END".to_string()];
        let mut m = StopMatcher::new(&stops);
        let s1 = m.push("abcE");
        assert_eq!(s1.emit, "abc");
        let s2 = m.push("Nx");
        assert_eq!(s2.emit, "ENx");
        assert!(!s2.stopped);
    }

    #[test]
    fn earliest_stop_wins_and_multibyte_is_safe() {
        assert_eq!(run(&["ü", "b"], &["aübü"]), ("a".to_string(), true));
        assert_eq!(run(&["éé"], &["xé", "y"]), ("xéy".to_string(), false));
    }
}
