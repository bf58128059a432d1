//! The command template: replacement strings, safe quoting, and whether a job
//! can be executed directly or needs a shell.
//!
//! The command words are joined with spaces, as GNU parallel does, and read as
//! shell text with replacement strings in it. Each substituted value is
//! quoted for the shell (`'...'`, with `'` written `'"'"'`), so a file name is
//! one word whatever it holds (spaces, quotes, `$(...)`, backticks, newlines,
//! a leading dash) and is never executed. The exception, as in GNU parallel: a
//! replacement string that starts the command is inserted as is, so the input
//! can be the command (`quadriga run ::: 'echo a' 'echo b'`).
//!
//! **Direct execution.** When the template's own text is plain words (letters,
//! digits, `_-./,:+@%`, and `=` after the first word) and the first word is
//! not a shell builtin or keyword, a shell would do nothing but split words
//! and remove the quotes we added. Then the job is executed directly, like
//! `xargs` does: the words become argv and each value goes into its word
//! byte for byte. Both forms are always built alike, so they cannot disagree;
//! the shell form is what `--dry-run`, `-t` and the joblog show.

use std::borrow::Cow;
use std::sync::Arc;

use crate::rpl::{Found, JobFilter, JobValue, Replacements, Transform};

/// How a value is transformed before insertion.
#[derive(Debug, Clone)]
pub(crate) enum Modifier {
    /// The value itself.
    None,
    /// `.`: without the extension.
    NoExt,
    /// `/`: the basename.
    Base,
    /// `//`: the dirname.
    Dir,
    /// `/.`: the basename without the extension.
    BaseNoExt,
    /// `--plus`, `--rpl`, `{= ... =}`.
    Ops(Arc<Transform>),
}

impl Modifier {
    fn parse(s: &[u8]) -> Option<Self> {
        Some(match s {
            b"" => Modifier::None,
            b"." => Modifier::NoExt,
            b"/" => Modifier::Base,
            b"//" => Modifier::Dir,
            b"/." => Modifier::BaseNoExt,
            _ => return None,
        })
    }

    pub(crate) fn apply<'a>(&self, v: &'a [u8]) -> Cow<'a, [u8]> {
        Cow::Borrowed(match self {
            Modifier::None => v,
            Modifier::NoExt => no_ext(v),
            Modifier::Base => base(v),
            Modifier::Dir => dir(v),
            Modifier::BaseNoExt => no_ext(base(v)),
            Modifier::Ops(t) => return Cow::Owned(t.apply(v)),
        })
    }
}

/// `sub.dir/foo.jpg` → `sub.dir/foo`: from the last `.` after the last `/`.
fn no_ext(v: &[u8]) -> &[u8] {
    let start = v.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    match v[start..].iter().rposition(|&b| b == b'.') {
        Some(dot) => &v[..start + dot],
        None => v,
    }
}

fn base(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'/') {
        Some(i) => &v[i + 1..],
        None => v,
    }
}

/// As dirname(1) for the common cases: `a/b` → `a`, `/x` → `/`, `foo` → `.`.
fn dir(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &v[..i],
        None => b".",
    }
}

/// A replacement string.
#[derive(Debug, Clone)]
pub(crate) enum Repl {
    /// `{}` and friends: every argument of the job.
    All(Modifier),
    /// `{n}` and friends: the n-th argument (negative: from the end).
    Pos(i64, Modifier),
    /// `{#}`, `{%}`, `{##}` ...: a value of the job, not of its arguments.
    Job(JobValue),
    /// `{choose_k}`, `{uniq}`: as `{}`; the input skips some jobs.
    Filter(JobFilter),
}

/// What the whole run knows once its input is read: the number of jobs (for
/// `{##}` and `{0#}`) and of job slots (for `{0%}`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunFacts {
    pub(crate) total: Option<u64>,
    pub(crate) slots: usize,
}

#[derive(Debug, Clone)]
enum Part {
    Lit(Vec<u8>),
    Repl(Repl),
}

#[derive(Debug, Clone)]
enum Token {
    /// Whitespace between words, kept verbatim in the shell text.
    Space(Vec<u8>),
    Word(Vec<Part>),
}

/// What a job's command is rendered from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobContext<'a> {
    pub(crate) args: &'a [Vec<u8>],
    pub(crate) seq: u64,
    pub(crate) slot: usize,
}

/// A rendered command: always the shell text; argv when no shell is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub(crate) shell: Vec<u8>,
    pub(crate) argv: Option<Vec<Vec<u8>>>,
}

/// How the command text is built.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TemplateOptions<'a> {
    /// `-q`: each command word is one word, quoted as a whole.
    pub(crate) quote_words: bool,
    /// `-X` (and `-n`, `-N` unless `-m`): a word containing `{}` is repeated
    /// for each argument.
    pub(crate) context_replace: bool,
    /// `-I`: the string that stands for `{}`.
    pub(crate) replace: Option<&'a [u8]>,
    /// `--plus`, `--rpl`.
    pub(crate) extra: Option<&'a Replacements>,
    /// `--header :`: the names of the arguments, by position.
    pub(crate) names: &'a [Vec<u8>],
}

/// How `{...}` is read: the options that decide what is a replacement string.
#[derive(Clone, Copy)]
struct Syntax<'a> {
    replace: Option<&'a [u8]>,
    extra: Option<&'a Replacements>,
    names: &'a [Vec<u8>],
}

impl<'a> Syntax<'a> {
    fn of(opts: &TemplateOptions<'a>) -> Self {
        Syntax {
            replace: opts.replace,
            extra: opts.extra,
            names: opts.names,
        }
    }
}

/// A parsed command template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    tokens: Vec<Token>,
    /// `-q`: literal text is data, quoted in the shell text.
    quote_literals: bool,
    context_replace: bool,
    /// The literal text is plain words: argv can be built without a shell.
    plain: bool,
    /// The first word starts with a replacement string: insert it unquoted.
    raw_first: bool,
    /// For `{##}`, `{0#}`, `{0%}`.
    facts: RunFacts,
    /// The first bad replacement string met.
    error: Option<String>,
}

impl Template {
    /// The template from the command words; with no words, each input is
    /// itself the command.
    pub(crate) fn new(words: &[Vec<u8>], opts: TemplateOptions<'_>) -> Self {
        let syntax = Syntax::of(&opts);
        let mut error = None;
        let mut tokens = Vec::new();
        if words.is_empty() {
            tokens.push(Token::Word(vec![Part::Repl(Repl::All(Modifier::None))]));
        } else if opts.quote_words {
            for (i, w) in words.iter().enumerate() {
                if i > 0 {
                    tokens.push(Token::Space(b" ".to_vec()));
                }
                tokens.push(Token::Word(parse_parts(w, syntax, &mut error)));
            }
        } else {
            tokens = tokenize(&words.join(&b' '), syntax, &mut error);
        }
        let has_repl = tokens.iter().any(|t| match t {
            Token::Word(parts) => parts.iter().any(|p| matches!(p, Part::Repl(_))),
            Token::Space(_) => false,
        });
        if !has_repl {
            tokens.push(Token::Space(b" ".to_vec()));
            tokens.push(Token::Word(vec![Part::Repl(Repl::All(Modifier::None))]));
        }
        let raw_first = matches!(tokens.first(), Some(Token::Word(p)) if matches!(p.first(), Some(Part::Repl(_))));
        let plain = opts.quote_words || is_plain_template(&tokens);
        Template {
            tokens,
            quote_literals: opts.quote_words,
            context_replace: opts.context_replace,
            plain,
            raw_first,
            facts: RunFacts::default(),
            error,
        }
    }

    /// A template whose values are inserted as they are (tags, result
    /// names): no quoting, no appended `{}`.
    #[cfg(test)]
    pub(crate) fn new_unquoted(text: &[u8], replace: Option<&[u8]>) -> Self {
        Self::new_unquoted_with(
            text,
            TemplateOptions {
                replace,
                ..Default::default()
            },
        )
    }

    /// [`Template::new_unquoted`] with the replacement strings of `opts`.
    pub(crate) fn new_unquoted_with(text: &[u8], opts: TemplateOptions<'_>) -> Self {
        let mut error = None;
        Template {
            tokens: tokenize(text, Syntax::of(&opts), &mut error),
            quote_literals: false,
            context_replace: false,
            plain: false,
            raw_first: false,
            facts: RunFacts::default(),
            error,
        }
    }

    /// The first bad replacement string, if any (a usage error).
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether rendering needs the number of jobs (`{##}`, `{0#}`): then
    /// the input is read whole first.
    pub(crate) fn needs_total(&self) -> bool {
        self.tokens.iter().any(|t| match t {
            Token::Word(parts) => parts.iter().any(|p| {
                matches!(
                    p,
                    Part::Repl(Repl::Job(JobValue::Total | JobValue::SeqPadded))
                )
            }),
            Token::Space(_) => false,
        })
    }

    /// The job filters its text holds (`{choose_k}`, `{uniq}`).
    pub(crate) fn filters(&self) -> Vec<JobFilter> {
        let mut out = Vec::new();
        for t in &self.tokens {
            if let Token::Word(parts) = t {
                for p in parts {
                    if let Part::Repl(Repl::Filter(f)) = p
                        && !out.contains(f)
                    {
                        out.push(*f);
                    }
                }
            }
        }
        out
    }

    /// Tells the template what the run knows (see [`RunFacts`]).
    pub(crate) fn set_run_facts(&mut self, facts: RunFacts) {
        self.facts = facts;
    }

    /// Whether the text holds any replacement string.
    pub(crate) fn has_replacements(&self) -> bool {
        self.tokens.iter().any(|t| match t {
            Token::Word(parts) => parts.iter().any(|p| matches!(p, Part::Repl(_))),
            Token::Space(_) => false,
        })
    }

    /// Whether jobs can run without a shell (when their values allow).
    pub(crate) fn is_plain(&self) -> bool {
        self.plain
    }

    /// Renders the text with every value inserted as is.
    pub(crate) fn render_unquoted(&self, ctx: JobContext<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        for token in &self.tokens {
            match token {
                Token::Space(s) => out.extend_from_slice(s),
                Token::Word(parts) => {
                    for part in parts {
                        match part {
                            Part::Lit(l) => out.extend_from_slice(l),
                            Part::Repl(r) => {
                                for (i, v) in values(r, ctx, self.facts).iter().enumerate() {
                                    if i > 0 {
                                        out.push(b' ');
                                    }
                                    out.extend_from_slice(v);
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Renders a job's command.
    pub(crate) fn render(&self, ctx: JobContext<'_>) -> Rendered {
        let mut r = Renderer {
            shell: Vec::with_capacity(64),
            argv: self.plain.then(Vec::new),
            word: None,
            quote_literals: self.quote_literals,
            facts: self.facts,
        };
        let mut first = true;
        for token in &self.tokens {
            match token {
                Token::Space(s) => {
                    r.shell.extend_from_slice(s);
                    r.end_word();
                }
                Token::Word(parts) => {
                    let raw = first && self.raw_first;
                    let context = self.context_replace
                        && parts.iter().any(|p| matches!(p, Part::Repl(Repl::All(_))));
                    if context {
                        for (i, arg) in ctx.args.iter().enumerate() {
                            if i > 0 {
                                r.shell.push(b' ');
                                r.end_word();
                            }
                            let one = std::slice::from_ref(arg);
                            r.word_parts(parts, JobContext { args: one, ..ctx }, raw && i == 0);
                        }
                    } else {
                        r.word_parts(parts, ctx, raw);
                    }
                    r.end_word();
                }
            }
            first = false;
        }
        let mut argv = r.argv;
        if let Some(a) = &argv
            && a.first().is_none_or(|w| needs_shell_as_command(w))
        {
            argv = None;
        }
        Rendered {
            shell: r.shell,
            argv,
        }
    }
}

struct Renderer {
    shell: Vec<u8>,
    argv: Option<Vec<Vec<u8>>>,
    word: Option<Vec<u8>>,
    quote_literals: bool,
    facts: RunFacts,
}

impl Renderer {
    fn end_word(&mut self) {
        if let Some(w) = self.word.take()
            && let Some(argv) = &mut self.argv
        {
            argv.push(w);
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.argv.is_some() {
            self.word
                .get_or_insert_with(Vec::new)
                .extend_from_slice(bytes);
        }
    }

    /// Unquoted text: the shell splits it at whitespace, and so do we; text
    /// a shell would interpret means this job needs one.
    fn raw_text(&mut self, text: &[u8]) {
        self.shell.extend_from_slice(text);
        if self.argv.is_none() {
            return;
        }
        if !text
            .iter()
            .all(|&b| is_plain_byte(b) || b == b'=' || is_space(b))
        {
            self.argv = None;
            self.word = None;
            return;
        }
        for chunk in text.split_inclusive(|&b| is_space(b)) {
            let (body, ends) = match chunk.split_last() {
                Some((&last, body)) if is_space(last) => (body, true),
                _ => (chunk, false),
            };
            if !body.is_empty() {
                self.append(body);
            }
            if ends {
                self.end_word();
            }
        }
    }

    fn word_parts(&mut self, parts: &[Part], ctx: JobContext<'_>, raw_first: bool) {
        for (i, part) in parts.iter().enumerate() {
            match part {
                Part::Lit(l) => {
                    if self.quote_literals {
                        quote_into(l, &mut self.shell);
                    } else {
                        self.shell.extend_from_slice(l);
                    }
                    self.append(l);
                }
                Part::Repl(repl) => {
                    let vals = values(repl, ctx, self.facts);
                    for (j, v) in vals.iter().enumerate() {
                        if j > 0 {
                            self.shell.push(b' ');
                            self.end_word();
                        }
                        if raw_first && i == 0 {
                            self.raw_text(v);
                        } else {
                            quote_into(v, &mut self.shell);
                            if self.argv.is_some() {
                                // Even an empty value is a word ('').
                                self.word.get_or_insert_with(Vec::new).extend_from_slice(v);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The values a replacement string stands for in this job.
fn values(repl: &Repl, ctx: JobContext<'_>, facts: RunFacts) -> Vec<Vec<u8>> {
    match repl {
        Repl::All(m) => ctx.args.iter().map(|a| m.apply(a).into_owned()).collect(),
        Repl::Filter(_) => ctx.args.to_vec(),
        Repl::Pos(n, m) => {
            let len = ctx.args.len() as i64;
            let idx = if *n > 0 { n - 1 } else { len + n };
            let v = if (0..len).contains(&idx) {
                m.apply(&ctx.args[idx as usize]).into_owned()
            } else {
                Vec::new()
            };
            vec![v]
        }
        Repl::Job(j) => {
            let width = |n: u64| n.max(1).to_string().len();
            let v = match j {
                JobValue::Seq => ctx.seq.to_string(),
                JobValue::Slot => ctx.slot.to_string(),
                JobValue::Total => facts.total.unwrap_or(0).to_string(),
                JobValue::SeqPadded => {
                    let w = width(facts.total.unwrap_or(ctx.seq));
                    format!("{:0w$}", ctx.seq)
                }
                JobValue::SlotPadded => {
                    let w = width(facts.slots as u64);
                    format!("{:0w$}", ctx.slot)
                }
            };
            vec![v.into_bytes()]
        }
    }
}

/// Splits shell text into whitespace and words made of literals and
/// replacement strings.
fn tokenize(text: &[u8], syntax: Syntax<'_>, error: &mut Option<String>) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let start = i;
        if is_space(text[i]) {
            while i < text.len() && is_space(text[i]) {
                i += 1;
            }
            tokens.push(Token::Space(text[start..i].to_vec()));
        } else {
            while i < text.len() && !is_space(text[i]) {
                // `{= ... =}` is one replacement string, spaces and all.
                if text[i..].starts_with(b"{=")
                    && let Some(end) = find(&text[i + 2..], b"=}")
                {
                    i += 2 + end + 2;
                    continue;
                }
                i += 1;
            }
            tokens.push(Token::Word(parse_parts(&text[start..i], syntax, error)));
        }
    }
    tokens
}

/// The length of the inside of a `{...}` whose `{` was just passed.
fn closing(rest: &[u8]) -> Option<usize> {
    if rest.starts_with(b"=") {
        find(&rest[1..], b"=}").map(|at| at + 2)
    } else {
        rest.iter().position(|&b| b == b'}')
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Finds the replacement strings in one word.
fn parse_parts(word: &[u8], syntax: Syntax<'_>, error: &mut Option<String>) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < word.len() {
        if let Some(r) = syntax.replace
            && !r.is_empty()
            && word[i..].starts_with(r)
        {
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Repl(Repl::All(Modifier::None)));
            i += r.len();
            continue;
        }
        if word[i] == b'{'
            && let Some(len) = closing(&word[i + 1..])
            && let Some(repl) = parse_repl(&word[i + 1..i + 1 + len], syntax, error)
        {
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Repl(repl));
            i += len + 2;
            continue;
        }
        lit.push(word[i]);
        i += 1;
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    parts
}

/// The inside of `{...}`, if it is a replacement string: the user's
/// `--rpl` first, then the basic ones, a column name, and `--plus`'s.
fn parse_repl(inner: &[u8], syntax: Syntax<'_>, error: &mut Option<String>) -> Option<Repl> {
    if let Some(extra) = syntax.extra {
        match extra.lookup(inner) {
            Ok(Some(found)) => return Some(found_repl(found)),
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
                return None;
            }
        }
    }
    if let Some(r) = parse_basic(inner, syntax.replace.is_some()) {
        return Some(r);
    }
    // `{name}` and `{name.}` ...: the longest name that fits.
    let mut best: Option<(usize, Repl)> = None;
    for (i, name) in syntax.names.iter().enumerate() {
        if !name.is_empty()
            && inner.starts_with(name)
            && best.as_ref().is_none_or(|(l, _)| name.len() > *l)
            && let Some(m) = Modifier::parse(&inner[name.len()..])
        {
            best = Some((name.len(), Repl::Pos(i as i64 + 1, m)));
        }
    }
    best.map(|(_, r)| r)
}

fn found_repl(found: Found) -> Repl {
    match found {
        Found::Value {
            pos: None,
            transform,
        } => Repl::All(Modifier::Ops(transform)),
        Found::Value {
            pos: Some(n),
            transform,
        } => Repl::Pos(n, Modifier::Ops(transform)),
        Found::Job(j) => Repl::Job(j),
        Found::Filter(f) => Repl::Filter(f),
    }
}

/// The basic replacement strings.
fn parse_basic(inner: &[u8], replaced_braces: bool) -> Option<Repl> {
    match inner {
        b"#" => return Some(Repl::Job(JobValue::Seq)),
        b"%" => return Some(Repl::Job(JobValue::Slot)),
        b"" if replaced_braces => return None,
        _ => {}
    }
    let digits_end = inner
        .iter()
        .enumerate()
        .position(|(i, &b)| !(b.is_ascii_digit() || (i == 0 && b == b'-')))
        .unwrap_or(inner.len());
    let (num, rest) = inner.split_at(digits_end);
    let modifier = Modifier::parse(rest)?;
    if num.is_empty() {
        return Some(Repl::All(modifier));
    }
    let n: i64 = std::str::from_utf8(num).ok()?.parse().ok()?;
    (n != 0).then_some(Repl::Pos(n, modifier))
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Bytes that mean nothing to a shell, anywhere in a word.
fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-./,:+@%".contains(&b)
}

fn is_plain_template(tokens: &[Token]) -> bool {
    let mut first_word = true;
    for token in tokens {
        if let Token::Word(parts) = token {
            for part in parts {
                if let Part::Lit(l) = part
                    && !l
                        .iter()
                        .all(|&b| is_plain_byte(b) || (b == b'=' && !first_word))
                {
                    return false;
                }
            }
            first_word = false;
        }
    }
    true
}

/// Commands a shell must run itself (builtins without a program of the same
/// name, keywords), or that are no command at all.
fn needs_shell_as_command(word: &[u8]) -> bool {
    const SHELL_ONLY: &[&[u8]] = &[
        b"!",
        b".",
        b":",
        b"[[",
        b"]]",
        b"{",
        b"}",
        b"alias",
        b"bg",
        b"break",
        b"case",
        b"cd",
        b"command",
        b"continue",
        b"declare",
        b"do",
        b"done",
        b"elif",
        b"else",
        b"esac",
        b"eval",
        b"exec",
        b"exit",
        b"export",
        b"fc",
        b"fg",
        b"fi",
        b"for",
        b"function",
        b"getopts",
        b"hash",
        b"if",
        b"jobs",
        b"let",
        b"local",
        b"read",
        b"readonly",
        b"return",
        b"select",
        b"set",
        b"shift",
        b"source",
        b"then",
        b"time",
        b"times",
        b"trap",
        b"type",
        b"typeset",
        b"ulimit",
        b"umask",
        b"unalias",
        b"unset",
        b"until",
        b"wait",
        b"while",
    ];
    word.is_empty() || SHELL_ONLY.contains(&word)
}

/// Quotes `v` for a POSIX shell: plain values as they are, anything else in
/// single quotes (a `'` inside becomes `'"'"'`). The empty value is `''`.
pub(crate) fn quote_into(v: &[u8], out: &mut Vec<u8>) {
    if !v.is_empty() && v.iter().all(|&b| is_plain_byte(b)) {
        out.extend_from_slice(v);
        return;
    }
    out.push(b'\'');
    for &b in v {
        if b == b'\'' {
            out.extend_from_slice(b"'\"'\"'");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn words(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|w| b(w)).collect()
    }

    fn render(cmd: &[&str], args: &[&str]) -> Rendered {
        render_with(cmd, args, TemplateOptions::default())
    }

    fn render_with(cmd: &[&str], args: &[&str], opts: TemplateOptions<'_>) -> Rendered {
        let t = Template::new(&words(cmd), opts);
        let args = words(args);
        t.render(JobContext {
            args: &args,
            seq: 7,
            slot: 2,
        })
    }

    fn shell(r: &Rendered) -> String {
        String::from_utf8(r.shell.clone()).unwrap()
    }

    fn argv(r: &Rendered) -> Vec<String> {
        r.argv
            .as_ref()
            .expect("direct")
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect()
    }

    #[test]
    fn modifiers() {
        let cases = [
            (
                "sub.dir/foo.jpg",
                "sub.dir/foo",
                "foo.jpg",
                "sub.dir",
                "foo",
            ),
            ("a.tar.gz", "a.tar", "a.tar.gz", ".", "a.tar"),
            ("sub.dir/bar", "sub.dir/bar", "bar", "sub.dir", "bar"),
            (".hidden", "", ".hidden", ".", ""),
            ("/x", "/x", "x", "/", "x"),
        ];
        for (v, noext, base, dir, basenoext) in cases {
            let v = v.as_bytes();
            assert_eq!(Modifier::NoExt.apply(v), noext.as_bytes(), "{{.}} of {v:?}");
            assert_eq!(Modifier::Base.apply(v), base.as_bytes());
            assert_eq!(Modifier::Dir.apply(v), dir.as_bytes());
            assert_eq!(Modifier::BaseNoExt.apply(v), basenoext.as_bytes());
        }
    }

    #[test]
    fn replacement_strings() {
        let r = render(
            &["echo", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"],
            &["d/f.txt"],
        );
        assert_eq!(
            argv(&r),
            ["echo", "d/f.txt", "d/f", "f.txt", "d", "f", "7", "2"]
        );
        let r = render(
            &["echo", "{2}", "{1.}", "{-1}", "{3}", "{1/}"],
            &["a/x.y", "b"],
        );
        assert_eq!(argv(&r), ["echo", "b", "a/x", "b", "", "x.y"]);
        // Not replacement strings: left alone.
        let r = render(&["echo", "{x}", "{0}"], &["a"]);
        assert_eq!(shell(&r), "echo {x} {0} a");
    }

    #[test]
    fn no_replacement_string_appends_the_arguments() {
        assert_eq!(
            argv(&render(&["gzip", "-9"], &["a b"])),
            ["gzip", "-9", "a b"]
        );
        assert_eq!(shell(&render(&["gzip", "-9"], &["a b"])), "gzip -9 'a b'");
        // {#} counts as a replacement string: nothing appended.
        assert_eq!(shell(&render(&["echo", "{#}"], &["a"])), "echo 7");
    }

    #[test]
    fn hostile_values_are_quoted_and_passed_intact() {
        let hostile = [
            "a b",
            "it's",
            "$(touch pwned)",
            "`touch pwned`",
            "x\ny",
            "-rf",
            "",
            "\"q\"",
            "a;b|c&d>e",
            "~root",
        ];
        for h in hostile {
            let r = render(&["echo", "{}"], &[h]);
            assert_eq!(argv(&r), ["echo", h]);
            let sh = shell(&r);
            if h != "-rf" {
                assert!(sh.starts_with("echo '"), "{sh}");
            }
        }
        assert_eq!(shell(&render(&["echo"], &["it's"])), r#"echo 'it'"'"'s'"#);
    }

    #[test]
    fn shell_syntax_needs_a_shell() {
        for cmd in [
            "echo {} | wc",
            "echo $HOME {}",
            "cd /tmp && ls {}",
            "echo {} > out",
            "FOO=1 env {}",
            "echo 'x' {}",
        ] {
            let r = render(&[cmd], &["a"]);
            assert!(r.argv.is_none(), "{cmd}");
        }
        // Builtins with no program of their own.
        assert!(render(&["cd", "{}"], &["a"]).argv.is_none());
        assert!(render(&["exit", "{}"], &["1"]).argv.is_none());
        // A plain command split over one or several words.
        assert_eq!(
            argv(&render(&["echo a  b"], &["c"])),
            ["echo", "a", "b", "c"]
        );
        assert_eq!(argv(&render(&["env", "A=1"], &["x"])), ["env", "A=1", "x"]);
    }

    #[test]
    fn input_as_command() {
        let r = render(&[], &["echo a  b"]);
        assert_eq!(shell(&r), "echo a  b");
        assert_eq!(argv(&r), ["echo", "a", "b"]);
        let r = render(&[], &["echo $HOME"]);
        assert!(r.argv.is_none());
        assert_eq!(shell(&r), "echo $HOME");
        // A leading replacement string is inserted unquoted.
        assert_eq!(shell(&render(&["{}", "x"], &["echo a"])), "echo a x");
    }

    #[test]
    fn several_arguments() {
        let r = render(&["echo", "[{}]"], &["a", "b c"]);
        assert_eq!(shell(&r), "echo [a 'b c']");
        assert!(r.argv.is_none(), "brackets are glob syntax");
        let r = render(&["echo", "x{}y"], &["a", "b"]);
        assert_eq!(argv(&r), ["echo", "xa", "by"]);
        let opts = TemplateOptions {
            context_replace: true,
            ..Default::default()
        };
        let r = render_with(&["echo", "pre{}post"], &["a", "b c"], opts);
        assert_eq!(shell(&r), "echo preapost pre'b c'post");
        assert_eq!(argv(&r), ["echo", "preapost", "preb cpost"]);
        // No arguments: the word disappears.
        let r = render_with(&["echo", "x", "{}"], &[], opts);
        assert_eq!(argv(&r), ["echo", "x"]);
    }

    #[test]
    fn quote_words_mode() {
        let opts = TemplateOptions {
            quote_words: true,
            ..Default::default()
        };
        let r = render_with(&["printf", "%s|%s\n", "a {} b"], &["x y"], opts);
        assert_eq!(argv(&r), ["printf", "%s|%s\n", "a x y b"]);
        assert_eq!(shell(&r), "printf '%s|%s\n' 'a ''x y'' b'");
    }

    #[test]
    fn dash_i_replaces_braces() {
        let opts = TemplateOptions {
            replace: Some(b"XX"),
            ..Default::default()
        };
        let r = render_with(&["echo", "XX", "{}", "{.}"], &["a.b"], opts);
        assert_eq!(shell(&r), "echo a.b {} a");
    }

    #[test]
    fn unquoted_rendering() {
        let t = Template::new_unquoted(b"out/{1}-{#}", None);
        let args = words(&["a b"]);
        let v = t.render_unquoted(JobContext {
            args: &args,
            seq: 3,
            slot: 1,
        });
        assert_eq!(v, b"out/a b-3");
    }
}
