//! The OpenAI request and response bodies this server reads and writes.

use serde::{Deserialize, Serialize};

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling and limit fields shared by both endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonFields {
    /// The model id (must be the served one).
    pub model: Option<String>,
    /// Sampling temperature (0..=2).
    pub temperature: Option<f64>,
    /// Nucleus threshold (0..=1].
    pub top_p: Option<f64>,
    /// Keep the K most likely tokens (llama.cpp extension).
    pub top_k: Option<i64>,
    /// Min-p threshold (llama.cpp extension).
    pub min_p: Option<f64>,
    /// Most tokens to generate.
    pub max_tokens: Option<i64>,
    /// Newer name of `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// Stop strings.
    pub stop: Option<StopField>,
    /// Seed of the sampler.
    pub seed: Option<i64>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Presence penalty (-2..=2).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (-2..=2).
    pub frequency_penalty: Option<f64>,
    /// Repetition penalty (llama.cpp extension, > 0).
    pub repeat_penalty: Option<f64>,
    /// Number of choices (1..=16), streamed or not.
    pub n: Option<i64>,
    /// Functions the model may call (chat only; see `super::tools`).
    pub tools: Option<serde_json::Value>,
    /// `auto`, `none`, `required` or a named function.
    pub tool_choice: Option<serde_json::Value>,
    /// `text`, `json_object` or `json_schema` (see `super::structured`).
    pub response_format: Option<serde_json::Value>,
    /// `true` on chat, a count on completions.
    pub logprobs: Option<serde_json::Value>,
    /// Alternatives per token with `logprobs`.
    pub top_logprobs: Option<serde_json::Value>,
    /// Token id (a decimal string) → bias in [-100, 100] (see `super::logit_bias`).
    pub logit_bias: Option<serde_json::Value>,
    /// llama-server's grammar extension (llguidance's Lark syntax).
    pub grammar: Option<serde_json::Value>,
    /// llama-server's schema extension.
    pub json_schema: Option<serde_json::Value>,
}

/// One chat message of a request.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestMessage {
    /// `system`, `user`, `assistant` or `tool` (`developer` is read as `system`).
    pub role: String,
    /// The text: a string, or a list of `{"type":"text","text":...}` parts.
    pub content: Option<serde_json::Value>,
    /// An assistant message's tool calls (`[{"id", "type": "function", "function": {"name",
    /// "arguments"}}]`, arguments a JSON string).
    pub tool_calls: Option<serde_json::Value>,
    /// A `tool` message's call id.
    pub tool_call_id: Option<String>,
    /// A `tool` message's function name.
    pub name: Option<String>,
    /// An assistant message's reasoning, as this server returns it (passed to the template;
    /// harmony templates read it as `thinking`).
    pub reasoning_content: Option<serde_json::Value>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<RequestMessage>,
    /// OpenAI's reasoning effort (`low`, `medium`, `high`, ...), given to the chat template as
    /// `reasoning_effort` (gpt-oss's reads it); `none` gives nothing, as in llama-server.
    pub reasoning_effort: Option<serde_json::Value>,
    /// llama-server's extra chat-template variables (an object).
    pub chat_template_kwargs: Option<serde_json::Value>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: CommonFields,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The prompt: a string (or a list holding exactly one string).
    pub prompt: serde_json::Value,
    /// The shared fields.
    #[serde(flatten)]
    pub common: CommonFields,
}

/// Token counts of a response.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct UsageBody {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
}

impl From<rocmforge_model::engine::Usage> for UsageBody {
    fn from(u: rocmforge_model::engine::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

/// Test helper: the shared fields of a request body.
#[cfg(test)]
#[allow(clippy::expect_used)]
pub(crate) fn common_fields(json: &str) -> CommonFields {
    serde_json::from_str(json).expect("a test's request body parses")
}
