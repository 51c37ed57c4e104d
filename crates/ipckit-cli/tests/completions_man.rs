//! `ipckit completions SHELL` and `ipckit man [COMMAND]`: generated from the same definitions as
//! `--help`, so every subcommand and option `--help` shows is completed and documented.

use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};

use ipckit_testkit::text;

fn ipckit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipckit"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run ipckit")
}

/// Standard output of a run that must succeed without a word on stderr.
fn stdout_of(args: &[&str]) -> String {
    let out = ipckit(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "{args:?}");
    text(&out.stdout)
}

/// The subcommands `ipckit --help` lists (without `help`, which has no page and no options).
fn subcommands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("--help lists the commands");
    let names: Vec<String> = list
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    assert!(names.iter().any(|n| n == "completions") && names.iter().any(|n| n == "man"));
    names
}

/// The long options `ipckit ARGS --help` shows, such as `--json` (without --help and --version).
fn long_options(args: &[&str]) -> Vec<String> {
    let mut args = args.to_vec();
    args.push("--help");
    let help = stdout_of(&args);
    let mut options: Vec<String> = help
        .lines()
        .map(str::trim_start)
        // `-m, --shmems  ...` or `--json  ...`, not a list item such as `- bytes: ...`.
        .filter(|line| {
            let b = line.as_bytes();
            b.first() == Some(&b'-')
                && b.get(1)
                    .is_some_and(|c| *c == b'-' || c.is_ascii_alphanumeric())
        })
        .filter_map(|line| {
            line.split([' ', ',', '=', '<', '['])
                .find(|word| word.starts_with("--") && word.len() > 2)
        })
        .filter(|option| *option != "--help" && *option != "--version")
        .map(str::to_owned)
        .collect();
    options.dedup();
    options
}

/// A one-line usage error: exit status 2, nothing on stdout.
fn assert_usage_error(args: &[&str], mentions: &str) {
    let out = ipckit(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(text(&out.stdout), "", "{args:?}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
    assert!(stderr.starts_with("ipckit: "), "{stderr:?}");
    assert!(stderr.contains(mentions), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

/// What bash's completion offers for the words typed so far (the last one being completed), from
/// the script `ipckit completions bash` prints, as bash itself would call it.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = stdout_of(&["completions", "bash"]);
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "eval \"$IPCKIT_COMPLETION\" || exit 3\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
         COMP_POINT=${{#COMP_LINE}}\n\
         _ipckit ipckit \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env("IPCKIT_COMPLETION", script)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash: {}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_every_subcommand_and_the_options_of_each() {
    let offered = bash_completes(&["ipckit", ""]);
    for name in subcommands() {
        assert!(offered.contains(&name), "{name} not in {offered:?}");
    }

    assert_eq!(bash_completes(&["ipckit", "ls", "--js"]), ["--json"]);
    for name in subcommands() {
        let offered = bash_completes(&["ipckit", &name, "--"]);
        for option in long_options(&[&name]) {
            assert!(
                offered.contains(&option),
                "ipckit {name} {option}: {offered:?}"
            );
        }
    }
}

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
        }
        assert!(script.contains("--json"), "{shell}: no --json");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    assert_usage_error(&["completions", "tcsh"], "tcsh");
    assert_usage_error(&["completions"], "SHELL");
}

/// Checks that `page` is well-formed man(7) roff: every control line is a request or macro the
/// man macros define, every escape is one roff knows, fonts are switched back, and the page starts
/// with the title `.TH NAME 1`. Returns the page's text with escapes resolved, for searching.
fn check_roff(page: &str, name: &str) -> String {
    const REQUESTS: &[&str] = &[
        "TH", "SH", "SS", "TP", "PP", "LP", "P", "IP", "RS", "RE", "br", "sp", "nf", "fi", "B",
        "I", "BR", "IR", "RB", "RI", "ie", "el", "ds", "in", "ti",
    ];
    let title = page
        .lines()
        .find(|line| line.starts_with(".TH "))
        .expect("a .TH title");
    let mut fields = title.split_whitespace().skip(1);
    assert_eq!(fields.next(), Some(name), "{title}");
    assert_eq!(fields.next(), Some("1"), "{title}");
    assert!(page.contains("\n.SH NAME\n"), "{page}");
    assert!(page.contains("\n.SH SYNOPSIS\n"), "{page}");

    let mut plain = String::new();
    for line in page.lines() {
        if let Some(request) = line.strip_prefix('.').or_else(|| line.strip_prefix('\'')) {
            let request = request.split_whitespace().next().unwrap_or("");
            assert!(REQUESTS.contains(&request), "unknown request {line:?}");
        }
        let mut font = 'R';
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                plain.push(c);
                continue;
            }
            match chars.next() {
                Some('f') => {
                    font = chars.next().expect("a font after \\f");
                    assert!("BIRP".contains(font), "font {font} in {line:?}");
                }
                Some('-') => plain.push('-'),
                Some('(') => {
                    let glyph: String = chars.by_ref().take(2).collect();
                    assert!(
                        ["aq", "em", "en", "bu"].contains(&glyph.as_str()),
                        "{line:?}"
                    );
                    plain.push(if glyph == "aq" { '\'' } else { '-' });
                }
                Some('*') => assert_eq!(chars.next(), Some('('), "{line:?}"),
                Some('n') => assert_eq!(chars.next(), Some('('), "{line:?}"),
                Some('e') => plain.push('\\'),
                Some('&') => {}
                other => panic!("unknown escape \\{other:?} in {line:?}"),
            }
        }
        assert!(
            font == 'R' || font == 'P',
            "font {font} left on in {line:?}"
        );
        plain.push('\n');
    }
    plain
}

#[test]
fn the_manual_page_lists_every_subcommand() {
    let page = stdout_of(&["man"]);
    let plain = check_roff(&page, "ipckit");
    assert!(plain.contains("\nipckit - "), "{plain}");
    for name in subcommands() {
        assert!(
            plain.contains(&format!("ipckit-{name}(1)")),
            "{name}: {plain}"
        );
    }
    assert!(!plain.contains("bench-peer"), "{plain}");
}

#[test]
fn each_subcommand_has_a_page_with_the_options_of_its_help() {
    let ls = long_options(&["ls"]);
    assert!(
        ls.contains(&"--json".to_owned()) && ls.contains(&"--shmems".to_owned()),
        "{ls:?}"
    );
    for name in subcommands() {
        let page = stdout_of(&["man", &name]);
        let plain = check_roff(&page, &format!("ipckit-{name}"));
        assert!(plain.contains(&format!("ipckit {name}")), "{name}: {plain}");
        for option in long_options(&[&name]) {
            assert!(plain.contains(&option), "ipckit man {name}: no {option}");
        }
    }
    assert_usage_error(&["man", "nope"], "nope");
    assert_usage_error(&["man", "bench-peer"], "bench-peer");
}

/// The generators write as they go and panic when a write fails; the scripts and pages are
/// written whole and a closed pipe (`ipckit man | head`) ends the command quietly.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["man"],
    ] {
        let (reader, writer) = ipckit::pipe::pipe().expect("pipe");
        drop(reader); // every write now fails with EPIPE
        let out = Command::new(env!("CARGO_BIN_EXE_ipckit"))
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::from(OwnedFd::from(writer)))
            .stderr(Stdio::piped())
            .output()
            .expect("run ipckit");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}
