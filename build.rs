//! Hands Cargo the link arguments a napi addon needs on each platform.
fn main() {
    napi_build::setup();
}
