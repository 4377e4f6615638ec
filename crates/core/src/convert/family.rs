//! Which model family a Bedrock model id belongs to, and what the converters know of it.

/// A model family whose native InvokeModel format these converters speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFamily {
    /// Anthropic Claude, Messages API (`anthropic_version: "bedrock-2023-05-31"`).
    Claude,
    /// Amazon Nova understanding models, native `messages-v1` format.
    Nova,
    /// Meta Llama (`prompt` / `generation`).
    Llama,
    /// Amazon Titan Text (`inputText` / `results[].outputText`).
    Titan,
    /// Mistral AI (`prompt` / `outputs[]`, or the chat format `messages` / `choices[]`).
    Mistral,
}

impl ModelFamily {
    /// The family's short name: `claude`, `nova`, `llama`, `titan`, `mistral`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Claude => "claude",
            ModelFamily::Nova => "nova",
            ModelFamily::Llama => "llama",
            ModelFamily::Titan => "titan",
            ModelFamily::Mistral => "mistral",
        }
    }

    /// Whether a Converse request (with or without `toolConfig`) can be translated into this
    /// family's native InvokeModel body and its answer back ([`converse_to_native`](super::converse_to_native)).
    pub fn has_converse_translation(self) -> bool {
        matches!(self, ModelFamily::Claude | ModelFamily::Nova)
    }
}

/// A Converse request sent as its model family's native record: how its answer becomes a Converse
/// response again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Native {
    /// The family whose native answer it is.
    pub family: ModelFamily,
    /// The request asked for `additionalModelResponseFieldPaths: ["/delta/stop_sequence"]` (as the
    /// AI SDK does on every Claude call): the answer carries Claude's `stop_sequence` there.
    pub delta_stop_sequence: bool,
}

impl Native {
    /// A family's answer converted as it is.
    pub fn of(family: ModelFamily) -> Native {
        Native { family, delta_stop_sequence: false }
    }

    /// Its number in the store: 1 Claude, 2 Nova, 3 Claude with `/delta/stop_sequence`.
    pub fn code(self) -> u8 {
        match (self.family, self.delta_stop_sequence) {
            (ModelFamily::Claude, false) => 1,
            (ModelFamily::Nova, _) => 2,
            (ModelFamily::Claude, true) => 3,
            // Only families with a Converse translation are ever sent as native records.
            (ModelFamily::Llama | ModelFamily::Titan | ModelFamily::Mistral, _) => 0,
        }
    }

    /// The conversion of a number of [`Native::code`]; `None` for 0; `Err` for an unknown one.
    pub fn from_code(code: u8) -> Result<Option<Native>, u8> {
        Ok(match code {
            0 => None,
            1 => Some(Native::of(ModelFamily::Claude)),
            2 => Some(Native::of(ModelFamily::Nova)),
            3 => Some(Native { family: ModelFamily::Claude, delta_stop_sequence: true }),
            other => return Err(other),
        })
    }
}

/// The family of a model id, or of a family name.
///
/// Accepts a family's short name (`claude`, `nova`, `llama`, `titan`, `mistral`, also `anthropic`
/// and `meta`), a base model id (`anthropic.claude-3-haiku-20240307-v1:0`), a cross-region or
/// global inference profile id (`us.anthropic.…`, `eu.…`, `apac.…`, `global.…`, any one-segment
/// prefix before the provider), or an ARN whose resource names the model
/// (`…:foundation-model/<id>`, `…:inference-profile/<profile id>`, `…:custom-model/<base id>/…`).
/// An application inference profile or provisioned-model ARN names no model: `None`, as for any
/// model outside the five families. Nova's image, video and speech models (`nova-canvas`,
/// `nova-reel`, `nova-sonic`) are not text-chat models: `None`.
pub fn model_family(model_id_or_family: &str) -> Option<ModelFamily> {
    let s = model_id_or_family.trim();
    match s.to_ascii_lowercase().as_str() {
        "claude" | "anthropic" => return Some(ModelFamily::Claude),
        "nova" => return Some(ModelFamily::Nova),
        "llama" | "meta" => return Some(ModelFamily::Llama),
        "titan" => return Some(ModelFamily::Titan),
        "mistral" => return Some(ModelFamily::Mistral),
        _ => {}
    }
    if s.starts_with("arn:") {
        // arn:partition:bedrock:region:account:resource-type/resource[/…]
        let resource = s.splitn(6, ':').nth(5)?;
        return resource.split('/').skip(1).find_map(family_of_id);
    }
    family_of_id(s)
}

/// The family a Converse request for this model can be translated to (Claude or Nova), if any.
pub fn converse_family(model_id: &str) -> Option<ModelFamily> {
    model_family(model_id).filter(|f| f.has_converse_translation())
}

/// A base model id or an inference profile id (`<geo>.<provider>.<model>`).
fn family_of_id(id: &str) -> Option<ModelFamily> {
    let id = id.to_ascii_lowercase();
    let (provider, rest) = id.split_once('.')?;
    let (provider, rest) = if PROVIDERS.contains(&provider) {
        (provider, rest)
    } else {
        // A geographic prefix (`us`, `eu`, `apac`, `global`, `us-gov`, …).
        let (p, r) = rest.split_once('.')?;
        if !PROVIDERS.contains(&p) {
            return None;
        }
        (p, r)
    };
    match provider {
        "anthropic" if rest.starts_with("claude") => Some(ModelFamily::Claude),
        "amazon"
            if rest.starts_with("nova")
                && !["nova-canvas", "nova-reel", "nova-sonic", "nova-2-sonic"].iter().any(|p| rest.starts_with(p)) =>
        {
            Some(ModelFamily::Nova)
        }
        "amazon" if rest.starts_with("titan-text") || rest.starts_with("titan-tg1") => Some(ModelFamily::Titan),
        "meta" if rest.starts_with("llama") => Some(ModelFamily::Llama),
        "mistral" => Some(ModelFamily::Mistral),
        _ => None,
    }
}

/// Provider prefixes of Bedrock model ids (enough to tell a provider from a geographic prefix).
const PROVIDERS: &[&str] = &[
    "anthropic",
    "amazon",
    "meta",
    "mistral",
    "cohere",
    "ai21",
    "deepseek",
    "openai",
    "qwen",
    "writer",
    "stability",
    "luma",
    "twelvelabs",
    "google",
    "minimax",
    "moonshot",
    "moonshotai",
    "nvidia",
];

/// `max_tokens` sent to Claude when a Converse request has no `inferenceConfig.maxTokens`.
///
/// Converse's documented default for `maxTokens` is "the maximum allowed value for the model"
/// (service model, `InferenceConfiguration.maxTokens`), and Claude's Messages API requires
/// `max_tokens`, so the model's maximum output is sent:
///
/// | model id (after any geographic prefix) | default `max_tokens` |
/// |---|---|
/// | `anthropic.claude-3-haiku…`, `claude-3-sonnet…`, `claude-3-opus…`, `claude-v2…`, `claude-instant…` | 4,096 |
/// | `anthropic.claude-3-5-…` (Sonnet 3.5, 3.5 v2, Haiku 3.5) | 8,192 |
/// | `anthropic.claude-opus-4-2025…`, `claude-opus-4-1…` | 32,000 |
/// | `anthropic.claude-3-7-sonnet…`, `claude-sonnet-4-2025…`, `claude-sonnet-4-5…`, `claude-haiku-4-5…`, `claude-opus-4-5…` | 64,000 |
/// | `anthropic.claude-opus-4-6…` and later 4.x Opus, `claude-sonnet-4-6…` | 128,000 |
/// | any other Claude id | 4,096: every Claude model accepts it; a longer answer ends with `max_tokens` rather than a rejected request |
pub fn claude_default_max_tokens(model_id: &str) -> u64 {
    let id = model_id.to_ascii_lowercase();
    let base = id.find("anthropic.").map(|i| &id[i + "anthropic.".len()..]).unwrap_or(id.as_str());
    const TABLE: &[(&str, u64)] = &[
        ("claude-3-5-", 8_192),
        ("claude-3-7-sonnet", 64_000),
        ("claude-3-", 4_096),
        ("claude-opus-4-1", 32_000),
        ("claude-opus-4-2025", 32_000),
        ("claude-opus-4-5", 64_000),
        ("claude-opus-4-6", 128_000),
        ("claude-opus-4-7", 128_000),
        ("claude-opus-4-8", 128_000),
        ("claude-sonnet-4-2025", 64_000),
        ("claude-sonnet-4-5", 64_000),
        ("claude-sonnet-4-6", 128_000),
        ("claude-haiku-4-5", 64_000),
    ];
    TABLE.iter().find(|(prefix, _)| base.starts_with(prefix)).map(|(_, n)| *n).unwrap_or(4_096)
}
