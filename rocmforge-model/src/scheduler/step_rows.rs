//! The engine step's sampling rows ([`StepRows`]): each chosen member's sampler input, and
//! for a constrained sequence whose grammar still owes a step (consume the token sampled last
//! step, compute the next mask — the costly part of constrained sampling) that step, run for
//! all of them at once on the rayon pool when the model asks for the rows: once the step's
//! forward pass is queued, so on a GPU the masks are computed while it runs.

use std::time::{Duration, Instant};

use rayon::prelude::*;
use rocmforge_tensor::cpu::SampleRow;

use super::sequence::SampleRequest;
use crate::batch::StepRows;
use crate::constraint::Constraint;
use crate::error::ModelResult;

/// A grammar step a sequence owes: its constraint must consume `token` before the mask of
/// sampling row `row` is known.
pub(super) struct GrammarStep<'a> {
    /// The sequence (index into the active list).
    pub seq: usize,
    /// Its sampling row in the step.
    pub row: usize,
    pub constraint: &'a mut Constraint,
    pub token: u32,
}

/// What a grammar step found: an error (the sequence fails), or whether the grammar is
/// complete (only end tokens allowed: the sequence ends, its token of this step unused).
pub(super) type GrammarOutcome = ModelResult<bool>;

/// The rows of one engine step.
pub(super) struct EngineRows<'a> {
    requests: Vec<SampleRequest>,
    raw: Vec<bool>,
    grammar: Vec<GrammarStep<'a>>,
    /// Per grammar step, once run.
    outcomes: Option<Vec<GrammarOutcome>>,
    vocab: usize,
    grammar_time: Duration,
}

impl<'a> EngineRows<'a> {
    /// `requests[j]` for the j-th chosen member; the rows that `grammar` names get their
    /// masks from those steps (over a model vocabulary of `vocab` entries).
    pub fn new(requests: Vec<SampleRequest>, grammar: Vec<GrammarStep<'a>>, vocab: usize) -> Self {
        let raw = requests.iter().map(|r| r.raw).collect();
        Self {
            requests,
            raw,
            grammar,
            outcomes: None,
            vocab,
            grammar_time: Duration::ZERO,
        }
    }

    /// Runs the owed grammar steps (once).
    fn advance_grammars(&mut self) {
        if self.outcomes.is_some() {
            return;
        }
        let started = Instant::now();
        let vocab = self.vocab;
        let step = |g: &mut GrammarStep<'_>| match g.constraint.accept(g.token) {
            Ok(()) => (
                Ok(g.constraint.is_complete()),
                Some(g.constraint.allowed_words(vocab)),
            ),
            Err(e) => (Err(e), None),
        };
        let done: Vec<(GrammarOutcome, Option<Vec<u32>>)> = if self.grammar.len() > 1 {
            self.grammar.par_iter_mut().map(step).collect()
        } else {
            self.grammar.iter_mut().map(step).collect()
        };
        let mut outcomes = Vec::with_capacity(done.len());
        for (g, (outcome, allowed)) in self.grammar.iter().zip(done) {
            // A failed grammar's row is sampled unmasked; its token is not used.
            if let Some(r) = self.requests.get_mut(g.row) {
                r.allowed = allowed;
            }
            outcomes.push(outcome);
        }
        self.outcomes = Some(outcomes);
        if !self.grammar.is_empty() {
            self.grammar_time = started.elapsed();
        }
    }

    /// Per sequence that owed a grammar step, its outcome (the steps run now if the model
    /// never asked for the rows); the number of grammar steps and their time.
    pub fn finish(mut self) -> (Vec<(usize, GrammarOutcome)>, usize, Duration) {
        self.advance_grammars();
        let outcomes = self.outcomes.take().unwrap_or_default();
        let n = self.grammar.len();
        let by_seq = self.grammar.iter().map(|g| g.seq).zip(outcomes).collect();
        (by_seq, n, self.grammar_time)
    }
}

impl StepRows for EngineRows<'_> {
    fn count(&self) -> usize {
        self.requests.len()
    }
    fn plain(&self) -> bool {
        self.grammar.is_empty()
            && !self.raw.contains(&true)
            && self
                .requests
                .iter()
                .all(|r| r.input.row(r.allowed.as_deref()).is_plain_greedy())
    }
    fn raw(&self) -> &[bool] {
        &self.raw
    }
    fn rows(&mut self) -> ModelResult<Vec<SampleRow<'_>>> {
        self.advance_grammars();
        Ok(self
            .requests
            .iter()
            .map(|r| r.input.row(r.allowed.as_deref()))
            .collect())
    }
}
