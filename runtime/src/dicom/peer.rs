//! A remote DICOM application entity as the command line and configuration name it:
//! `AE@host:port` (`STORESCP@127.0.0.1:11112`, `PACS@[fd00::5]:104`).

use std::fmt;
use std::str::FromStr;

/// A remote application entity: the called AE title and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("`{input}` is not AE@host:port: {what}")]
    Syntax { input: String, what: &'static str },
    #[error("`{input}` is not AE@host:port: the port `{port}` is not a number in 1..=65535")]
    Port { input: String, port: String },
    #[error(transparent)]
    AeTitle(#[from] AeTitleError),
}

/// Why a string is not a valid AE title (PS3.5 §6.2, value representation AE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeTitleError {
    #[error("the AE title is empty")]
    Empty,
    #[error("the AE title `{0}` is blank: only spaces")]
    Blank(String),
    #[error("the AE title `{title}` is {len} characters long; at most 16 are allowed")]
    TooLong { title: String, len: usize },
    #[error(
        "the AE title `{0}` contains a backslash, which DICOM reserves as the value separator"
    )]
    Backslash(String),
    #[error("the AE title {0:?} contains a control character")]
    Control(String),
    #[error(
        "the AE title `{0}` contains a character outside the DICOM default repertoire (ASCII)"
    )]
    NonAscii(String),
}

/// Checks an AE title: 1 to 16 characters of the default repertoire, no backslash, no
/// control characters, not only spaces. Leading and trailing spaces are not significant
/// (PS3.5 Table 6.2-1), so they count towards the length but not as content.
pub fn validate_ae_title(title: &str) -> Result<(), AeTitleError> {
    if title.is_empty() {
        return Err(AeTitleError::Empty);
    }
    if title.chars().any(|c| c.is_control()) {
        return Err(AeTitleError::Control(title.to_string()));
    }
    if !title.is_ascii() {
        return Err(AeTitleError::NonAscii(title.to_string()));
    }
    if title.contains('\\') {
        return Err(AeTitleError::Backslash(title.to_string()));
    }
    if title.len() > 16 {
        return Err(AeTitleError::TooLong {
            title: title.to_string(),
            len: title.len(),
        });
    }
    if title.trim().is_empty() {
        return Err(AeTitleError::Blank(title.to_string()));
    }
    Ok(())
}

impl FromStr for Peer {
    type Err = PeerError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = |what| PeerError::Syntax {
            input: input.to_string(),
            what,
        };
        // Host names and addresses never contain '@', so the last one ends the AE title.
        let (ae, address) = input
            .rsplit_once('@')
            .ok_or_else(|| syntax("there is no `@` between the AE title and the host"))?;
        validate_ae_title(ae)?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| syntax("there is no `:` before the port"))?;
        // An IPv6 address is written in brackets so that its colons are not read as the port's.
        let host = match host.strip_prefix('[') {
            Some(rest) => rest
                .strip_suffix(']')
                .ok_or_else(|| syntax("the `[` before an IPv6 address has no `]`"))?,
            None if host.contains(':') => {
                return Err(syntax(
                    "an IPv6 address must be written in brackets: [addr]",
                ))
            }
            None => host,
        };
        if host.is_empty() {
            return Err(syntax("the host is empty"));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(PeerError::Port {
                    input: input.to_string(),
                    port: port.to_string(),
                })
            }
        };
        Ok(Peer {
            ae_title: ae.trim().to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.ae_title, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.ae_title, self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let p: Peer = "STORESCP@127.0.0.1:11112".parse().unwrap();
        assert_eq!(
            p,
            Peer {
                ae_title: "STORESCP".into(),
                host: "127.0.0.1".into(),
                port: 11112
            }
        );
        assert_eq!(p.to_string(), "STORESCP@127.0.0.1:11112");
        let v6: Peer = "PACS@[::1]:104".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "PACS@[::1]:104");
        let named: Peer = "A B@pacs.example.org:4242".parse().unwrap();
        assert_eq!((named.ae_title.as_str(), named.port), ("A B", 4242));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = |s: &str| s.parse::<Peer>().unwrap_err().to_string();
        assert!(err("127.0.0.1:104").contains("no `@`"));
        assert!(err("AE@host").contains("no `:`"));
        assert!(err("AE@host:0").contains("port `0`"));
        assert!(err("AE@host:70000").contains("port `70000`"));
        assert!(err("AE@:104").contains("host is empty"));
        assert!(err("AE@::1:104").contains("brackets"));
        assert!(err("@host:104").contains("empty"));
        assert!(err("    @host:104").contains("blank"));
        assert!(err("ABCDEFGHIJKLMNOPQ@host:104").contains("17 characters"));
        assert!(err("A\\B@host:104").contains("backslash"));
        assert!(err("A\tB@host:104").contains("control character"));
        assert!(err("ÄE@host:104").contains("ASCII"));
    }

    #[test]
    fn ae_titles() {
        assert!(validate_ae_title("WARD").is_ok());
        assert!(validate_ae_title("SIXTEEN_CHARS_AE").is_ok());
        assert!(validate_ae_title(" PADDED ").is_ok());
        assert_eq!(validate_ae_title(""), Err(AeTitleError::Empty));
    }
}
