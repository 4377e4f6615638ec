//! Which model families a Converse request can be translated to (and back), for the requests that
//! cannot be Converse-type batch records (tool use).

use serde_json::Value;

use super::ConvertError;

/// A model family whose native InvokeModel format can carry what a Converse request with tools
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeFamily {
    /// Anthropic Claude (Messages API).
    Claude,
    /// Amazon Nova.
    Nova,
}

/// The family of a model id with a native translation, if any.
pub fn native_family(_model_id: &str) -> Option<NativeFamily> {
    None
}

/// A Converse request as the family's native InvokeModel body.
pub fn converse_to_native(family: NativeFamily, _request: &Value) -> Result<Value, ConvertError> {
    Err(ConvertError::new(format!("no native translation for {family:?} yet")))
}

/// A family's native response as a Converse response.
pub fn native_to_converse(family: NativeFamily, _response: &Value) -> Result<Value, ConvertError> {
    Err(ConvertError::new(format!("no native translation for {family:?} yet")))
}
