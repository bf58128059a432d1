//! `quadriga run`: inputs, replacement strings, quoting and exit codes,
//! against the real binary.

mod common;

use common::{Scratch, run, run_in, run_stdin};

#[test]
fn each_replacement_string() {
    let d = run(&[
        "-k",
        "echo",
        "{}",
        "{.}",
        "{/}",
        "{//}",
        "{/.}",
        "{#}",
        "{%}",
        ":::",
        "dir.x/file.tar.gz",
    ]);
    d.status(0);
    assert_eq!(
        d.lines(),
        ["dir.x/file.tar.gz dir.x/file.tar file.tar.gz dir.x file.tar 1 1"]
    );
    // Positional: by input source, from the end, and with modifiers.
    let d = run(&[
        "-k", "echo", "{2}", "{1}", "{-1}", "{1.}", "{1/}", "{1//}", "{1/.}", "{3}", ":::",
        "a/b.c", ":::", "x",
    ]);
    // {3} is missing: an empty argument.
    assert_eq!(d.lines(), ["x a/b.c x a/b b.c a b "]);
    // Sequence numbers count jobs in input order.
    let d = run(&["-k", "echo", "{#}-{}", ":::", "a", "b", "c"]);
    assert_eq!(d.lines(), ["1-a", "2-b", "3-c"]);
    // Slots stay within the number of jobs.
    let d = run(&["-j2", "echo", "{%}", ":::", "a", "b", "c", "d", "e"]);
    for slot in d.lines() {
        assert!(slot == "1" || slot == "2", "slot {slot}");
    }
    // -I replaces {}.
    let d = run(&["-k", "-I", "@@", "echo", "x@@y", "{}", ":::", "v"]);
    assert_eq!(d.lines(), ["xvy {}"]);
}

#[test]
fn without_a_replacement_string_the_input_is_appended() {
    let d = run(&["-k", "echo", "pre", ":::", "a", "b c"]);
    assert_eq!(d.lines(), ["pre a", "pre b c"]);
    // {#} is a replacement string: nothing is appended.
    let d = run(&["-k", "echo", "{#}", ":::", "a", "b"]);
    assert_eq!(d.lines(), ["1", "2"]);
}

#[test]
fn environment_names_the_job() {
    let d = run(&[
        "-k",
        "-j1",
        "echo $PARALLEL_SEQ $PARALLEL_JOBSLOT {}",
        ":::",
        "a",
        "b",
    ]);
    assert_eq!(d.lines(), ["1 1 a", "2 1 b"]);
}

#[test]
fn cartesian_product_and_linked_sources() {
    let d = run(&["-k", "echo", ":::", "a", "b", ":::", "1", "2", "3"]);
    assert_eq!(d.lines(), ["a 1", "a 2", "a 3", "b 1", "b 2", "b 3"]);
    // :::+ links to the previous source; the shorter decides.
    let d = run(&[
        "-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2", ":::", "X", "Y",
    ]);
    assert_eq!(d.lines(), ["a 1 X", "a 1 Y", "b 2 X", "b 2 Y"]);
    // --link links them all; shorter sources wrap around.
    let d = run(&[
        "-k", "--link", "echo", ":::", "1", "2", ":::", "a", "b", "c",
    ]);
    assert_eq!(d.lines(), ["1 a", "2 b", "1 c"]);
    // {n} picks a source.
    let d = run(&["-k", "echo", "{2}{1}", ":::", "a", "b", ":::", "1"]);
    assert_eq!(d.lines(), ["1a", "1b"]);
}

#[test]
fn files_stdin_and_delimiters() {
    let dir = Scratch::new();
    std::fs::write(dir.join("nums"), "1\n2\n").unwrap();
    std::fs::write(dir.join("letters"), "x\ny\n").unwrap();
    let d = run_in(dir.path(), &["-k", "echo", "::::", "nums", "letters"], None);
    assert_eq!(d.lines(), ["1 x", "1 y", "2 x", "2 y"]);
    let d = run_in(dir.path(), &["-k", "-a", "nums", "echo", ":::", "z"], None);
    assert_eq!(d.lines(), ["1 z", "2 z"]);
    let d = run_in(
        dir.path(),
        &["-k", "echo", "::::", "nums", "::::+", "letters"],
        None,
    );
    assert_eq!(d.lines(), ["1 x", "2 y"]);
    // stdin: lines; the last may lack its newline; empty lines are inputs.
    let d = run_stdin(&["-k", "echo", "[{}]"], b"a\n\nb");
    assert_eq!(d.lines(), ["[a]", "[]", "[b]"]);
    // -r skips blank inputs.
    let d = run_stdin(&["-k", "-r", "echo", "[{}]"], b"a\n  \nb\n");
    assert_eq!(d.lines(), ["[a]", "[b]"]);
    // -0 and -d.
    let d = run_stdin(&["-k", "-0", "echo", "[{}]"], b"a b\0c\nd\0");
    assert_eq!(d.out(), "[a b]\n[c\nd]\n");
    let d = run_stdin(&["-k", "-d", ",", "echo", "[{}]"], b"a,b,c");
    assert_eq!(d.lines(), ["[a]", "[b]", "[c]"]);
    // stdin named as a source with -a -.
    let d = run_in(
        dir.path(),
        &["-k", "-a", "-", "echo", "::::", "letters"],
        Some(b"q\n"),
    );
    assert_eq!(d.lines(), ["q x", "q y"]);
}

#[test]
fn stdin_is_streamed_not_read_to_the_end_first() {
    // The producer writes its second line only after the first job ran: a
    // runner that waited for the end of its input would hang (and time out).
    let dir = Scratch::new();
    let mut cmd = std::process::Command::new("sh");
    cmd.current_dir(dir.path()).arg("-c").arg(format!(
        "(echo a; i=0; while [ ! -e marker ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; echo b) | {} run -k 'touch marker; echo {{}}'",
        env!("CARGO_BIN_EXE_quadriga")
    ));
    let d = common::spawn_and_wait(cmd, None);
    d.status(0);
    assert_eq!(d.lines(), ["a", "b"]);
    assert!(d.elapsed.as_secs_f64() < 8.0, "{:?}", d.elapsed);
}

#[test]
fn several_inputs_per_job() {
    let d = run(&["-k", "-n2", "echo", ":::", "a", "b", "c"]);
    assert_eq!(d.lines(), ["a b", "c"]);
    let d = run(&["-k", "-N2", "echo", "{1}-{2}", ":::", "a", "b", "c"]);
    assert_eq!(d.lines(), ["a-b", "c-"]);
    // -N0: read one input, insert none.
    let d = run(&["-k", "-N0", "echo", "x", ":::", "a", "b"]);
    assert_eq!(d.lines(), ["x", "x"]);
    // -X repeats the word around {}; inputs are shared evenly between jobs.
    let d = run(&[
        "-k",
        "-j2",
        "-X",
        "echo",
        "pre{}post",
        ":::",
        "a",
        "b",
        "c",
        "d",
        "e",
    ]);
    assert_eq!(
        d.lines(),
        ["preapost prebpost precpost", "predpost preepost"]
    );
    // -m inserts them all where {} is.
    let d = run(&["-k", "-j1", "-m", "echo", "pre{}post", ":::", "a", "b", "c"]);
    assert_eq!(d.lines(), ["prea b cpost"]);
}

#[test]
fn inputs_can_be_the_commands() {
    let d = run(&["-k", ":::", "echo a", "echo b  c", "echo $((1+2))"]);
    assert_eq!(d.lines(), ["a", "b c", "3"]);
    // A replacement string that starts the command is not quoted either.
    let d = run(&["-k", "{}", "x", ":::", "echo a"]);
    assert_eq!(d.lines(), ["a x"]);
}

#[test]
fn shell_syntax_in_the_command_works() {
    let d = run(&[
        "-k",
        "echo {} | tr a-z A-Z; echo $((2*{}))",
        ":::",
        "1",
        "2",
    ]);
    assert_eq!(d.lines(), ["1", "2", "2", "4"]);
    let d = run(&["-k", "-q", "printf", "%s|%s\\n", "a b", "{}", ":::", "c d"]);
    assert_eq!(d.lines(), ["a b|c d"]);
}

/// File names that would do harm if a shell read them as code.
const HOSTILE: &[&str] = &[
    "plain",
    "with space",
    "it's",
    "double\"quote",
    "$(touch pwned1)",
    "`touch pwned2`",
    "$HOME",
    "semi;touch pwned3",
    "pipe|touch pwned4",
    "new\nline",
    "tab\there",
    "-rf",
    "--help",
    "*",
    "back\\slash",
    "amp&touch pwned5&",
    "~",
    "{}",
    "é ü",
];

#[test]
fn hostile_file_names_pass_intact_and_never_run() {
    let dir = Scratch::new();
    let mut input = Vec::new();
    for (i, name) in HOSTILE.iter().enumerate() {
        std::fs::write(dir.join(name), format!("content {i}\n")).unwrap();
        input.extend_from_slice(name.as_bytes());
        input.push(0);
    }
    let expected: Vec<String> = (0..HOSTILE.len()).map(|i| format!("content {i}")).collect();
    // Plain words: executed directly.
    let d = run_in(dir.path(), &["-k", "-0", "cat", "--", "{}"], Some(&input));
    d.status(0);
    assert_eq!(d.lines(), expected);
    // Shell syntax around: the values are quoted for the shell.
    let d = run_in(dir.path(), &["-k", "-0", "cat -- {} | cat"], Some(&input));
    d.status(0);
    assert_eq!(d.lines(), expected);
    // The values themselves, byte for byte.
    let d = run_in(
        dir.path(),
        &["-k", "-0", "printf '<%s>\\n' {}"],
        Some(&input),
    );
    let want: String = HOSTILE.iter().map(|n| format!("<{n}>\n")).collect();
    assert_eq!(d.out(), want);
    // Also as positional and modified replacement strings.
    let d = run_in(
        dir.path(),
        &["-k", "-0", "printf '<%s>\\n' {1} {/}"],
        Some(&input),
    );
    let want: String = HOSTILE
        .iter()
        .map(|n| {
            let base = n.rsplit('/').next().unwrap();
            format!("<{n}>\n<{base}>\n")
        })
        .collect();
    assert_eq!(d.out(), want);
    for i in 1..=5 {
        assert!(
            !dir.join(format!("pwned{i}")).exists(),
            "pwned{i} was created"
        );
    }
    // The dry run shows quoted commands.
    let d = run(&[
        "--dry-run",
        "echo",
        ":::",
        "$(touch x)",
        "it's",
        "a b",
        "-n",
    ]);
    assert_eq!(
        d.lines(),
        [
            "echo '$(touch x)'",
            "echo 'it'\"'\"'s'",
            "echo 'a b'",
            "echo -n"
        ]
    );
}

#[test]
fn dry_run_runs_nothing() {
    let dir = Scratch::new();
    let d = run_in(dir.path(), &["--dry-run", "touch", ":::", "a", "b"], None);
    d.status(0);
    assert_eq!(d.lines(), ["touch a", "touch b"]);
    assert!(!dir.join("a").exists());
}

#[test]
fn exit_status_counts_failed_jobs() {
    run(&["exit {}", ":::", "0", "0"]).status(0);
    run(&["exit {}", ":::", "1", "2", "0", "3"]).status(3);
    // More than 100 failures: 101.
    let many: Vec<String> = (0..120).map(|i| i.to_string()).collect();
    let mut args = vec!["-N0", "false", ":::"];
    args.extend(many.iter().map(String::as_str));
    run(&args).status(101);
    // A missing program fails like a shell says: its job fails.
    let d = run(&["no-such-program-xyz", ":::", "a"]);
    d.status(1);
    assert!(
        d.err().contains("no-such-program-xyz: command not found"),
        "{}",
        d.err()
    );
    let d = run(&["no-such-program-xyz {} | cat", ":::", "a"]);
    d.status(0); // the pipeline's status is cat's
}

#[test]
fn usage_errors_exit_255() {
    for args in [
        &["--no-such-option", "echo"][..],
        &["-j", "lots", "echo", ":::", "a"],
        &["--halt", "sometimes", "echo", ":::", "a"],
        &["--timeout", "soon", "echo", ":::", "a"],
        &["-a", "/nonexistent/input", "echo"],
        &["--resume", "echo", ":::", "a"],
        &["-n", "1", "-N", "1", "echo", ":::", "a"],
        &["--memfree", "1Q", "echo", ":::", "a"],
    ] {
        let d = run(args);
        assert_eq!(d.code, Some(255), "{args:?}: {}", d.err());
        assert!(
            d.err().starts_with("quadriga: ") || d.err().contains("error"),
            "{}",
            d.err()
        );
        assert!(d.stdout.is_empty());
    }
    // Help is not an error.
    let mut cmd = common::bin();
    cmd.args(["run", "--help"]);
    let d = common::spawn_and_wait(cmd, None);
    d.status(0);
    assert!(d.out().contains("--joblog"));
}

#[test]
fn ignored_gnu_options_are_accepted() {
    let d = run(&["--will-cite", "--no-notice", "--plain", "echo", ":::", "ok"]);
    d.status(0);
    assert_eq!(d.lines(), ["ok"]);
}
