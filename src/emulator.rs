//! `startEmulator(options)` and the handle it returns.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::Mutex;

use bedrock_batch_core::{EngineError, ErrorName};
use bedrock_batch_emulator::{Emulator, EmulatorOptions};

use crate::error::{data, JsEngineError};

/// Base URLs of a running emulator.
#[napi(object)]
pub struct EmulatorEndpoints {
    pub bedrock: String,
    pub bedrock_runtime: String,
    pub s3: String,
    pub openai: String,
    pub service_quotas: String,
}

/// A running emulator (wrapped by `startEmulator()` in index.js).
#[napi]
pub struct EmulatorHandle {
    inner: Mutex<Option<Emulator>>,
    endpoints: bedrock_batch_emulator::Endpoints,
    region: String,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
}

#[napi]
impl EmulatorHandle {
    #[napi(getter)]
    pub fn endpoints(&self) -> EmulatorEndpoints {
        let e = &self.endpoints;
        EmulatorEndpoints {
            bedrock: e.bedrock.clone(),
            bedrock_runtime: e.bedrock_runtime.clone(),
            s3: e.s3.clone(),
            openai: e.openai.clone(),
            service_quotas: e.service_quotas.clone(),
        }
    }

    #[napi(getter)]
    pub fn region(&self) -> String {
        self.region.clone()
    }

    #[napi(getter)]
    pub fn bucket(&self) -> String {
        self.bucket.clone()
    }

    #[napi(getter)]
    pub fn access_key_id(&self) -> String {
        self.access_key_id.clone()
    }

    #[napi(getter)]
    pub fn secret_access_key(&self) -> String {
        self.secret_access_key.clone()
    }

    /// Stops every server; safe to call twice.
    #[napi(catch_unwind)]
    pub async fn stop(&self) -> Result<()> {
        if let Some(emu) = self.inner.lock().await.take() {
            emu.stop().await;
        }
        Ok(())
    }
}

/// Starts the emulator with options as JSON (see `startEmulator` in index.d.ts). Resolves with
/// the handle, or with the error as data.
#[napi(catch_unwind)]
pub async fn start_emulator_native(options: Option<serde_json::Value>) -> Either<EmulatorHandle, JsEngineError> {
    let opts: EmulatorOptions = match options {
        Some(v) if !v.is_null() => match serde_json::from_value(v) {
            Ok(o) => o,
            Err(e) => return Either::B(data(&EngineError::validation(format!("invalid emulator options: {e}")))),
        },
        _ => EmulatorOptions::default(),
    };
    let emu = match Emulator::start(opts).await {
        Ok(emu) => emu,
        Err(e) => return Either::B(data(&EngineError::new(ErrorName::EmulatorStartException, e.to_string()))),
    };
    Either::A(EmulatorHandle {
        endpoints: emu.endpoints.clone(),
        region: emu.region.clone(),
        bucket: emu.bucket.clone(),
        access_key_id: emu.access_key_id.clone(),
        secret_access_key: emu.secret_access_key.clone(),
        inner: Mutex::new(Some(emu)),
    })
}
