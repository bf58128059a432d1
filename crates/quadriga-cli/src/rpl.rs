//! Replacement strings beyond `{} {.} {/} {//} {/.} {#} {%}`: GNU parallel's
//! `--plus` set, `--rpl` (user-defined ones) and `{= expression =}`.
//!
//! GNU parallel defines these as Perl code run on `$_`. Perl is not
//! embedded here: an expression is parsed into a small language that covers
//! what replacement strings are made of, and anything else is refused with
//! an error that says what is supported:
//!
//! - statements separated by `;`;
//! - `s/REGEX/TEXT/` with flags `g` and `i`, any one-byte delimiter (`s:a:b:`);
//!   in TEXT, `$1`..`$9`, `${N}` and `$&`; the regular expression is Rust's
//!   (Perl's without look-around or back-references);
//! - `A || B`: B only if substitution A matched nothing;
//! - `$_ = uc($_)`, `lc`, `ucfirst`, `lcfirst`; `$_ = "text"` or `''`;
//! - the whole-job values `$_ = $job->seq()` / `seq()`, `$job->slot()` /
//!   `slot()`, and `total_jobs()` (GNU's optional leading `1` is accepted);
//! - a tag with a group, such as `{:(\d+)}`, is a pattern: `$$1` in the
//!   expression is what the group matched.

use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};

/// A value computed once per job, not per argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobValue {
    /// `{#}`
    Seq,
    /// `{%}`
    Slot,
    /// `{##}`: the number of jobs.
    Total,
    /// `{0#}`: the sequence number, zero-padded to the width of the total.
    SeqPadded,
    /// `{0%}`: the slot, zero-padded to the width of the number of slots.
    SlotPadded,
}

/// One piece of replacement text: bytes, or what a group matched.
#[derive(Debug, Clone)]
enum TextPart {
    Lit(Vec<u8>),
    Group(usize),
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Upper,
    Lower,
    UpperFirst,
    LowerFirst,
}

/// One step of a transformation.
#[derive(Debug, Clone)]
enum Op {
    /// `s/re/text/g`.
    Subst {
        re: Regex,
        text: Vec<TextPart>,
        global: bool,
    },
    /// `A || B || ...`: the first that matches (the last runs regardless).
    Or(Vec<Op>),
    Case(Case),
    Set(Vec<u8>),
    /// `{:-str}`: `str` if the value is empty.
    Default(Vec<u8>),
    /// `{:n}` / `{:p:l}`: bytes `p..p+l`.
    Substr(usize, Option<usize>),
    /// `{#re}` `{##re}` `{%re}` `{%%re}`: the shortest or longest prefix or
    /// suffix matching `re` removed.
    Strip {
        re: Regex,
        suffix: bool,
        longest: bool,
    },
    /// `{^re}` `{^^re}` `{,re}` `{,,re}`: what matches (at the start, or
    /// everywhere) in upper or lower case.
    CaseOf {
        re: Regex,
        upper: bool,
    },
}

impl Op {
    /// Applies the step; whether it matched (for `||`).
    fn apply(&self, v: &mut Vec<u8>) -> bool {
        match self {
            Op::Subst { re, text, global } => {
                let mut out = Vec::with_capacity(v.len());
                let mut last = 0;
                let mut matched = false;
                for caps in re.captures_iter(v) {
                    let m = caps.get(0).expect("group 0 always matches");
                    out.extend_from_slice(&v[last..m.start()]);
                    for part in text {
                        match part {
                            TextPart::Lit(l) => out.extend_from_slice(l),
                            TextPart::Group(g) => {
                                if let Some(g) = caps.get(*g) {
                                    out.extend_from_slice(g.as_bytes());
                                }
                            }
                        }
                    }
                    last = m.end();
                    matched = true;
                    if !global {
                        break;
                    }
                }
                if matched {
                    out.extend_from_slice(&v[last..]);
                    *v = out;
                }
                matched
            }
            Op::Or(alts) => alts.iter().any(|op| op.apply(v)),
            Op::Case(c) => {
                match c {
                    Case::Upper => v.make_ascii_uppercase(),
                    Case::Lower => v.make_ascii_lowercase(),
                    Case::UpperFirst => {
                        if let Some(b) = v.first_mut() {
                            b.make_ascii_uppercase();
                        }
                    }
                    Case::LowerFirst => {
                        if let Some(b) = v.first_mut() {
                            b.make_ascii_lowercase();
                        }
                    }
                }
                true
            }
            Op::Set(s) => {
                *v = s.clone();
                true
            }
            Op::Default(s) => {
                if v.is_empty() {
                    *v = s.clone();
                }
                true
            }
            Op::Substr(pos, len) => {
                let start = (*pos).min(v.len());
                let end = len.map_or(v.len(), |l| (start + l).min(v.len()));
                *v = v[start..end].to_vec();
                true
            }
            Op::Strip {
                re,
                suffix,
                longest,
            } => {
                let n = v.len();
                let fits = |k: usize| {
                    let part = if *suffix { &v[n - k..] } else { &v[..k] };
                    re.is_match(part)
                };
                let found = if *longest {
                    (0..=n).rev().find(|&k| fits(k))
                } else {
                    (0..=n).find(|&k| fits(k))
                };
                match found {
                    Some(k) => {
                        *v = if *suffix {
                            v[..n - k].to_vec()
                        } else {
                            v[k..].to_vec()
                        };
                        true
                    }
                    None => false,
                }
            }
            Op::CaseOf { re, upper } => {
                let ranges: Vec<_> = re.find_iter(v).map(|m| m.range()).collect();
                for r in &ranges {
                    if *upper {
                        v[r.clone()].make_ascii_uppercase();
                    } else {
                        v[r.clone()].make_ascii_lowercase();
                    }
                }
                !ranges.is_empty()
            }
        }
    }
}

/// What a value becomes: steps applied in order.
#[derive(Debug, Clone)]
pub(crate) struct Transform(Vec<Op>);

impl Transform {
    pub(crate) fn apply(&self, v: &[u8]) -> Vec<u8> {
        let mut v = v.to_vec();
        for op in &self.0 {
            op.apply(&mut v);
        }
        v
    }
}

/// What the inside of a `{...}` stands for, when it is not a basic one.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// A transformation of one argument (`pos`), or of each (`None`).
    Value {
        pos: Option<i64>,
        transform: Arc<Transform>,
    },
    Job(JobValue),
    /// `{choose_k}`, `{uniq}`: all the arguments, as `{}`, and a rule that
    /// skips some jobs.
    Filter(JobFilter),
}

/// Which jobs `{choose_k}` and `{uniq}` skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobFilter {
    /// Unless each argument sorts (bytewise) after the one before it.
    ChooseK,
    /// If two arguments are equal.
    Uniq,
}

impl JobFilter {
    /// Whether a job with these arguments runs.
    pub(crate) fn keeps(self, args: &[Vec<u8>]) -> bool {
        match self {
            JobFilter::ChooseK => args.windows(2).all(|w| w[0] < w[1]),
            JobFilter::Uniq => {
                let mut sorted: Vec<&Vec<u8>> = args.iter().collect();
                sorted.sort_unstable();
                sorted.windows(2).all(|w| w[0] != w[1])
            }
        }
    }
}

/// A user's `--rpl`.
#[derive(Debug, Clone)]
struct UserRpl {
    /// The tag's inside as a pattern, anchored.
    pattern: Regex,
    /// The expression, with `$$N` still in it.
    expr: String,
}

/// The replacement strings in force beyond the basic ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replacements {
    plus: bool,
    user: Vec<UserRpl>,
}

fn regex(s: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(s)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| format!("bad regular expression {s:?}: {e}"))
}

fn anchored(s: &str) -> Result<Regex, String> {
    regex(&format!("^(?:{s})$"), false)
}

fn subst(re: &str, text: &str, global: bool) -> Op {
    Op::Subst {
        re: Regex::new(re).expect("a fixed regular expression"),
        text: parse_text(text.as_bytes()).expect("fixed text"),
        global,
    }
}

/// The `--plus` transformations with a fixed name.
fn plus_fixed(name: &[u8]) -> Option<Vec<Op>> {
    // The extension parts: `.x` with neither `/` nor `.` in x.
    let e2 = r"\.[^/.]+\.[^/.]+$";
    let e3 = r"\.[^/.]+\.[^/.]+\.[^/.]+$";
    let all = || subst(r"(?s)^.*$", "", false);
    let base = || subst(r"(?s)^.*/", "", false);
    Some(match name {
        // The directory part, or nothing.
        b"+/" => vec![Op::Or(vec![subst(r"/[^/]*$", "", false), all()])],
        // What follows the last `.`, or nothing.
        b"+." => vec![Op::Or(vec![subst(r"(?s)^.*\.", "", false), all()])],
        b"+.." => vec![Op::Or(vec![
            subst(r"(?s)^.*\.([^/.]+\.[^/.]+)$", "$1", false),
            all(),
        ])],
        b"+..." => vec![Op::Or(vec![
            subst(r"(?s)^.*\.([^/.]+\.[^/.]+\.[^/.]+)$", "$1", false),
            all(),
        ])],
        b".." => vec![subst(e2, "", false)],
        b"..." => vec![subst(e3, "", false)],
        b"/.." => vec![base(), subst(e2, "", false)],
        b"/..." => vec![base(), subst(e3, "", false)],
        _ => return None,
    })
}

/// The `--plus` transformations with an argument, like bash's `${x:...}`.
fn plus_dynamic(inner: &[u8]) -> Result<Option<Vec<Op>>, String> {
    let Ok(s) = std::str::from_utf8(inner) else {
        return Ok(None);
    };
    let op = if let Some(d) = s.strip_prefix(":-") {
        Op::Default(d.as_bytes().to_vec())
    } else if let Some(rest) = s.strip_prefix(':')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b':')
    {
        let mut it = rest.splitn(2, ':');
        let pos: usize = it.next().unwrap_or("").parse().map_err(|_| bad(s))?;
        let len = it.next().map(str::parse).transpose().map_err(|_| bad(s))?;
        Op::Substr(pos, len)
    } else if let Some(re) = s.strip_prefix("##").filter(|r| !r.is_empty()) {
        strip(re, false, true)?
    } else if let Some(re) = s.strip_prefix('#').filter(|r| !r.is_empty()) {
        strip(re, false, false)?
    } else if let Some(re) = s.strip_prefix("%%").filter(|r| !r.is_empty()) {
        strip(re, true, true)?
    } else if let Some(re) = s.strip_prefix('%').filter(|r| !r.is_empty()) {
        strip(re, true, false)?
    } else if let Some(rest) = s.strip_prefix("//").or_else(|| s.strip_prefix('/'))
        && let Some((re, text)) = rest.split_once('/')
        && !re.is_empty()
    {
        let global = s.starts_with("//");
        Op::Subst {
            re: regex(re, false)?,
            text: vec![TextPart::Lit(text.as_bytes().to_vec())],
            global,
        }
    } else if let Some((prefix, upper)) = [("^^", true), ("^", true), (",,", false), (",", false)]
        .into_iter()
        .find(|(p, _)| s.starts_with(p) && s.len() > p.len())
    {
        let re = &s[prefix.len()..];
        let re = if prefix.len() == 1 {
            format!("^(?:{re})")
        } else {
            re.to_string()
        };
        Op::CaseOf {
            re: regex(&re, false)?,
            upper,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(vec![op]))
}

fn bad(s: &str) -> String {
    format!("bad replacement string {{{s}}}")
}

fn strip(re: &str, suffix: bool, longest: bool) -> Result<Op, String> {
    Ok(Op::Strip {
        re: anchored(re)?,
        suffix,
        longest,
    })
}

impl Replacements {
    /// `--plus` and the `--rpl` definitions (`'TAG EXPRESSION'`).
    pub(crate) fn new(plus: bool, rpls: &[String]) -> Result<Self, String> {
        let mut user = Vec::new();
        for r in rpls {
            let r = r.trim_start();
            let (tag, expr) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
            let inner = tag
                .strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .ok_or_else(|| format!("--rpl {r:?}: the tag must be {{...}}"))?;
            let pattern = if inner.contains('(') {
                anchored(inner)?
            } else {
                anchored(&regex::escape(inner))?
            };
            let expr = expr.trim().to_string();
            // Check it now (each group as `1`), not at the first job.
            let ones = vec!["1".to_string(); pattern.captures_len()];
            parse_expr(&expand_groups(&expr, &ones)).map_err(|e| format!("--rpl {r:?}: {e}"))?;
            user.push(UserRpl { pattern, expr });
        }
        // Later definitions win, as in GNU parallel.
        user.reverse();
        Ok(Replacements { plus, user })
    }

    /// What `{inner}` stands for, if anything: user definitions first,
    /// then `--plus`'s; each also with a position in front (`{2+.}`).
    pub(crate) fn lookup(&self, inner: &[u8]) -> Result<Option<Found>, String> {
        if let Some(f) = self.lookup_unpositioned(inner)? {
            return Ok(Some(f));
        }
        let digits = inner
            .iter()
            .enumerate()
            .position(|(i, &b)| !(b.is_ascii_digit() || (i == 0 && b == b'-')))
            .unwrap_or(inner.len());
        if digits == 0 || digits == inner.len() {
            return Ok(None);
        }
        let Some(n) = std::str::from_utf8(&inner[..digits])
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|&n| n != 0)
        else {
            return Ok(None);
        };
        Ok(match self.lookup_unpositioned(&inner[digits..])? {
            Some(Found::Value {
                pos: None,
                transform,
            }) => Some(Found::Value {
                pos: Some(n),
                transform,
            }),
            _ => None,
        })
    }

    fn lookup_unpositioned(&self, inner: &[u8]) -> Result<Option<Found>, String> {
        for u in &self.user {
            if let Some(caps) = u.pattern.captures(inner) {
                let groups: Vec<String> = (1..caps.len())
                    .map(|i| {
                        caps.get(i)
                            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                            .unwrap_or_default()
                    })
                    .collect();
                return parse_expr(&expand_groups(&u.expr, &groups)).map(Some);
            }
        }
        if inner.starts_with(b"=") && inner.ends_with(b"=") && inner.len() >= 2 {
            let expr = String::from_utf8_lossy(&inner[1..inner.len() - 1]).into_owned();
            return parse_expr(&expr).map(Some);
        }
        if !self.plus {
            return Ok(None);
        }
        let job = match inner {
            b"##" => Some(JobValue::Total),
            b"0#" => Some(JobValue::SeqPadded),
            b"0%" => Some(JobValue::SlotPadded),
            b"slot" => Some(JobValue::Slot),
            _ => None,
        };
        if let Some(j) = job {
            return Ok(Some(Found::Job(j)));
        }
        match inner {
            b"choose_k" => return Ok(Some(Found::Filter(JobFilter::ChooseK))),
            b"uniq" => return Ok(Some(Found::Filter(JobFilter::Uniq))),
            _ => {}
        }
        let ops = match plus_fixed(inner) {
            Some(ops) => Some(ops),
            None => plus_dynamic(inner)?,
        };
        Ok(ops.map(|ops| Found::Value {
            pos: None,
            transform: Arc::new(Transform(ops)),
        }))
    }
}

/// `$$N` in a `--rpl` expression: what group N of the tag matched.
fn expand_groups(expr: &str, groups: &[String]) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find("$$") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            out.push_str("$$");
            rest = after;
            continue;
        }
        let n: usize = after[..digits].parse().unwrap_or(0);
        if let Some(g) = n.checked_sub(1).and_then(|i| groups.get(i)) {
            out.push_str(g);
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

const SUPPORTED: &str = "supported: s/REGEX/TEXT/ (flags g, i), A || B, \
$_=uc($_) (lc, ucfirst, lcfirst), $_=\"text\", $_=$job->seq(), $_=$job->slot(), \
$_=total_jobs(), separated by ;";

/// Parses an expression in the supported subset.
fn parse_expr(expr: &str) -> Result<Found, String> {
    let mut expr = expr.trim();
    // GNU's `1` in front of whole-job expressions.
    if let Some(rest) = expr.strip_prefix('1')
        && rest.starts_with(char::is_whitespace)
    {
        expr = rest.trim_start();
    }
    let compact: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = compact.trim_end_matches(';');
    let job = match compact {
        "$_=$job->seq()" | "$_=seq()" => Some(JobValue::Seq),
        "$_=$job->slot()" | "$_=slot()" => Some(JobValue::Slot),
        "$_=total_jobs()" => Some(JobValue::Total),
        _ => None,
    };
    if let Some(j) = job {
        return Ok(Found::Job(j));
    }
    let mut ops = Vec::new();
    let mut rest = expr;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix(';') {
            rest = r;
            continue;
        }
        let mut alts = Vec::new();
        loop {
            let (op, r) = parse_statement(rest)?;
            alts.push(op);
            rest = r.trim_start();
            match rest.strip_prefix("||") {
                Some(r) => rest = r.trim_start(),
                None => break,
            }
        }
        ops.push(if alts.len() == 1 {
            alts.pop().expect("one")
        } else {
            Op::Or(alts)
        });
        rest = rest.trim_start();
        if !rest.is_empty() && !rest.starts_with(';') {
            return Err(format!("cannot read {rest:?} ({SUPPORTED})"));
        }
    }
    Ok(Found::Value {
        pos: None,
        transform: Arc::new(Transform(ops)),
    })
}

/// One statement from the start of `s`; what follows it.
fn parse_statement(s: &str) -> Result<(Op, &str), String> {
    if let Some(r) = s.strip_prefix('s')
        && let Some(d) = r.chars().next()
        && !d.is_alphanumeric()
        && !d.is_whitespace()
        && d != '_'
    {
        return parse_subst(&r[d.len_utf8()..], d);
    }
    if let Some(r) = s.strip_prefix("$_") {
        let r = r.trim_start();
        let Some(r) = r.strip_prefix('=') else {
            return Err(format!("cannot read {s:?} ({SUPPORTED})"));
        };
        let r = r.trim_start();
        for (name, case) in [
            ("ucfirst", Case::UpperFirst),
            ("lcfirst", Case::LowerFirst),
            ("uc", Case::Upper),
            ("lc", Case::Lower),
        ] {
            if let Some(after) = r.strip_prefix(name) {
                let after = after.trim_start();
                for arg in ["($_)", "$_", "()"] {
                    if let Some(end) = after.strip_prefix(arg) {
                        return Ok((Op::Case(case), end));
                    }
                }
            }
        }
        if let Some(q) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let body = &r[1..];
            if let Some(end) = body.find(q) {
                let text = &body[..end];
                if q == '"' && (text.contains('$') || text.contains('@') || text.contains('\\')) {
                    return Err(format!(
                        "{text:?}: interpolation in \"...\" is not supported ({SUPPORTED})"
                    ));
                }
                return Ok((Op::Set(text.as_bytes().to_vec()), &body[end + 1..]));
            }
        }
    }
    Err(format!(
        "cannot read {:?} ({SUPPORTED})",
        s.split(';').next().unwrap_or(s).trim()
    ))
}

/// `s` + delimiter already taken: `REGEX d TEXT d FLAGS`.
fn parse_subst(s: &str, d: char) -> Result<(Op, &str), String> {
    let (re, rest) = until_delim(s, d).ok_or_else(|| format!("s{d}...: no end"))?;
    let (text, rest) = until_delim(rest, d).ok_or_else(|| format!("s{d}...: no end"))?;
    let flags_len = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let (flags, rest) = rest.split_at(flags_len);
    let mut global = false;
    let mut ci = false;
    for f in flags.chars() {
        match f {
            'g' => global = true,
            'i' => ci = true,
            _ => {
                return Err(format!(
                    "s{d}{re}{d}{text}{d}{flags}: flag {f} is not supported (only g and i)"
                ));
            }
        }
    }
    let text = parse_text(text.as_bytes()).map_err(|e| format!("s{d}{re}{d}{text}{d}: {e}"))?;
    Ok((
        Op::Subst {
            re: regex(&re, ci)?,
            text,
            global,
        },
        rest,
    ))
}

/// Text up to an unescaped `d` (a `\d` becomes `d`), and what follows it.
fn until_delim(s: &str, d: char) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, n)) if n == d => out.push(n),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else if c == d {
            return Some((out, &s[i + c.len_utf8()..]));
        } else {
            out.push(c);
        }
    }
    None
}

/// Replacement text: `$N`, `${N}`, `$&`, and the escapes `\n` `\t` `\\` `\$`.
fn parse_text(t: &[u8]) -> Result<Vec<TextPart>, String> {
    let mut parts = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    let flush = |lit: &mut Vec<u8>, parts: &mut Vec<TextPart>| {
        if !lit.is_empty() {
            parts.push(TextPart::Lit(std::mem::take(lit)));
        }
    };
    while i < t.len() {
        match t[i] {
            b'\\' if i + 1 < t.len() => {
                lit.push(match t[i + 1] {
                    b'n' => b'\n',
                    b't' => b'\t',
                    other => other,
                });
                i += 2;
            }
            b'$' => {
                let rest = &t[i + 1..];
                if rest.first() == Some(&b'&') {
                    flush(&mut lit, &mut parts);
                    parts.push(TextPart::Group(0));
                    i += 2;
                    continue;
                }
                let (digits, skip) = if rest.first() == Some(&b'{') {
                    let end = rest.iter().position(|&b| b == b'}').ok_or("${ without }")?;
                    (&rest[1..end], end + 1)
                } else {
                    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    (&rest[..n], n)
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err("only $1..$9, ${N} and $& may be used in the text".into());
                }
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or("bad group number")?;
                flush(&mut lit, &mut parts);
                parts.push(TextPart::Group(n));
                i += 1 + skip;
            }
            b => {
                lit.push(b);
                i += 1;
            }
        }
    }
    flush(&mut lit, &mut parts);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(r: &Replacements, inner: &str, v: &str) -> String {
        match r.lookup(inner.as_bytes()).unwrap() {
            Some(Found::Value { transform, .. }) => {
                String::from_utf8(transform.apply(v.as_bytes())).unwrap()
            }
            other => panic!("{inner}: {other:?}"),
        }
    }

    #[test]
    fn plus_fixed_strings_as_gnu() {
        let r = Replacements::new(true, &[]).unwrap();
        let v = "dir.x/sub/a.b.c.d";
        // GNU parallel 20221122's answers.
        let want = [
            ("+/", "dir.x/sub"),
            ("+.", "d"),
            ("+..", "c.d"),
            ("+...", "b.c.d"),
            ("..", "dir.x/sub/a.b"),
            ("...", "dir.x/sub/a"),
            ("/..", "a.b"),
            ("/...", "a"),
        ];
        for (inner, out) in want {
            assert_eq!(apply(&r, inner, v), out, "{{{inner}}}");
        }
        assert_eq!(apply(&r, "+/", "plain"), "");
        assert_eq!(apply(&r, "+.", "plain"), "");
        assert!(matches!(
            r.lookup(b"##").unwrap(),
            Some(Found::Job(JobValue::Total))
        ));
        assert!(
            Replacements::new(false, &[])
                .unwrap()
                .lookup(b"+.")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn plus_dynamic_strings_as_gnu() {
        let r = Replacements::new(true, &[]).unwrap();
        let want = [
            (":2", "cad"),
            (":1:3", "bca"),
            ("#b", "abcad"),
            ("#a", "bcad"),
            ("%d", "abca"),
            ("/a/X", "Xbcad"),
            ("//a/X", "XbcXd"),
            ("^a", "Abcad"),
            ("^^a", "AbcAd"),
            (",A", "abcad"),
            (":-x", "abcad"),
        ];
        for (inner, out) in want {
            assert_eq!(apply(&r, inner, "abcad"), out, "{{{inner}}}");
        }
        assert_eq!(apply(&r, ":-x", ""), "x");
        assert_eq!(apply(&r, "#a.*?b", "aXbYb"), "Yb");
        assert_eq!(apply(&r, "##a.*b", "aXbYbZ"), "Z");
        assert_eq!(apply(&r, "%.gz", "f.tar.gz"), "f.tar");
        assert_eq!(apply(&r, "%%\\..*", "f.tar.gz"), "f");
        // With a position.
        match r.lookup(b"2+.").unwrap() {
            Some(Found::Value { pos: Some(2), .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filters() {
        let a = |v: &[&str]| v.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        assert!(JobFilter::ChooseK.keeps(&a(&["A", "B", "C"])));
        assert!(!JobFilter::ChooseK.keeps(&a(&["A", "C", "B"])));
        assert!(!JobFilter::ChooseK.keeps(&a(&["A", "A"])));
        assert!(JobFilter::Uniq.keeps(&a(&["B", "A"])));
        assert!(!JobFilter::Uniq.keeps(&a(&["B", "A", "B"])));
    }

    #[test]
    fn user_definitions() {
        let r = Replacements::new(
            false,
            &[
                "{..} s:\\.[^/.]+$::; s:\\.[^/.]+$::".into(),
                "{up} $_ = uc($_)".into(),
                "{dom} s:.*@:: || s:.*::".into(),
                "{:(\\d+)} s/^.{$$1}//".into(),
                "{nr} 1 $_=$job->seq()".into(),
            ],
        )
        .unwrap();
        assert_eq!(apply(&r, "..", "a/b.tar.gz"), "a/b");
        assert_eq!(apply(&r, "up", "abc"), "ABC");
        assert_eq!(apply(&r, "dom", "me@x.org"), "x.org");
        assert_eq!(apply(&r, "dom", "nobody"), "");
        assert_eq!(apply(&r, ":2", "abcd"), "cd");
        assert!(matches!(
            r.lookup(b"nr").unwrap(),
            Some(Found::Job(JobValue::Seq))
        ));
        assert!(r.lookup(b"other").unwrap().is_none());
        // Groups in the replacement text, flags.
        let r = Replacements::new(false, &["{sw} s/(\\w+)-(\\w+)/$2-${1}/gi".into()]).unwrap();
        assert_eq!(apply(&r, "sw", "a-b c-d"), "b-a d-c");
        // Inline expressions.
        let r = Replacements::new(false, &[]).unwrap();
        assert_eq!(apply(&r, "= s/a/b/g =", "banana"), "bbnbnb");
    }

    #[test]
    fn unsupported_perl_is_refused() {
        for bad in [
            "{x} $_ = reverse($_)",
            "{x} s/a/b/e",
            "{x} $_ = \"$HOME\"",
            "{x} tr/a-z/A-Z/",
            "{x} s/a/b",
            "x s/a/b/",
            "{x} s/(/b/",
        ] {
            let e = Replacements::new(false, &[bad.into()]).unwrap_err();
            assert!(e.contains("--rpl"), "{bad}: {e}");
        }
    }

    /// A small seeded generator (no dependency): xorshift.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, m: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % m as u64) as usize
        }

        fn text(&mut self, alphabet: &[u8], max: usize) -> String {
            let n = self.below(max + 1);
            (0..n)
                .map(|_| alphabet[self.below(alphabet.len())] as char)
                .collect()
        }
    }

    #[test]
    fn random_expressions_and_strings_never_panic() {
        // Expressions and `{...}` insides come from the command line; values
        // from the input. Neither may crash the runner, whatever they hold.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let syntax = b"s/:;|$_=()uc lc 1ga.*+?[]{}\\^%#,-0123456789'\"xyz";
        let plus = Replacements::new(true, &[]).unwrap();
        for _ in 0..3000 {
            let expr = rng.text(syntax, 24);
            let _ = parse_expr(&expr);
            let _ = Replacements::new(false, &[format!("{{t}} {expr}")]);
            let inner = rng.text(syntax, 10);
            let value = rng.text(b"ab./-_x\n ", 16);
            if let Ok(Some(Found::Value { transform, .. })) = plus.lookup(inner.as_bytes()) {
                let _ = transform.apply(value.as_bytes());
            }
        }
    }
}
