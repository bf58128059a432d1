//! `quadriga run`'s columns (`--colsep`, `--csv`, `--trim`, `--header :`),
//! replacement strings (`--plus`, `--rpl`, `{= =}`) and everyday options
//! (`-E`, `--xargs`, `-s`, `--nice`, `--shuf`, `--files`, `--tmpdir`,
//! `--workdir`, `--env`, `--number-of-*`), against the real binary.
//!
//! Each [`Case`] holds GNU parallel 20221122's answer for the same command
//! (recorded, so that CI without GNU parallel checks them); where `parallel`
//! is installed, it is asked again, and a changed answer fails the test.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Scratch, run_in, run_stdin};

/// One command, and what GNU parallel printed for it.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    stdin: &'static str,
    gnu: &'static str,
}

/// GNU parallel's answers (20221122, /bin/sh jobs, 2 cores).
const CASES: &[Case] = &[
    Case {
        name: "colsep",
        args: &[
            "-k", "--colsep", ",", "echo", "{2}-{1}", ":::", "a,b", "c,d",
        ],
        stdin: "",
        gnu: "b-a\nd-c\n",
    },
    Case {
        name: "colsep_all_columns",
        args: &[
            "-k", "--colsep", ",", "echo", "{}", ":::", "a,b", ":::", "x,y",
        ],
        stdin: "",
        gnu: "a b x y\n",
    },
    Case {
        name: "colsep_appended",
        args: &["-k", "--colsep", ",", "echo", ":::", "a,b", "c,d"],
        stdin: "",
        gnu: "a b\nc d\n",
    },
    Case {
        name: "colsep_regex_tab",
        args: &["-k", "--colsep", "\\t+", "echo", "{2}/{1}"],
        stdin: "a\t\tb\nc\td\n",
        gnu: "b/a\nd/c\n",
    },
    Case {
        name: "colsep_empty_columns",
        args: &["-k", "--colsep", ",", "echo", "[{1}]-[{2}]-[{3}]"],
        stdin: "a,,\n,b\n",
        gnu: "[a]-[]-[]\n[]-[b]-[]\n",
    },
    Case {
        name: "colsep_trims_by_default",
        args: &["-k", "--colsep", ",", "echo", "[{1}]", "[{2}]"],
        stdin: " a ,b \n",
        gnu: "[a] [b]\n",
    },
    Case {
        name: "colsep_trim_n",
        args: &[
            "-k", "--colsep", ",", "--trim", "n", "echo", "'[{1}]'", "'[{2}]'",
        ],
        stdin: " a , b \n",
        gnu: "[ a ] [ b ]\n",
    },
    Case {
        name: "colsep_trim_l",
        args: &[
            "-k", "--colsep", ",", "--trim", "l", "echo", "'[{1}]'", "'[{2}]'",
        ],
        stdin: " a , b \n",
        gnu: "[a ] [b ]\n",
    },
    Case {
        name: "trim_lr",
        args: &["-k", "--trim", "lr", "echo", "[{}]"],
        stdin: " a  \n",
        gnu: "[a]\n",
    },
    Case {
        name: "trim_r",
        args: &["-k", "--trim", "r", "echo", "'[{}]'"],
        stdin: " a\t \n",
        gnu: "[ a]\n",
    },
    Case {
        name: "colsep_modifiers",
        args: &["-k", "--colsep", ",", "echo", "{2.}", "{-1}", "{1/}"],
        stdin: "d/a.x,b.y\n",
        gnu: "b b.y a.x\n",
    },
    Case {
        name: "header_colsep",
        args: &["-k", "--colsep", ",", "--header", ":", "echo", "{v}{n}{1}"],
        stdin: "n,v\na,1\nb,2\n",
        gnu: "1aa\n2bb\n",
    },
    Case {
        name: "header_args",
        args: &[
            "-k", "--header", ":", "echo", "{f}{g}", ":::", "f", "a", "b", ":::", "g", "1", "2",
        ],
        stdin: "",
        gnu: "a1\na2\nb1\nb2\n",
    },
    Case {
        name: "header_modifier",
        args: &[
            "-k", "--header", ":", "echo", "{x.}", "{1}", ":::", "x", "1.a", "2",
        ],
        stdin: "",
        gnu: "1 1.a\n2 2\n",
    },
    Case {
        name: "header_colsep_args",
        args: &[
            "-k", "--header", ":", "--colsep", ",", "echo", "{y}:{x}", ":::", "x,y", "1,2",
        ],
        stdin: "",
        gnu: "2:1\n",
    },
    Case {
        name: "header_appended",
        args: &["-k", "--header", ":", "--colsep", ",", "echo"],
        stdin: "a,b\nc,d\n",
        gnu: "c d\n",
    },
    Case {
        name: "plus_fixed",
        args: &[
            "-k",
            "--plus",
            "echo",
            "{+/}",
            "{+.}",
            "{+..}",
            "{+...}",
            "{..}",
            "{...}",
            "{/..}",
            "{/...}",
            "{##}",
            ":::",
            "dir.x/sub/a.b.c.d",
            "f",
        ],
        stdin: "",
        gnu: "dir.x/sub d c.d b.c.d dir.x/sub/a.b dir.x/sub/a a.b a 2\n    f f f f 2\n",
    },
    Case {
        name: "plus_padding",
        args: &[
            "-k", "-j2", "--plus", "echo", "{0#}", "{#}", "{##}", ":::", "a", "b", "c", "d", "e",
            "f", "g", "h", "i", "j", "k",
        ],
        stdin: "",
        gnu: "01 1 11\n02 2 11\n03 3 11\n04 4 11\n05 5 11\n06 6 11\n07 7 11\n08 8 11\n09 9 11\n10 10 11\n11 11 11\n",
    },
    Case {
        name: "plus_dynamic",
        args: &[
            "-k",
            "--plus",
            "echo",
            "{:2}",
            "{:1:3}",
            "{#b}",
            "{#a}",
            "{%d}",
            "{/a/X}",
            "{//a/X}",
            "{^a}",
            "{^^a}",
            "{:-empty}",
            ":::",
            "abcad",
        ],
        stdin: "",
        gnu: "cad bca abcad bcad abca Xbcad XbcXd Abcad AbcAd abcad\n",
    },
    Case {
        name: "plus_default",
        args: &["-k", "--plus", "echo", "{:-empty}", ":::", ""],
        stdin: "",
        gnu: "empty\n",
    },
    Case {
        name: "plus_positional",
        args: &[
            "-k", "--plus", "echo", "{2+.}", "{1..}", ":::", "a.b.c", ":::", "x.y",
        ],
        stdin: "",
        gnu: "y a\n",
    },
    Case {
        name: "rpl_subst",
        args: &[
            "-k",
            "--rpl",
            "{..} s:\\.[^/.]+$::;s:\\.[^/.]+$::",
            "echo",
            "{..}",
            ":::",
            "a/b.tar.gz",
        ],
        stdin: "",
        gnu: "a/b\n",
    },
    Case {
        name: "rpl_or",
        args: &[
            "-k",
            "--rpl",
            "{dom} s:.*@:: || s:.*::",
            "echo",
            "[{dom}]",
            ":::",
            "me@x.org",
            "nobody",
        ],
        stdin: "",
        gnu: "[x.org]\n[]\n",
    },
    Case {
        name: "rpl_uc",
        args: &[
            "-k",
            "--rpl",
            "{U} $_=uc($_)",
            "echo",
            "{U}",
            "{2U}",
            ":::",
            "ab",
            ":::",
            "cd",
        ],
        stdin: "",
        gnu: "AB CD CD\n",
    },
    Case {
        name: "rpl_groups",
        args: &[
            "-k",
            "--rpl",
            "{:(\\d+)} s/^.{$$1}//",
            "echo",
            "{:2}",
            ":::",
            "abcd",
        ],
        stdin: "",
        gnu: "cd\n",
    },
    Case {
        name: "rpl_seq",
        args: &[
            "-k",
            "--rpl",
            "{nr} 1 $_=$job->seq()",
            "echo",
            "{nr}-{}",
            ":::",
            "a",
            "b",
        ],
        stdin: "",
        gnu: "1-a\n2-b\n",
    },
    Case {
        name: "perl_expression",
        args: &["-k", "echo", "{= s/a/b/g =}", ":::", "banana"],
        stdin: "",
        gnu: "bbnbnb\n",
    },
    Case {
        name: "eof_stdin",
        args: &["-k", "-E", "STOP", "echo"],
        stdin: "a\nb\nSTOP\nc\n",
        gnu: "a\nb\n",
    },
    Case {
        name: "eof_args",
        args: &[
            "-k", "-E", "b", "echo", ":::", "a", "b", "c", ":::", "1", "b", "2",
        ],
        stdin: "",
        gnu: "a 1\n",
    },
    Case {
        name: "xargs",
        args: &["-k", "-j1", "--xargs", "echo"],
        stdin: "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
        gnu: "1 2 3 4 5 6 7 8 9 10\n",
    },
    Case {
        name: "xargs_max_chars",
        args: &["-k", "--xargs", "-s", "10", "echo"],
        stdin: "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
        gnu: "1 2\n3 4\n5 6\n7 8\n9 10\n",
    },
    Case {
        name: "plus_strip",
        args: &[
            "-k", "--plus", "echo", "{%.gz}", "{##a.*b}", ":::", "aXbYb.gz",
        ],
        stdin: "",
        gnu: "aXbYb .gz\n",
    },
    Case {
        name: "context_max_chars",
        args: &["-k", "-j1", "-X", "-s", "12", "echo", "x{}"],
        stdin: "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
        gnu: "x1 x2\nx3 x4\nx5 x6\nx7 x8\nx9 x10\n",
    },
    Case {
        name: "csv",
        args: &["-k", "--csv", "echo", "{2}"],
        stdin: "a,\"b,c\",d\n\"x \"\"y\"\"\",z,w\n",
        gnu: "b,c\nz\n",
    },
    Case {
        name: "csv_delimiter",
        args: &["-k", "--csv", "--colsep", ";", "echo", "{2}"],
        stdin: "a;\"b;c\"\n",
        gnu: "b;c\n",
    },
    Case {
        name: "csv_header",
        args: &["-k", "--csv", "--header", ":", "echo", "{h1}"],
        stdin: "h1,h2\n\"q,1\",2\n",
        gnu: "q,1\n",
    },
    Case {
        name: "csv_multiline",
        args: &["-k", "--csv", "echo", "[{2}]", "[{3}]"],
        stdin: "a,\"multi\nline\",c\n",
        gnu: "[multi\nline] [c]\n",
    },
    Case {
        name: "csv_no_trim",
        args: &["-k", "--csv", "echo", "'[{1}]'"],
        stdin: " a , b \n",
        gnu: "[ a ]\n",
    },
    Case {
        name: "nice",
        args: &["--nice", "7", "nice; true", ":::", "1"],
        stdin: "",
        gnu: "7\n",
    },
    Case {
        name: "plus_choose_k",
        args: &[
            "-k",
            "--plus",
            "echo",
            "{choose_k}",
            ":::",
            "A",
            "B",
            "C",
            ":::",
            "A",
            "B",
            "C",
        ],
        stdin: "",
        gnu: "A B\nA C\nB C\n",
    },
    Case {
        name: "plus_uniq",
        args: &[
            "-k", "--plus", "echo", "{uniq}", ":::", "A", "B", ":::", "A", "B",
        ],
        stdin: "",
        gnu: "A B\nB A\n",
    },
    Case {
        name: "plus_choose_k_three",
        args: &[
            "-k",
            "--plus",
            "echo",
            "{choose_k}",
            "{}",
            ":::",
            "A",
            "B",
            "C",
            ":::",
            "A",
            "B",
            "C",
            ":::",
            "A",
            "B",
            "C",
        ],
        stdin: "",
        gnu: "A B C A B C\n",
    },
    Case {
        name: "tee",
        args: &[
            "-k",
            "--pipe",
            "--tee",
            "--tag",
            "echo {#} {}; cat",
            ":::",
            "a",
            "b",
            ":::",
            "x",
            "y",
        ],
        stdin: "1\n2\n3\n",
        gnu: "a x\t1 a x\na x\t1\na x\t2\na x\t3\na y\t2 a y\na y\t1\na y\t2\na y\t3\nb x\t3 b x\nb x\t1\nb x\t2\nb x\t3\nb y\t4 b y\nb y\t1\nb y\t2\nb y\t3\n",
    },
];

/// GNU parallel's output for `args`, if it is installed and succeeds (its
/// `--csv` needs Perl's Text::CSV, which may be missing).
fn gnu_output(args: &[&str], stdin: &[u8]) -> Option<String> {
    let mut child = Command::new("parallel")
        .arg("--will-cite")
        .args(args)
        .env("PARALLEL_SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut input = child.stdin.take()?;
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().ok()?;
    let _ = feeder.join();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn same_answers_as_gnu_parallel() {
    let mut failed = Vec::new();
    for case in CASES {
        let got = run_stdin(case.args, case.stdin.as_bytes());
        if got.code != Some(0) || got.out() != case.gnu {
            failed.push(format!(
                "{}: {:?}\n  GNU parallel: {:?}\n  quadriga ({:?}): {:?} {}",
                case.name,
                case.args,
                case.gnu,
                got.code,
                got.out(),
                got.err()
            ));
        }
        if let Some(live) = gnu_output(case.args, case.stdin.as_bytes()) {
            assert_eq!(
                live, case.gnu,
                "{}: GNU parallel's answer changed",
                case.name
            );
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn bad_options_are_usage_errors() {
    for (args, says) in [
        (&["--trim", "x", "echo", ":::", "a"][..], "--trim"),
        (&["--colsep", "(", "echo", ":::", "a"], "--colsep"),
        (
            &["--rpl", "{r} $_ = reverse($_)", "echo", "{r}", ":::", "a"],
            "supported",
        ),
        (
            &["--rpl", "{r} s/a/b/e", "echo", "{r}", ":::", "a"],
            "flag e",
        ),
        (
            &["--plus", "echo", "{/(/x}", ":::", "a"],
            "regular expression",
        ),
        (&["--header", "2", "echo", ":::", "a"], "--header"),
        (&["--env", "A-B", "echo", ":::", "a"], "--env"),
        (
            &["--tmpdir", "/nonexistent/dir", "echo", ":::", "a"],
            "--tmpdir",
        ),
        (
            &["--wd", "/nonexistent/dir", "echo", ":::", "a"],
            "--workdir",
        ),
        (&["-X", "-s", "5", "echo", "aaaaaa", ":::", "1"], "too long"),
        // GNU parallel 20221122: "Command line too long (13 >= 5) at input 0: 1", 255.
        (
            &["-s", "5", "echo", "aaaaaa", ":::", "1"],
            "too long (13 >= 5)",
        ),
    ] {
        let got = run_stdin(args, b"");
        assert_eq!(got.code, Some(255), "{args:?}: {}", got.err());
        assert!(got.err().contains(says), "{args:?}: {}", got.err());
        assert!(got.out().is_empty(), "{args:?} ran something");
    }
}

#[test]
fn header_names_columns_of_a_file_source() {
    let dir = Scratch::new();
    std::fs::write(dir.join("t.tsv"), "name\tsize\nx.gz\t10\ny.gz\t20\n").unwrap();
    let got = run_in(
        dir.path(),
        &[
            "-k",
            "--header",
            ":",
            "--colsep",
            "\t",
            "echo",
            "{name.}={size}",
            "::::",
            "t.tsv",
        ],
        None,
    );
    got.status(0);
    assert_eq!(got.lines(), ["x=10", "y=20"]);
}

#[test]
fn shuf_runs_every_job_once_in_a_random_order() {
    let args: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let mut orders = std::collections::HashSet::new();
    for _ in 0..3 {
        let mut a = vec!["-k", "-j1", "--shuf", "echo", ":::"];
        a.extend(args.iter().map(String::as_str));
        let got = run_stdin(&a, b"");
        got.status(0);
        let lines = got.lines();
        let mut sorted: Vec<u32> = lines.iter().map(|l| l.parse().unwrap()).collect();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=40).collect::<Vec<_>>());
        orders.insert(lines);
    }
    // 40! orders: three runs in the same one would be a broken shuffle.
    assert!(orders.len() > 1, "--shuf gave the same order three times");
}

#[test]
fn files_leaves_output_in_files_and_prints_their_names() {
    let dir = Scratch::new();
    std::fs::create_dir(dir.join("out")).unwrap();
    let got = run_in(
        dir.path(),
        &[
            "-k",
            "--files",
            "--tmpdir",
            "out",
            "echo {}; echo err >&2; exit 2",
            ":::",
            "a",
            "b",
        ],
        None,
    );
    // Both failed: the names are printed all the same, stderr is not in the files.
    got.status(2);
    assert_eq!(got.err().matches("err").count(), 2, "{}", got.err());
    let names = got.lines();
    assert_eq!(names.len(), 2);
    for (name, want) in names.iter().zip(["a\n", "b\n"]) {
        assert!(name.starts_with("out/"), "{name}");
        let path = dir.join(name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "{name} is readable by others");
    }
}

#[test]
fn workdir_fixed_and_one_per_job() {
    let dir = Scratch::new();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let got = run_in(
        dir.path(),
        &["-k", "--wd", "sub", "pwd; true", ":::", "1"],
        None,
    );
    got.status(0);
    assert!(got.out().trim_end().ends_with("/sub"), "{}", got.out());
    // `...`: a new directory per job, gone when the job ends.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut cmd = common::bin();
    cmd.current_dir(dir.path()).env("TMPDIR", &tmp).args([
        "run",
        "-k",
        "-j2",
        "--wd",
        "...",
        "pwd; touch f; ls; true",
        ":::",
        "1",
        "2",
    ]);
    let got = common::spawn_and_wait(cmd, None);
    got.status(0);
    let lines = got.lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_ne!(lines[0], lines[2], "two jobs shared a directory");
    assert_eq!(lines[1], "f");
    assert!(lines[0].starts_with(tmp.to_str().unwrap()));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "left behind");
    // A job killed by --timeout: its directory goes when the run ends.
    let mut cmd = common::bin();
    cmd.current_dir(dir.path()).env("TMPDIR", &tmp).args([
        "run",
        "--timeout",
        "0.5",
        "--wd",
        "...",
        "touch f; sleep 30",
        ":::",
        "1",
    ]);
    let got = common::spawn_and_wait(cmd, None);
    assert_ne!(got.code, Some(0));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "left behind");
}

#[test]
fn env_names_are_accepted_and_the_environment_is_passed() {
    let mut cmd = common::bin();
    cmd.env("QUADRIGA_TEST_VAR", "v1").args([
        "run",
        "--env",
        "QUADRIGA_TEST_VAR",
        "--env",
        "_",
        "echo $QUADRIGA_TEST_VAR {}",
        ":::",
        "x",
    ]);
    let got = common::spawn_and_wait(cmd, None);
    got.status(0);
    assert_eq!(got.out(), "v1 x\n");
}

#[test]
fn number_of_cpus_cores_threads_sockets() {
    let ask = |opt: &str| -> usize {
        let got = run_stdin(&[opt], b"");
        got.status(0);
        got.out().trim().parse().expect("a number")
    };
    let threads = ask("--number-of-threads");
    let cores = ask("--number-of-cores");
    let sockets = ask("--number-of-sockets");
    assert_eq!(ask("--number-of-cpus"), cores);
    assert!(threads >= cores && cores >= sockets && sockets >= 1);
    let online = std::thread::available_parallelism().unwrap().get();
    assert!(threads >= online, "{threads} threads, {online} usable");
    for (opt, mine) in [
        ("--number-of-threads", threads),
        ("--number-of-cores", cores),
        ("--number-of-sockets", sockets),
    ] {
        if let Some(g) = gnu_output(&[opt], b"") {
            assert_eq!(
                g.trim().parse::<usize>().unwrap(),
                mine,
                "{opt}: GNU parallel differs"
            );
        }
    }
}

#[test]
fn limit_waits_while_the_command_says_1() {
    let dir = Scratch::new();
    let go = dir.join("go");
    let toucher = {
        let go = go.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            std::fs::write(go, "").unwrap();
        })
    };
    // GNU parallel 20221122 prints x and y once `go` exists.
    let got = run_in(
        dir.path(),
        &["-k", "--limit", "test -e go", "echo", ":::", "x", "y"],
        None,
    );
    toucher.join().unwrap();
    got.status(0);
    assert_eq!(got.out(), "x\ny\n");
    assert!(got.elapsed >= std::time::Duration::from_millis(450));
}

#[test]
fn limit_2_kills_the_youngest_and_runs_it_again() {
    let dir = Scratch::new();
    // The third verdict is 2; the others 0.
    let limit = "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; \
                 [ $n -eq 2 ] && exit 2; exit 0";
    let got = run_in(
        dir.path(),
        &[
            "-k",
            "-j2",
            "--joblog",
            "log",
            "--limit",
            limit,
            "sleep 1; echo {}",
            ":::",
            "a",
            "b",
            "c",
            "d",
        ],
        None,
    );
    // GNU parallel 20221122 kills b for good (prints a c d, status 1); the
    // killed job runs again here, as with --memfree (a documented difference).
    got.status(0);
    assert_eq!(got.out(), "a\nb\nc\nd\n");
    let count: u32 = std::fs::read_to_string(dir.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(count >= 5, "the command was asked {count} times");
}

#[test]
fn compress_is_accepted() {
    let got = run_stdin(&["-k", "--compress", "echo", ":::", "a"], b"");
    got.status(0);
    assert_eq!(got.out(), "a\n");
}

#[test]
fn tee_gives_all_of_stdin_to_every_job() {
    let data: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    let args = [
        "-k",
        "--pipe",
        "--tee",
        "--tag",
        "grep -c {}",
        ":::",
        "4",
        "5",
        "6",
    ];
    // GNU parallel 20221122's answer.
    let gnu = "4\t6878\n5\t6878\n6\t6878\n";
    let got = run_stdin(&args, data.as_bytes());
    got.status(0);
    assert_eq!(got.out(), gnu);
    if let Some(live) = gnu_output(&args, data.as_bytes()) {
        assert_eq!(live, gnu, "GNU parallel's answer changed");
    }
    // A job that stops reading early does not hold the others back.
    let big = vec![b'x'; 8 << 20];
    let got = run_stdin(
        &[
            "-k",
            "--pipe",
            "--tee",
            "{}",
            ":::",
            "head -c 10 >/dev/null; echo early",
            "wc -c",
        ],
        &big,
    );
    got.status(0);
    assert_eq!(got.lines(), ["early", &(8u32 << 20).to_string()]);
    // Every job at once, or a usage error (GNU parallel's too).
    let got = run_stdin(&["-j1", "--pipe", "--tee", "cat", ":::", "a", "b"], b"1\n");
    got.status(255);
    assert!(got.err().contains("-j"), "{}", got.err());
}

#[test]
fn header_names_the_levels_of_results() {
    let dir = Scratch::new();
    let got = run_in(
        dir.path(),
        &[
            "--results",
            "res",
            "--header",
            ":",
            "echo",
            ":::",
            "x",
            "1",
            "2",
            ":::",
            "y",
            "3",
        ],
        None,
    );
    got.status(0);
    let mut files = Vec::new();
    let mut stack = vec![dir.join("res")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p.strip_prefix(dir.path()).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    // GNU parallel 20221122's tree for the same command.
    let gnu = [
        "res/x/1/y/3/seq",
        "res/x/1/y/3/stderr",
        "res/x/1/y/3/stdout",
        "res/x/2/y/3/seq",
        "res/x/2/y/3/stderr",
        "res/x/2/y/3/stdout",
    ];
    assert_eq!(files, gnu);
    assert_eq!(
        std::fs::read_to_string(dir.join("res/x/2/y/3/stdout")).unwrap(),
        "2 3\n"
    );
}
