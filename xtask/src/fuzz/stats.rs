//! What a libFuzzer run reports: executions, coverage (`cov`: covered edges / PCs) and
//! features (`ft`), read from its log in-process (`-print_final_stats=1`) or in fork mode.

use std::fmt;

/// The outcome of one run of a fuzz target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzStats {
    /// The fuzz target.
    pub target: String,
    /// Seconds the run was given.
    pub seconds: u32,
    /// Inputs executed.
    pub executions: u64,
    /// Coverage counter `cov` of the last status line.
    pub cov: u64,
    /// Feature counter `ft` of the last status line.
    pub ft: u64,
    /// Inputs in the corpus at the end (`corp`).
    pub corpus: u64,
}

/// The number after `key` in `line` (`cov: 123`, `ft: 45`, `corp: 6/7b`, `#89`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl FuzzStats {
    /// Reads the statistics of a run of `target` from libFuzzer's stderr.
    pub fn from_log(target: &str, seconds: u32, log: &str) -> FuzzStats {
        let status = log
            .lines()
            .rev()
            .find(|l| l.starts_with('#') && l.contains("cov: "));
        let final_runs = log
            .lines()
            .find_map(|l| number_after(l, "stat::number_of_executed_units:"));
        let status_runs = status.and_then(|l| number_after(l, "#"));
        FuzzStats {
            target: target.to_string(),
            seconds,
            executions: final_runs.max(status_runs).unwrap_or(0),
            cov: status.and_then(|l| number_after(l, "cov: ")).unwrap_or(0),
            ft: status.and_then(|l| number_after(l, "ft: ")).unwrap_or(0),
            corpus: status.and_then(|l| number_after(l, "corp: ")).unwrap_or(0),
        }
    }
}

impl fmt::Display for FuzzStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz {}: {} executions in {} s, cov {} ft {} corpus {}, no crash",
            self.target, self.executions, self.seconds, self.cov, self.ft, self.corpus
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_process_and_fork_logs() {
        let in_process = "#2\tINITED cov: 10 ft: 11 corp: 3/1b exec/s: 0 rss: 30Mb\n\
                          #4096\tpulse  cov: 120 ft: 300 corp: 40/2Kb lim: 43 exec/s: 2048 rss: 40Mb\n\
                          Done 5000 runs in 2 second(s)\n\
                          stat::number_of_executed_units: 5000\n";
        let s = FuzzStats::from_log("gguf_parse", 2, in_process);
        assert_eq!((s.executions, s.cov, s.ft, s.corpus), (5000, 120, 300, 40));
        let fork = "#100: cov: 50 ft: 60 corp: 7 exec/s 50 oom/timeout/crash: 0/0/0 time: 2s job: 1\n\
                    #90000: cov: 700 ft: 2100 corp: 321 exec/s 9000 oom/timeout/crash: 0/0/0 time: 10s job: 9\n";
        let s = FuzzStats::from_log("tokenizer", 10, fork);
        assert_eq!(
            (s.executions, s.cov, s.ft, s.corpus),
            (90_000, 700, 2100, 321)
        );
        assert!(
            s.to_string()
                .contains("90000 executions in 10 s, cov 700 ft 2100")
        );
    }
}
