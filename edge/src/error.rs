//! Errors as users read them.

/// The error and its causes on one line, each cause once: some causes span several lines (flatbuffer
/// errors, burn's), and some errors repeat their source in their own message (the image crate's
/// decoding errors), which the chain would print twice.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = vec![];
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
        let text = text.join("; ");
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_in_its_parents_message_is_said_once() {
        // A truncated JPEG, as the image crate reports it: the decoding error carries its source's
        // text (with a line break) and has that source as its cause.
        let t1 = std::fs::read(testkit::photo("t1.jpg")).expect("t1.jpg");
        let e = crate::input::decode::from_memory(&t1[..100]).expect_err("truncated");
        let line = one_line(&e);
        assert!(line.starts_with("cannot decode: "), "{line}");
        assert_eq!(line.matches("Not enough bytes").count(), 1, "{line}");
        assert!(!line.contains('\n') && !line.contains("; :"), "{line}");
        // Distinct causes all stay, in order; multi-line ones become one line.
        let e = anyhow::anyhow!("first line\nsecond line").context("loading x.onnx");
        assert_eq!(one_line(&e), "loading x.onnx: first line; second line");
    }
}
