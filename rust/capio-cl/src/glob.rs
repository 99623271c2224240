//! Glob patterns as CAPIO-CL matches them: POSIX `fnmatch` with only `FNM_NOESCAPE`, so `*` and `?`
//! also match `/`, a leading `.` is ordinary, a backslash is an ordinary character, and `[...]`
//! bracket expressions (ranges, `!`/`^` negation, `[:class:]`) work.

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`
    AnyRun,
    Bracket {
        negated: bool,
        items: Vec<Item>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Char(char),
    Range(char, char),
    Class(Class),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Alnum,
    Alpha,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Xdigit,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    // Consecutive stars match what one does; keeping one keeps backtracking linear.
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::AnyChar);
                    i += 1;
                }
                '[' => match bracket(&chars, i + 1) {
                    Some((token, next)) => {
                        tokens.push(token);
                        i = next;
                    }
                    // fnmatch: a `[` without its `]` is an ordinary character.
                    None => {
                        tokens.push(Token::Literal('['));
                        i += 1;
                    }
                },
                c => {
                    tokens.push(Token::Literal(c));
                    i += 1;
                }
            }
        }
        Glob { tokens }
    }

    /// True when the pattern can match something other than its own text.
    pub fn has_wildcards(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Literal(_)))
    }

    pub fn matches(&self, text: &str) -> bool {
        // Byte offsets into `text`, stepping a whole character at a time: no allocation per match.
        let next_len = |at: usize| text[at..].chars().next().map_or(1, char::len_utf8);
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was and how much text it has swallowed so far: retrying from there
        // with one more character is enough, because a `*` can absorb anything a later one could.
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = text[t..].chars().next() {
            match self.tokens.get(p) {
                Some(Token::AnyRun) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(token) if token.matches(c) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, st)) => {
                    let st = st + next_len(st);
                    star = Some((sp, st));
                    p = sp + 1;
                    t = st;
                }
                None => return false,
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::AnyRun)
    }
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => true,
            Token::AnyRun => unreachable!("`*` is handled by the matcher"),
            Token::Bracket { negated, items } => items.iter().any(|i| i.matches(c)) != *negated,
        }
    }
}

impl Item {
    fn matches(&self, c: char) -> bool {
        match *self {
            Item::Char(x) => x == c,
            Item::Range(lo, hi) => lo <= c && c <= hi,
            Item::Class(class) => class.matches(c),
        }
    }
}

impl Class {
    fn named(name: &str) -> Option<Class> {
        Some(match name {
            "alnum" => Class::Alnum,
            "alpha" => Class::Alpha,
            "blank" => Class::Blank,
            "cntrl" => Class::Cntrl,
            "digit" => Class::Digit,
            "graph" => Class::Graph,
            "lower" => Class::Lower,
            "print" => Class::Print,
            "punct" => Class::Punct,
            "space" => Class::Space,
            "upper" => Class::Upper,
            "xdigit" => Class::Xdigit,
            _ => return None,
        })
    }

    fn matches(self, c: char) -> bool {
        match self {
            Class::Alnum => c.is_alphanumeric(),
            Class::Alpha => c.is_alphabetic(),
            Class::Blank => c == ' ' || c == '\t',
            Class::Cntrl => c.is_control(),
            Class::Digit => c.is_ascii_digit(),
            Class::Graph => !c.is_control() && !c.is_whitespace(),
            Class::Lower => c.is_lowercase(),
            Class::Print => !c.is_control(),
            Class::Punct => c.is_ascii_punctuation(),
            Class::Space => c.is_whitespace(),
            Class::Upper => c.is_uppercase(),
            Class::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

/// Parses a bracket expression whose body starts at `start` (just after `[`). Returns the token and
/// the index after the closing `]`, or `None` when there is no closing `]`.
fn bracket(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        // A `]` right after `[` or `[!` is a member, not the end.
        if c == ']' && !first {
            return Some((Token::Bracket { negated, items }, i + 1));
        }
        first = false;
        if c == '['
            && chars.get(i + 1) == Some(&':')
            && let Some(end) = class_end(chars, i + 2)
        {
            let name: String = chars[i + 2..end].iter().collect();
            // An unknown class name makes the whole pattern unmatchable in glibc; a class that
            // matches nothing has the same effect.
            items.push(match Class::named(&name) {
                Some(class) => Item::Class(class),
                None => Item::Range('\u{1}', '\u{0}'),
            });
            i = end + 2;
            continue;
        }
        if chars.get(i + 1) == Some(&'-')
            && let Some(&hi) = chars.get(i + 2)
            && hi != ']'
        {
            items.push(Item::Range(c, hi));
            i += 3;
            continue;
        }
        items.push(Item::Char(c));
        i += 1;
    }
}

/// The index of the `:` that closes a `[:name:]` whose name starts at `from`.
fn class_end(chars: &[char], from: usize) -> Option<usize> {
    (from..chars.len().saturating_sub(1))
        .find(|&j| chars[j] == ':' && chars[j + 1] == ']')
        .filter(|&j| chars[from..j].iter().all(char::is_ascii_lowercase))
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn star_and_question_mark_cross_slashes() {
        assert!(m("/a/*", "/a/b"));
        assert!(m("/a/*", "/a/b/"));
        assert!(m("/a/*", "/a/b/c"));
        assert!(m("*/test_data.bin", "/x/y/z/test_data.bin"));
        assert!(m("/a?b", "/a/b"));
        assert!(!m("/a/*", "/a"));
        assert!(m("/a/*", "/a/"));
    }

    #[test]
    fn literals_match_only_themselves() {
        assert!(m("/d/out.dat", "/d/out.dat"));
        assert!(!m("/d/out.dat", "/d/out.dat2"));
        assert!(!m("dir", "dir/x"));
        assert!(!Glob::new("/d/out.dat").has_wildcards());
    }

    #[test]
    fn brackets() {
        for ok in ["test.abc", "test.cab", "test.ccc"] {
            assert!(m("test.[abc][abc][abc]", ok), "{ok}");
        }
        assert!(!m("test.[abc][abc][abc]", "test.dat"));
        assert!(m("f[0-9].dat", "f7.dat"));
        assert!(!m("f[!0-9].dat", "f7.dat"));
        assert!(m("f[^0-9].dat", "fx.dat"));
        assert!(m("f[]x]", "f]"));
        assert!(m("f[!]]", "fa"));
        assert!(!m("f[!]]", "f]"));
        assert!(m("f[a-]", "f-"));
        assert!(m("f[[:digit:]]", "f4"));
        assert!(!m("f[[:digit:]]", "fx"));
        assert!(!m("f[[:nope:]]", "fx"));
    }

    #[test]
    fn unclosed_bracket_and_backslash_are_ordinary() {
        assert!(m("a[b", "a[b"));
        assert!(!Glob::new("a[b").has_wildcards());
        assert!(m("a\\*", "a\\xyz"));
        assert!(!m("a\\*", "a*"));
    }

    #[test]
    fn dots_are_not_special_and_stars_backtrack() {
        assert!(m("*", ".hidden"));
        assert!(m("*.tmp", "/x/.y.tmp"));
        assert!(m("*~", "notes.txt~"));
        assert!(m("a*b*c", "axxbyybzzc"));
        assert!(!m("a*b*c", "axxbyyb"));
        assert!(m("**x", "abx"));
        assert!(m("", ""));
        assert!(m("/d/?.txt", "/d/é.txt"));
        assert!(m("/d/*é*", "/d/aébé"));
        assert!(!m("/d/?.txt", "/d/éé.txt"));
        assert!(!m("", "a"));
    }
}
