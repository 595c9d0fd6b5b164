//! Values templates in a subject profile: how the harness tells a workload where its backup store
//! is, in the workload's own words (`RESTIC_REPOSITORY: "s3:{s3.endpoint}/{s3.bucket}/{prefix}"`).
//!
//! A template is text with `{field}` placeholders; `{{` and `}}` stand for literal braces. The
//! fields ([`FIELDS`]) are checked when the profile loads, so a typo is an error naming the
//! profile's field, not an empty value at run time.

use std::collections::BTreeMap;

/// Every field a template may name, with what it holds.
pub const FIELDS: [(&str, &str); 15] = [
    (
        "s3.endpoint",
        "the object store's URL, e.g. http://phasecheck-store:9000",
    ),
    ("s3.host", "the object store's host:port"),
    ("s3.bucket", "the bucket"),
    (
        "s3.prefix",
        "the key prefix backups go under (may be empty; ends with `/` otherwise)",
    ),
    ("s3.region", "the region to sign for"),
    ("s3.accessKeyId", "the access key ID (a credential)"),
    ("s3.secretAccessKey", "the secret access key (a credential)"),
    (
        "git.url",
        "the repository's http:// URL, without credentials",
    ),
    (
        "git.authUrl",
        "the repository's URL with user:password@ in it (a credential)",
    ),
    ("git.branch", "the branch backups go to"),
    ("git.username", "the basic-auth user name (a credential)"),
    ("git.password", "the basic-auth password (a credential)"),
    (
        "prefix",
        "the key prefix without its trailing `/` (for s3:{s3.endpoint}/{s3.bucket}/{prefix})",
    ),
    (
        "restic.password",
        "the restic repository's password (a credential)",
    ),
    ("namespace", "the scenario's namespace"),
];

/// Fields whose values are credentials: never shown, searched for in what the run phase can read.
pub const CREDENTIAL_FIELDS: [&str; 6] = [
    "s3.accessKeyId",
    "s3.secretAccessKey",
    "git.authUrl",
    "git.username",
    "git.password",
    "restic.password",
];

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
}

/// A parsed, checked template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `source`; an error says what is wrong in words (unknown field, unclosed brace).
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut field = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => field.push(c),
                            None => {
                                return Err(format!(
                                    "`{{{field}` is not closed with `}}` (write `{{{{` for a literal brace)"
                                ));
                            }
                        }
                    }
                    if !FIELDS.iter().any(|(known, _)| *known == field) {
                        return Err(format!(
                            "unknown field `{{{field}}}`; known fields: {}",
                            FIELDS
                                .iter()
                                .map(|(f, _)| format!("{{{f}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(field));
                }
                '}' => {
                    return Err("a lone `}` (write `}}` for a literal brace)".to_owned());
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The fields it names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(f.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The text with every field replaced by its value in `values` (a missing one is empty).
    pub fn render(&self, values: &TemplateValues) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Field(f) => values.get(f),
            })
            .collect()
    }
}

/// The values of a scenario's template fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateValues(BTreeMap<String, String>);

impl TemplateValues {
    /// Sets `field` (one of [`FIELDS`]) to `value`.
    pub fn with(mut self, field: &str, value: impl Into<String>) -> Self {
        debug_assert!(FIELDS.iter().any(|(f, _)| *f == field), "{field}");
        self.0.insert(field.to_owned(), value.into());
        self
    }

    /// The value of `field`, empty when unset.
    pub fn get(&self, field: &str) -> &str {
        self.0.get(field).map_or("", String::as_str)
    }

    /// Every non-empty credential value (see [`CREDENTIAL_FIELDS`]).
    pub fn credentials(&self) -> Vec<String> {
        CREDENTIAL_FIELDS
            .iter()
            .map(|f| self.get(f).to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_replaced_and_double_braces_are_literal() {
        let t = Template::parse("s3:{s3.endpoint}/{s3.bucket}/{prefix} {{x}}").unwrap();
        let values = TemplateValues::default()
            .with("s3.endpoint", "http://h:9000")
            .with("s3.bucket", "b")
            .with("prefix", "p/q");
        assert_eq!(t.render(&values), "s3:http://h:9000/b/p/q {x}");
        assert_eq!(
            t.fields().collect::<Vec<_>>(),
            ["s3.endpoint", "s3.bucket", "prefix"]
        );
    }

    #[test]
    fn an_unknown_field_is_named_with_the_known_ones() {
        let e = Template::parse("{s3.endpont}").unwrap_err();
        assert!(e.contains("`{s3.endpont}`"), "{e}");
        assert!(e.contains("{s3.endpoint}"), "{e}");
    }

    #[test]
    fn unclosed_and_lone_braces_are_errors() {
        assert!(
            Template::parse("{s3.bucket")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(Template::parse("a}b").unwrap_err().contains("lone"));
    }

    #[test]
    fn credentials_are_the_non_empty_credential_fields() {
        let values = TemplateValues::default()
            .with("s3.bucket", "b")
            .with("s3.secretAccessKey", "sekret")
            .with("git.password", "");
        assert_eq!(values.credentials(), ["sekret"]);
    }
}
