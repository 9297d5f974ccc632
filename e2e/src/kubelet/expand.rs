//! Kubernetes' `$(VAR)` expansion in command, args and env values:
//! `$(NAME)` becomes NAME's value when NAME is defined, and stays as written
//! otherwise; `$$` is a literal `$`.

/// Expands `text` with `lookup`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(close) => {
                    let name = &reference[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &reference[close + 1..];
                }
                None => {
                    out.push_str(&rest[dollar..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "POD_IP" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn defined_references_expand_and_others_stay() {
        assert_eq!(expand("$(POD_IP):8080", vars), "10.0.0.1:8080");
        assert_eq!(expand("a$(EMPTY)b", vars), "ab");
        assert_eq!(expand("$(MISSING)-x", vars), "$(MISSING)-x");
    }

    #[test]
    fn double_dollar_escapes_and_stray_dollars_stay() {
        assert_eq!(expand("$$(POD_IP)", vars), "$(POD_IP)");
        assert_eq!(expand("cost $5 $", vars), "cost $5 $");
        assert_eq!(expand("$(POD_IP", vars), "$(POD_IP");
        assert_eq!(expand("$$$(POD_IP)", vars), "$10.0.0.1");
    }
}
