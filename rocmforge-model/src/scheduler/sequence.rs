//! One request's sequence inside the running batch: its KV cache, sampler, detokenizer
//! and stop strings, and what happens to each new token.

use crate::constraint::Constraint;
use crate::engine::{EngineEvent, EventSink, TokenLogprob, TopLogprob, Usage};
use crate::generate::FinishReason;
use crate::generate::SequenceCache;
use crate::sampler::{SampleInput, Sampler};
use crate::stop::StopMatcher;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A sequence in the batch.
pub(crate) struct Sequence<'t, C> {
    pub id: u64,
    pub prompt: Vec<u32>,
    /// Prompt tokens already in the cache.
    pub prefilled: usize,
    /// The tokens generated so far (each runs through the model as the next step's input).
    answer: Vec<u32>,
    pub cache: C,
    /// The sampled token still to run through the model (decode phase).
    pub pending: [u32; 1],
    pub decoding: bool,
    sampler: Sampler,
    decoder: StreamDecoder<'t>,
    stops: StopMatcher,
    max_tokens: usize,
    generated: usize,
    tokenizer: &'t Tokenizer,
    pub sink: Box<dyn EventSink>,
    /// `Some(k)`: report each token's log-probability with k alternatives.
    logprobs: Option<usize>,
    /// The grammar the output must match, if any.
    constraint: Option<Constraint>,
    /// The token the grammar must still consume (sampled last step; consumed, and the next
    /// mask computed, during the next step's forward pass).
    grammar_owed: Option<u32>,
}

/// One sequence's row of a step's sampling (see [`Sequence::next_sample`]).
#[derive(Debug, Clone)]
pub(crate) struct SampleRequest {
    pub input: SampleInput,
    pub allowed: Option<Vec<u32>>,
    pub raw: bool,
}

/// What a sequence does after a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep going.
    Continue,
    /// It finished (event sent).
    Finished,
    /// The client is gone.
    Cancelled,
}

impl<'t, C: SequenceCache> Sequence<'t, C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        prompt: Vec<u32>,
        cache: C,
        mut sampler: Sampler,
        stops: &[String],
        max_tokens: usize,
        tokenizer: &'t Tokenizer,
        sink: Box<dyn EventSink>,
        logprobs: Option<usize>,
        prefilled: usize,
        constraint: Option<Constraint>,
    ) -> Self {
        for &t in &prompt {
            sampler.accept(t);
        }
        Self {
            id,
            prompt,
            prefilled,
            answer: Vec::new(),
            cache,
            pending: [0],
            decoding: false,
            sampler,
            decoder: StreamDecoder::new(tokenizer),
            stops: StopMatcher::new(stops),
            max_tokens,
            generated: 0,
            tokenizer,
            sink,
            logprobs,
            constraint,
            grammar_owed: None,
        }
    }

    /// Tokens of the prompt not yet prefilled.
    pub fn prompt_left(&self) -> usize {
        self.prompt.len() - self.prefilled
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt.len(),
            completion_tokens: self.generated,
        }
    }

    fn emit(&mut self, text: &str) -> bool {
        text.is_empty() || self.sink.send(EngineEvent::Text(text.to_string()))
    }

    fn finish(&mut self, reason: FinishReason) -> Next {
        let mut reason = reason;
        if reason != FinishReason::StopString {
            let rest = self.decoder.finish();
            let step = self.stops.push(&rest);
            let mut text = step.emit;
            if step.stopped {
                reason = FinishReason::StopString;
            } else {
                text.push_str(&self.stops.finish());
            }
            if !self.emit(&text) {
                return Next::Cancelled;
            }
        }
        let usage = self.usage();
        if self.sink.send(EngineEvent::Finished { reason, usage }) {
            Next::Finished
        } else {
            Next::Cancelled
        }
    }

    /// The input of this step's sampling row: the sampler's (advancing its random state), the
    /// grammar's allowed tokens over a model vocabulary of `vocab` entries (constrained
    /// sequences whose grammar owes no step; the others get theirs from that step, see
    /// [`Sequence::step_parts`]), and whether the step must also return the raw logits (to
    /// report log-probabilities).
    pub fn next_sample(&mut self, vocab: usize) -> SampleRequest {
        SampleRequest {
            input: self.sampler.next_input(),
            allowed: self
                .constraint
                .as_ref()
                .filter(|_| self.grammar_owed.is_none())
                .map(|c| c.allowed_words(vocab)),
            raw: self.logprobs.is_some(),
        }
    }

    /// What a step borrows from the sequence at once: its cache, the tokens it runs (the
    /// prompt's `prompt` range, or the pending token), and the grammar step it owes (the
    /// constraint and the token to consume, handed over: the step runs it).
    pub fn step_parts(
        &mut self,
        prompt: Option<(usize, usize)>,
    ) -> (&mut C, &[u32], Option<(&mut Constraint, u32)>) {
        let tokens = match prompt {
            Some((from, to)) => &self.prompt[from..to],
            None => &self.pending[..],
        };
        let grammar = match (self.grammar_owed.take(), self.constraint.as_mut()) {
            (Some(token), Some(c)) => Some((c, token)),
            _ => None,
        };
        (&mut self.cache, tokens, grammar)
    }

    /// Acts on the grammar step this sequence owed: a failed one fails the sequence, a
    /// complete grammar (only end tokens allowed) ends it — either way this step's token is
    /// not used. `None`: go on with the token.
    pub fn grammar_verdict(&mut self, outcome: crate::error::ModelResult<bool>) -> Option<Next> {
        match outcome {
            Err(e) => {
                self.fail(&e.to_string());
                Some(Next::Cancelled)
            }
            Ok(true) => Some(self.finish(FinishReason::EndOfGeneration)),
            Ok(false) => None,
        }
    }

    /// Receives the token the step sampled for this sequence and reports its log-probability
    /// from the raw `logits` when asked for; `Err` when the client is gone. The token is then
    /// taken with [`Sequence::take`].
    pub fn chosen(&mut self, token: u32, logits: Option<&[f32]>) -> Result<u32, Next> {
        if let (Some(top), Some(logits)) = (self.logprobs, logits) {
            if !self.tokenizer.is_eog(token) && !self.send_logprob(logits, token, top) {
                return Err(Next::Cancelled);
            }
        }
        Ok(token)
    }

    /// Takes `token` received by [`Sequence::chosen`]; a constrained sequence that goes on
    /// owes its grammar the step of consuming it (run during the next step).
    pub fn take(&mut self, token: u32) -> Next {
        let next = self.on_token(token);
        if next == Next::Continue && self.constraint.is_some() {
            self.grammar_owed = Some(token);
        }
        next
    }

    /// Sends the [`EngineEvent::Logprob`] of `token`.
    fn send_logprob(&mut self, logits: &[f32], token: u32, top: usize) -> bool {
        let (logprob, alternatives) = crate::sampler::token_logprobs(logits, token, top);
        let entry = |id: u32, logprob: f32| TopLogprob {
            id,
            bytes: self.tokenizer.token_to_bytes_special(id),
            logprob,
        };
        let event = TokenLogprob {
            token: entry(token, logprob),
            top: alternatives
                .into_iter()
                .map(|(id, lp)| entry(id, lp))
                .collect(),
        };
        self.sink.send(EngineEvent::Logprob(event))
    }

    /// Takes `token` as the sequence's next token (chosen by its sampler or, for a greedy
    /// sequence, by the model).
    pub fn on_token(&mut self, token: u32) -> Next {
        if self.tokenizer.is_eog(token) {
            return self.finish(FinishReason::EndOfGeneration);
        }
        self.sampler.accept(token);
        self.generated += 1;
        let step = self.stops.push(&self.decoder.push(token));
        if !self.emit(&step.emit) {
            return Next::Cancelled;
        }
        if step.stopped {
            return self.finish(FinishReason::StopString);
        }
        if self.generated >= self.max_tokens {
            return self.finish(FinishReason::MaxTokens);
        }
        if self.cache.remaining() == 0 {
            return self.finish(FinishReason::ContextFull);
        }
        self.pending = [token];
        self.answer.push(token);
        self.decoding = true;
        Next::Continue
    }

    /// The cache and the tokens it holds (the prompt, then the answer as far as it ran).
    pub fn into_cached(self) -> (Vec<u32>, C) {
        let held = self.cache.len();
        let tokens = self
            .prompt
            .iter()
            .chain(&self.answer)
            .take(held)
            .copied()
            .collect();
        (tokens, self.cache)
    }

    /// Tells the client the request failed.
    pub fn fail(&mut self, message: &str) {
        self.sink.send(EngineEvent::Failed(message.to_string()));
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.generated
    }
}
