//! Property test: arbitrary bytes and arbitrary YAML-ish text never make the
//! parser or the validator panic; they either parse or give diagnostics.

use proptest::prelude::*;
use squall_core::catalog::ActivitySpec;
use squall_core::config::FixedEnv;
use squall_core::doc::{Document, Format};
use squall_core::validate::{Inputs, validate};

const NO_SPECS: &[ActivitySpec] = &[];

fn check(text: &str) {
    let env = FixedEnv::default();
    for format in [Format::Yaml, Format::Json] {
        if let Ok(doc) = Document::parse(text, format) {
            let inputs = Inputs {
                catalog: &NO_SPECS,
                env: &env,
                config_overrides: Default::default(),
                secret_overrides: Default::default(),
            };
            let _ = validate(&doc, &inputs);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn experiment_shaped_text_never_panics(
        text in "(title: [a-z]{0,3}\n|description: x\n|method:\n|  - |type: (action|probe)\n|name: a\n|provider: \\{type: (http|process|python)\\}\n|tolerance: [\\[\\]{}0-9a-z:,]{0,8}\n|pauses: \\{after: [0-9a-z${}]{0,4}\\}\n|ref: [a-z]{0,2}\n|steady-state-hypothesis:\n|probes:\n|[ :\\-\\[\\]{}]{0,3}){0,30}"
    ) {
        check(&text);
    }
}
