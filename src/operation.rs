//! `NativeOperation`: the operations a submitted request may ask for, as the codes a chunk
//! carries (`NativeOperation.Converse` in JS); each is the core's [`Operation`] of its name.

use napi_derive::napi;

use bedrock_batch_core::Operation;

/// An operation's code in a submitted chunk.
#[napi]
#[derive(Clone, Copy)]
pub enum NativeOperation {
    InvokeModel,
    InvokeModelWithResponseStream,
    Converse,
    ConverseStream,
}

impl NativeOperation {
    /// Every operation.
    const ALL: [NativeOperation; 4] = [
        NativeOperation::InvokeModel,
        NativeOperation::InvokeModelWithResponseStream,
        NativeOperation::Converse,
        NativeOperation::ConverseStream,
    ];

    /// The operation of a code, if it names one.
    pub(crate) fn from_code(code: u8) -> Option<Operation> {
        NativeOperation::ALL.into_iter().find(|o| *o as u8 == code).map(Operation::from)
    }
}

impl From<NativeOperation> for Operation {
    fn from(o: NativeOperation) -> Operation {
        match o {
            NativeOperation::InvokeModel => Operation::InvokeModel,
            NativeOperation::InvokeModelWithResponseStream => Operation::InvokeModelWithResponseStream,
            NativeOperation::Converse => Operation::Converse,
            NativeOperation::ConverseStream => Operation::ConverseStream,
        }
    }
}
