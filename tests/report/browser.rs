//! report.html in a real browser: Debian's chromium, headless. Skips with a message when no
//! chromium is installed, unless `LLMFORGE_REQUIRE_CHROMIUM=1` (set by `.ci/run`, which
//! installs it).

use super::{ink, search_dir, shots, sweep_dir};
use resvg::tiny_skia::Pixmap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs headless chromium on `page` (with a `#fragment`, or "") with `extra` arguments;
/// (stdout, stderr).
fn headless(browser: &Path, page: &Path, fragment: &str, profile: &Path, extra: &[&str]) -> (String, String) {
    let url = format!("file://{}{fragment}", page.canonicalize().unwrap().display());
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Console errors and uncaught exceptions in chromium's log.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Uncaught") || (l.contains("CONSOLE") && l.to_ascii_lowercase().contains("error"))
        })
        .collect()
}

#[test]
fn report_runs_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var("LLMFORGE_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("LLMFORGE_REQUIRE_CHROMIUM=1 but no chromium on PATH");
        }
        eprintln!(
            "skipping report_runs_in_headless_chromium: chromium is not installed (apt-get install chromium)"
        );
        return;
    };
    let profile = super::scratch("chromium-profile");
    for (name, dir, csv, first) in [
        ("search", search_dir(), "pareto.csv", "rank"),
        ("sweep", sweep_dir(), "frontier.csv", "index"),
    ] {
        let page = dir.join("report.html");
        let rows = std::fs::read_to_string(dir.join(csv)).unwrap().lines().count() - 1;
        let (dom, log) = headless(&browser, &page, "#design=0", &profile, &["--dump-dom"]);
        assert!(
            dom.contains("data-ready=\"1\""),
            "{name}: the script ran to its end:\n{dom}"
        );
        assert!(
            !dom.contains("data-errors"),
            "{name}: a script error was caught:\n{dom}"
        );
        assert!(
            dom.contains(&format!("data-rows=\"{rows}\"")),
            "{name}: the script saw every row"
        );
        assert_eq!(
            dom.matches("<tbody class=\"design").count(),
            rows,
            "{name}: every design is a row"
        );
        assert!(
            dom.contains(&format!("data-sorted-by=\"{first}\"")),
            "{name}: the table was sorted by its first column"
        );
        // the address opened the first design's architecture, as a reader's click would
        assert!(
            dom.contains("<tbody class=\"design open\" id=\"design-0\""),
            "{name}: #design=0 is open"
        );
        let errors = console_errors(&log);
        assert!(errors.is_empty(), "{name}: console errors: {errors:#?}");

        let shot = profile.join(format!("{name}.png"));
        let (_, log) = headless(
            &browser,
            &page,
            "#design=0",
            &profile,
            &[
                "--hide-scrollbars",
                "--window-size=1280,1800",
                &format!("--screenshot={}", shot.display()),
            ],
        );
        let errors = console_errors(&log);
        assert!(errors.is_empty(), "{name}: console errors: {errors:#?}");
        let png = Pixmap::load_png(&shot).expect("chromium wrote a PNG screenshot");
        assert_eq!((png.width(), png.height()), (1280, 1800));
        let (inked, var) = ink(&png);
        assert!(
            inked > 0.02 && var > 100.0,
            "{name}: blank screenshot ({inked:.4} inked, variance {var:.1})"
        );
        if let Some(d) = shots() {
            std::fs::copy(&shot, d.join(format!("report-{name}.png"))).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&profile);
}
