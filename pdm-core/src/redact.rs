//! Redaction of secrets in URLs, for logs and error messages.

/// `url` with the password of its user info and any `password=` query parameter replaced by
/// `***`: `postgres://pdm:secret@db/pdm?sslmode=require` becomes
/// `postgres://pdm:***@db/pdm?sslmode=require`. Anything that is not a URL is returned as is.
///
/// ```
/// assert_eq!(pdm_core::redact_url("mqtt://u:p@broker:1883"), "mqtt://u:***@broker:1883");
/// assert_eq!(pdm_core::redact_url("postgres://h/db?password=x"), "postgres://h/db?password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            out.push_str(scheme);
            out.push_str("://");
            // The last '@' ends the user info: passwords may contain '@' when not encoded.
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        let mut first = true;
        for pair in query.split('&') {
            if !first {
                out.push('&');
            }
            first = false;
            match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                    out.push_str(k);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords_and_keeps_the_rest() {
        for (url, want) in [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("sqlite://./x.db", "sqlite://./x.db"),
            ("mqtt://a:b@c@h", "mqtt://a:***@h"),
            ("mqtts://u:p@h:8883", "mqtts://u:***@h:8883"),
            (
                "postgres://h/db?user=u&password=p&x=1",
                "postgres://h/db?user=u&password=***&x=1",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
