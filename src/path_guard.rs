//! STUB: replaced by the path-guard branch.

/// What the guard says of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Open,
    SignInRequired,
    Ambiguous,
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    require: Vec<String>,
    public: Vec<String>,
    ignore_case: bool,
}

impl Rules {
    pub fn parse_prefixes(text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if !p.starts_with('/') {
                return Err(format!("has an entry that does not start with /: {p:?}"));
            }
            out.push(p.to_owned());
        }
        Ok(out)
    }
    pub fn new(require: Vec<String>, public: Vec<String>, ignore_case: bool) -> Rules {
        Rules {
            require,
            public,
            ignore_case,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.require.is_empty()
    }
    pub fn check(&self, path: &str) -> Verdict {
        let _ = self.ignore_case;
        let covers = |p: &String| {
            path == p.trim_end_matches('/')
                || path.starts_with(&format!("{}/", p.trim_end_matches('/')))
        };
        if self.require.iter().any(covers) && !self.public.iter().any(covers) {
            Verdict::SignInRequired
        } else {
            Verdict::Open
        }
    }
}
