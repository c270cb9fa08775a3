//! Fuzzes the model-file loader: `[u32 LE manifest length][manifest.json][weights]`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    personae_core::fuzzing::fuzz_one(data);
});
