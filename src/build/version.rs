//! Runtime versions: what a repository pins (`.nvmrc`, `engines`, `requires-python`, `go.mod`'s
//! `go` line, ...) matched against what the configured images offer (`[build.versions]`).
//!
//! A pin is read as npm, PEP 440, Bundler and Composer write them, numbers only: a bare version
//! (`20`, `20.11.1`, `v20`), wildcards (`20.x`, `3.*`), comparators (`>=18`, `<21`, `~=3.11`,
//! `~> 3.2`, `^8.1`, `~1.2`), comma- or space-separated (all must hold), alternatives with
//! `||`, and the words `*`, `latest`, `stable`, `node`, `lts/*` (any version). Of the
//! offered versions that meet a pin, the default (the first) is taken, else the newest. An
//! offered version is a line: `20` stands for every `20.x`, so it satisfies a bare pin of
//! `20.11.1` (the plan says the patch level is the image's) and `>=18`, but not `20.5` when
//! `<20.5` is asked. A pin no offered version satisfies is an error naming both, never a
//! quiet fallback.

use serde::Serialize;

/// A version decision: the tool, the version chosen, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Version {
    pub tool: String,
    pub version: String,
    /// The file (and line or key) that pinned it, or how the default was chosen.
    pub source: String,
}

/// A pin read from the repository: its text and where it was found.
#[derive(Debug, Clone)]
pub struct Pin {
    pub text: String,
    pub source: String,
}

impl Pin {
    pub fn new(text: &str, source: impl Into<String>) -> Self {
        Self {
            text: text.trim().to_string(),
            source: source.into(),
        }
    }
}

/// No offered version satisfies a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub tool: String,
    pub pinned: String,
    pub source: String,
    pub offered: Vec<String>,
    /// What was wrong with the pin itself, when it could not be read.
    pub unreadable: bool,
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let offered = if self.offered.is_empty() {
            "none".to_string()
        } else {
            self.offered.join(", ")
        };
        if self.unreadable {
            write!(
                f,
                "{} version '{}' ({}) is not a version shard can read; the configured images offer {offered}",
                self.tool, self.pinned, self.source
            )
        } else {
            write!(
                f,
                "{} {} is pinned in {}, but the configured images offer only {offered} \
                 ([build.versions] {}); pin one of those, or add an image that provides it",
                self.tool, self.pinned, self.source, self.tool
            )
        }
    }
}

/// Chooses the version of `tool` from `offered` (first = the default) for `pin`; `minimum`
/// reads a bare pin as "this or newer" (Go's `go` line).
pub fn resolve(
    tool: &str,
    pin: Option<&Pin>,
    offered: &[String],
    minimum: bool,
) -> Result<Version, Unmet> {
    let unmet = |pin: &Pin, unreadable| Unmet {
        tool: tool.into(),
        pinned: pin.text.clone(),
        source: pin.source.clone(),
        offered: offered.to_vec(),
        unreadable,
    };
    let Some(pin) = pin else {
        return match offered.first() {
            Some(first) => Ok(Version {
                tool: tool.into(),
                version: first.clone(),
                source: format!("default (the first of [build.versions] {tool})"),
            }),
            None => Err(Unmet {
                tool: tool.into(),
                pinned: "any version".into(),
                source: "the detection".into(),
                offered: Vec::new(),
                unreadable: false,
            }),
        };
    };
    let Some(alternatives) = parse(&pin.text, minimum) else {
        return Err(unmet(pin, true));
    };
    // The default when it meets the pin, else the newest offered version that does.
    let meets = |v: &String| {
        numbers(v).is_some_and(|n| {
            alternatives
                .iter()
                .any(|all| all.iter().all(|c| c.holds(&n)))
        })
    };
    let chosen = offered.first().filter(|v| meets(v)).cloned().or_else(|| {
        offered
            .iter()
            .filter(|v| meets(v))
            .max_by_key(|v| numbers(v))
            .cloned()
    });
    let Some(version) = chosen else {
        return Err(unmet(pin, false));
    };
    let exact = numbers(pin.text.trim_start_matches(['v', '='])).filter(|_| !minimum);
    let source = match exact {
        Some(n) if n.len() > numbers(&version).map_or(0, |v| v.len()) => format!(
            "{} in {} (the image's {version} line decides the rest)",
            pin.text, pin.source
        ),
        _ => format!("{} in {}", pin.text, pin.source),
    };
    Ok(Version {
        tool: tool.into(),
        version,
        source,
    })
}

/// `20.11.1` → [20, 11, 1]; `None` unless every part is a number.
fn numbers(text: &str) -> Option<Vec<u64>> {
    let parts: Option<Vec<u64>> = text.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty() && p.len() <= 4)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    /// Equal on the components both sides have (a line `20` equals `20.11.1`).
    Eq,
    Ne,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: Vec<u64>,
}

impl Comparator {
    /// Compares on the components both have: an offered line is as precise as it says.
    fn holds(&self, offered: &[u64]) -> bool {
        let n = offered.len().min(self.version.len());
        let ordering = offered[..n].cmp(&self.version[..n]);
        match self.op {
            Op::Ge => ordering.is_ge(),
            Op::Gt => ordering.is_gt(),
            Op::Le => ordering.is_le(),
            Op::Lt => ordering.is_lt(),
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
        }
    }
}

/// The pin as alternatives (any may hold) of comparator sets (all must hold); `None` when it
/// cannot be read.
fn parse(text: &str, minimum: bool) -> Option<Vec<Vec<Comparator>>> {
    let text = text.trim();
    let any = || Some(vec![Vec::new()]);
    match text.to_ascii_lowercase().as_str() {
        "" => return None,
        "*" | "x" | "latest" | "stable" | "node" | "lts/*" | "lts" => return any(),
        _ => {}
    }
    if let Some(name) = text.strip_prefix("lts/") {
        let major = lts_major(name)?;
        return Some(vec![vec![Comparator {
            op: Op::Eq,
            version: vec![major],
        }]]);
    }
    let mut alternatives = Vec::new();
    for alternative in text.split("||") {
        let mut all = Vec::new();
        let mut tokens = alternative
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .peekable();
        while let Some(token) = tokens.next() {
            // `>= 18` and `~> 3.2` may have a space after the operator.
            let token = if token.chars().all(|c| "<>=~^!".contains(c)) {
                format!("{token}{}", tokens.next()?)
            } else {
                token.to_string()
            };
            all.extend(comparators(&token, minimum)?);
        }
        alternatives.push(all);
    }
    Some(alternatives)
}

fn comparators(token: &str, minimum: bool) -> Option<Vec<Comparator>> {
    let ops = [
        ("~>", "pessimistic"),
        ("~=", "pessimistic"),
        (">=", ">="),
        ("<=", "<="),
        ("==", "="),
        ("!=", "!="),
        (">", ">"),
        ("<", "<"),
        ("=", "="),
        ("^", "^"),
        ("~", "~"),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(prefix, op)| token.strip_prefix(prefix).map(|rest| (*op, rest)))
        .unwrap_or(("", token));
    let rest = rest.trim_start_matches('v');
    // Wildcards end the version: `20.x`, `3.*`.
    let mut version = Vec::new();
    for part in rest.split('.') {
        if matches!(part, "x" | "X" | "*") {
            break;
        }
        // Pre-release and build tags (`1.2.3-beta`) are not versions an image line offers.
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        version.push(digits.parse().ok()?);
        if digits.len() != part.len() {
            break;
        }
    }
    if version.is_empty() {
        return (op.is_empty() || op == "=").then(Vec::new);
    }
    let c = |op, version: Vec<u64>| Comparator { op, version };
    let next = |v: &[u64], at: usize| {
        let mut up = v[..=at].to_vec();
        up[at] += 1;
        up
    };
    Some(match op {
        "" | "=" if minimum => vec![c(Op::Ge, version)],
        "" | "=" => vec![c(Op::Eq, version)],
        ">=" => vec![c(Op::Ge, version)],
        ">" => vec![c(Op::Gt, version)],
        "<=" => vec![c(Op::Le, version)],
        "<" => vec![c(Op::Lt, version)],
        "!=" => vec![c(Op::Ne, version)],
        // ^1.2.3 → <2; ^0.2 → <0.3.
        "^" => {
            let at = version.iter().position(|&n| n != 0).unwrap_or(0);
            let upper = next(&version, at);
            vec![c(Op::Ge, version), c(Op::Lt, upper)]
        }
        // ~1.2.3 → <1.3; ~1 → <2.
        "~" => {
            let upper = next(&version, version.len().min(2).saturating_sub(1));
            vec![c(Op::Ge, version), c(Op::Lt, upper)]
        }
        // ~> 3.2 / ~= 3.2 → >= 3.2, < 4; ~> 3.2.1 → < 3.3.
        _ => {
            let upper = next(&version, version.len().saturating_sub(2));
            vec![c(Op::Ge, version), c(Op::Lt, upper)]
        }
    })
}

/// Node's release line names as `.nvmrc` writes them (`lts/iron`).
fn lts_major(name: &str) -> Option<u64> {
    Some(match name.to_ascii_lowercase().as_str() {
        "gallium" => 16,
        "hydrogen" => 18,
        "iron" => 20,
        "jod" => 22,
        "krypton" => 24,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn pick(pin: &str, list: &[&str]) -> Result<String, Unmet> {
        resolve(
            "node",
            Some(&Pin::new(pin, ".nvmrc")),
            &offered(list),
            false,
        )
        .map(|v| v.version)
    }

    #[test]
    fn pins_choose_the_newest_offered_line_that_meets_them() {
        let list = ["22", "24", "20", "18"];
        assert_eq!(pick("20", &list).unwrap(), "20");
        assert_eq!(pick("v20.11.1", &list).unwrap(), "20");
        assert_eq!(pick(">=18", &list).unwrap(), "22"); // the default meets it
        assert_eq!(pick(">=23", &list).unwrap(), "24"); // else the newest that does
        assert_eq!(pick(">= 18 <21", &list).unwrap(), "20");
        assert_eq!(pick("^18.17.0", &list).unwrap(), "18");
        assert_eq!(pick("18.x || 20.x", &list).unwrap(), "20");
        assert_eq!(pick("lts/iron", &list).unwrap(), "20");
        assert_eq!(pick("lts/*", &list).unwrap(), "22");
        assert_eq!(pick("*", &list).unwrap(), "22");
        assert_eq!(
            resolve(
                "python",
                Some(&Pin::new("~=3.11", "p")),
                &offered(&["3.12", "3.11", "3.10"]),
                false
            )
            .unwrap()
            .version,
            "3.12"
        );
        assert_eq!(
            resolve(
                "ruby",
                Some(&Pin::new("~> 3.2.0", "r")),
                &offered(&["3.3", "3.2"]),
                false
            )
            .unwrap()
            .version,
            "3.2"
        );
        assert_eq!(
            resolve(
                "go",
                Some(&Pin::new("1.21", "go.mod")),
                &offered(&["1.19", "1.22"]),
                true
            )
            .unwrap()
            .version,
            "1.22"
        );
    }

    #[test]
    fn a_pin_nothing_offers_is_an_error_naming_both() {
        let err = pick("16", &["22", "20"]).unwrap_err();
        assert!(!err.unreadable);
        let text = err.to_string();
        assert!(text.contains("node 16 is pinned in .nvmrc"), "{text}");
        assert!(text.contains("22, 20"), "{text}");
        let err = pick("banana", &["22"]).unwrap_err();
        assert!(err.unreadable, "{err}");
        assert!(pick("<20.5", &["20"]).is_err());
    }

    #[test]
    fn no_pin_takes_the_first_offered() {
        let v = resolve("node", None, &offered(&["22", "24"]), false).unwrap();
        assert_eq!(v.version, "22");
        assert!(v.source.contains("default"));
        assert!(resolve("node", None, &[], false).is_err());
    }
}
