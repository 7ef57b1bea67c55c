//! One progress-bar style for long commands; hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps with the position, rate, ETA and `msg`.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let template = format!("[{{bar:30}}] {{pos}}/{{len}}  {{per_sec}}  ETA {{eta}}  {msg}");
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}
