//! Chat templates: turning a conversation into the prompt text a model was trained on.
//!
//! A model's `tokenizer.chat_template` is a Jinja template (as used by Hugging Face `transformers`),
//! rendered here through minijinja with the same whitespace rules (`trim_blocks`, `lstrip_blocks`),
//! Python-style string methods (`.strip()`, `.startswith()`, ...), and the helpers templates call:
//! `raise_exception(msg)` and `strftime_now(fmt)`. The variables are `messages` (each with `role` and
//! `content`; assistant messages may carry `tool_calls`, tool messages `tool_call_id` and `name`),
//! `add_generation_prompt`, `bos_token`, `eos_token` and, when a request offers them, `tools`;
//! assistant messages may carry their reasoning (`reasoning_content`), and extra variables
//! (`reasoning_effort`, a request's `chat_template_kwargs`) join the context as llama.cpp adds
//! them. `tojson` is Python's `json.dumps` as `transformers` defines it for chat templates (no
//! HTML escaping, keys in their order). gpt-oss's harmony template gets its messages as llama.cpp
//! adapts them ([`harmony`]). A model without a template gets ChatML.

pub mod harmony;
mod time;
mod tojson;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::tokenizer::{Tokenizer, TokenizerError, TokenizerResult};

/// ChatML, the fallback for models without a template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const TEMPLATE_NAME: &str = "chat_template";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The message text.
    pub content: String,
    /// An assistant message's tool calls, as templates expect them: a list of
    /// `{"id", "type": "function", "function": {"name", "arguments"}}` with `arguments` an
    /// object (Hugging Face's convention) where the call's JSON string parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// A `tool` message's answer to this call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A `tool` message's function name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An assistant message's reasoning (OpenAI-style `reasoning_content`; harmony templates
    /// read it as `thinking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            reasoning_content: None,
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    /// The message as the template `source` gets it.
    fn to_json(&self, harmony: bool) -> Json {
        let map = match serde_json::to_value(self) {
            Ok(Json::Object(m)) => m,
            _ => Map::new(),
        };
        Json::Object(if harmony {
            harmony::adapt_message(map)
        } else {
            map
        })
    }
}

/// A compiled chat template with the model's BOS / EOS texts.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    /// Whether the template prints a leading `system` message (llama.cpp's
    /// `supports_system_role`); when it does not, the system text is folded into the next
    /// message (`system + "\n" + next`), as llama.cpp does.
    system_role: bool,
    /// Whether a leading BOS text is removed from the rendered prompt because the tokenizer adds
    /// BOS itself (llama.cpp's `add_bos`): [`ChatTemplate::for_tokenizer`] sets it.
    strip_bos: bool,
}

fn template_error(e: &Error) -> TokenizerError {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    TokenizerError::ChatTemplate(msg)
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {msg}"),
    ))
}

fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    time::format_utc(secs, &format)
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` / `eos_token` are the texts the template may print.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> TokenizerResult<Self> {
        let source = source.into();
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| template_error(&e))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson::tojson);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| template_error(&e))?;
        let mut t = Self {
            env,
            source,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            system_role: true,
            strip_bos: false,
        };
        // llama.cpp's probe: a system message whose text the template never prints is not
        // supported (a template that fails on the probe is taken to support it).
        const PROBE: &str = "System message";
        let probe = [
            ChatMessage::system(PROBE),
            ChatMessage::user("User message"),
        ];
        if let Ok(out) = t.render(&probe, false) {
            t.system_role = out.contains(PROBE);
        }
        Ok(t)
    }

    /// ChatML with the given BOS / EOS texts.
    pub fn chatml(
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> TokenizerResult<Self> {
        Self::new(CHATML_TEMPLATE, bos_token, eos_token)
    }

    /// The model's own template (`tokenizer.chat_template`), or ChatML when it has none; BOS / EOS
    /// texts from the vocabulary.
    pub fn for_tokenizer(tokenizer: &Tokenizer) -> TokenizerResult<Self> {
        let text_of = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .unwrap_or_default()
                .to_string()
        };
        let bos = text_of(tokenizer.bos_id());
        let eos = text_of(tokenizer.eos_id());
        let mut t = Self::new(
            tokenizer.chat_template().unwrap_or(CHATML_TEMPLATE),
            bos,
            eos,
        )?;
        t.strip_bos = tokenizer.add_bos();
        Ok(t)
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; with `add_generation_prompt`, the text that opens the assistant's turn is
    /// appended.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> TokenizerResult<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// [`ChatTemplate::render`] with the request's `tools` (OpenAI's list of
    /// `{"type": "function", "function": {...}}`) passed to the template as `tools`, the way
    /// Hugging Face and llama.cpp pass them; templates without tool support ignore it.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Json>,
        add_generation_prompt: bool,
    ) -> TokenizerResult<String> {
        self.render_with_context(messages, tools, add_generation_prompt, &Map::new())
    }

    /// Whether this is gpt-oss's harmony template.
    pub fn is_harmony(&self) -> bool {
        harmony::is_harmony(&self.source)
    }

    /// The variables the template sees: `messages` (adapted for harmony templates), `tools`
    /// (`null` without), `add_generation_prompt`, `bos_token`, `eos_token`, then `extra`
    /// (e.g. `reasoning_effort`), which overrides any of them as llama.cpp's extra context does.
    pub fn context(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Json>,
        add_generation_prompt: bool,
        extra: &Map<String, Json>,
    ) -> Json {
        let harmony = self.is_harmony();
        let messages: Vec<Json> = messages.iter().map(|m| m.to_json(harmony)).collect();
        let mut ctx = Map::new();
        ctx.insert("messages".into(), Json::Array(messages));
        ctx.insert("tools".into(), tools.cloned().unwrap_or(Json::Null));
        ctx.insert(
            "add_generation_prompt".into(),
            Json::Bool(add_generation_prompt),
        );
        ctx.insert("bos_token".into(), Json::String(self.bos_token.clone()));
        ctx.insert("eos_token".into(), Json::String(self.eos_token.clone()));
        for (k, v) in extra {
            ctx.insert(k.clone(), v.clone());
        }
        Json::Object(ctx)
    }

    /// [`ChatTemplate::render_with_tools`] with extra variables (see [`ChatTemplate::context`]).
    pub fn render_with_context(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Json>,
        add_generation_prompt: bool,
        extra: &Map<String, Json>,
    ) -> TokenizerResult<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| template_error(&e))?;
        // A template with no system role gets the system text folded into the next message
        // (llama.cpp's way), not silently dropped.
        let folded;
        let messages = match messages {
            [first, second, rest @ ..] if !self.system_role && first.role == "system" => {
                let mut merged = second.clone();
                merged.content = format!("{}\n{}", first.content, second.content);
                folded = [std::slice::from_ref(&merged), rest].concat();
                &folded[..]
            }
            [first, rest @ ..] if !self.system_role && first.role == "system" => rest,
            all => all,
        };
        let ctx = self.context(messages, tools, add_generation_prompt, extra);
        let out = template
            .render(Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| template_error(&e))?;
        Ok(match out.strip_prefix(self.bos_token.as_str()) {
            Some(rest) if self.strip_bos && !self.bos_token.is_empty() => rest.to_string(),
            _ => out,
        })
    }
}
