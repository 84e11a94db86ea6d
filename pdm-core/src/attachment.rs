//! Attachments on work orders, alarms and their comments: what a file may be, how its type is
//! told from its bytes, and the name it is shown under.
//!
//! A file's type is decided by its content ([`Sniffer`], fed as it streams in), never by what the
//! client claims: the claim (the name's extension, the part's `Content-Type`) must agree with
//! the content or the file is refused ([`check_claim`]). Only the types of [`Kind`] are kept. The
//! client's file name is only ever shown ([`display_name`]); the file is stored under a
//! generated name.

use serde::{Deserialize, Serialize};

use crate::comment::CommentId;
use crate::model::Timestamp;
use crate::store::{AlarmId, UserId};
use crate::workorder::WorkOrderId;

/// The default upload limit: 20 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// Longest shown name, in characters.
pub const MAX_NAME: usize = 200;

/// An attachment's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttachmentId(pub i64);

impl std::fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an attachment belongs to: a work order or an alarm (a comment's attachment belongs to
/// what the comment is on, and names the comment too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentOwner {
    /// A work order.
    WorkOrder(WorkOrderId),
    /// An alarm.
    Alarm(AlarmId),
}

impl From<crate::comment::CommentTarget> for AttachmentOwner {
    fn from(t: crate::comment::CommentTarget) -> Self {
        match t {
            crate::comment::CommentTarget::WorkOrder(w) => AttachmentOwner::WorkOrder(w),
            crate::comment::CommentTarget::Alarm(a) => AttachmentOwner::Alarm(a),
        }
    }
}

/// The types a file may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// GIF image.
    Gif,
    /// WebP image.
    Webp,
    /// TIFF image.
    Tiff,
    /// PDF document.
    Pdf,
    /// UTF-8 text.
    Text,
    /// Comma-separated values (UTF-8 text named or declared as CSV).
    Csv,
}

/// What the allowlist holds, in words (for error messages).
pub const ALLOWED: &str = "PNG, JPEG, GIF, WebP or TIFF images, PDF, UTF-8 text or CSV";

impl Kind {
    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
            Kind::Tiff => "image/tiff",
            Kind::Pdf => "application/pdf",
            Kind::Text => "text/plain",
            Kind::Csv => "text/csv",
        }
    }

    /// The kind of a stored media type.
    pub fn from_media_type(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.media_type() == s)
    }

    /// Its name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Png => "a PNG image",
            Kind::Jpeg => "a JPEG image",
            Kind::Gif => "a GIF image",
            Kind::Webp => "a WebP image",
            Kind::Tiff => "a TIFF image",
            Kind::Pdf => "a PDF document",
            Kind::Text => "text",
            Kind::Csv => "CSV",
        }
    }

    fn is_text(self) -> bool {
        matches!(self, Kind::Text | Kind::Csv)
    }
}

const KINDS: [Kind; 8] = [
    Kind::Png,
    Kind::Jpeg,
    Kind::Gif,
    Kind::Webp,
    Kind::Tiff,
    Kind::Pdf,
    Kind::Text,
    Kind::Csv,
];

/// The kind a file name's extension claims: `Ok(None)` without an extension, `Err` for an
/// extension outside the allowlist.
fn kind_of_extension(ext: &str) -> Result<Kind, String> {
    Ok(match ext.to_ascii_lowercase().as_str() {
        "png" => Kind::Png,
        "jpg" | "jpeg" | "jpe" => Kind::Jpeg,
        "gif" => Kind::Gif,
        "webp" => Kind::Webp,
        "tif" | "tiff" => Kind::Tiff,
        "pdf" => Kind::Pdf,
        "txt" | "text" | "log" | "md" | "markdown" => Kind::Text,
        "csv" => Kind::Csv,
        other => {
            return Err(format!(
                "files named .{other} are not accepted: allowed are {ALLOWED} \
                 (.png .jpg .gif .webp .tif .pdf .txt .log .md .csv, or no extension)"
            ))
        }
    })
}

/// The kind a declared media type claims (`None`: no claim, as for `application/octet-stream`).
fn kind_of_declared(media: &str) -> Result<Option<Kind>, String> {
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(Some(match essence.as_str() {
        "" | "application/octet-stream" => return Ok(None),
        "image/png" => Kind::Png,
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Kind::Jpeg,
        "image/gif" => Kind::Gif,
        "image/webp" => Kind::Webp,
        "image/tiff" => Kind::Tiff,
        "application/pdf" => Kind::Pdf,
        "text/plain" | "text/markdown" | "text/x-log" => Kind::Text,
        "text/csv" | "application/csv" | "text/comma-separated-values" => Kind::Csv,
        other => {
            return Err(format!(
                "files declared as {other} are not accepted: allowed are {ALLOWED}"
            ))
        }
    }))
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The file is empty.
    Empty,
    /// Its type (from its bytes or its claim) is not allowed, or the claim and the bytes
    /// disagree: the sentence says which.
    Type(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Empty => f.write_str("the file is empty"),
            Refusal::Type(s) => f.write_str(s),
        }
    }
}

/// Tells a file's kind from its bytes as they stream in: the magic bytes of the binary kinds,
/// or UTF-8 text without control characters (tab, line feed, carriage return and form feed
/// aside) throughout.
#[derive(Debug, Default)]
pub struct Sniffer {
    head: Vec<u8>,
    len: u64,
    /// Bytes of a UTF-8 sequence cut by a chunk boundary.
    carry: Vec<u8>,
    not_text: bool,
}

const HEAD: usize = 16;

impl Sniffer {
    /// A sniffer that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < HEAD {
            let room = HEAD - self.head.len();
            self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
        self.len += chunk.len() as u64;
        if self.not_text {
            return;
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let (valid, cut) = match std::str::from_utf8(&buf) {
            Ok(s) => (s, 0),
            // A sequence cut at the end: its bytes wait for the next chunk.
            Err(e) if e.error_len().is_none() => (
                std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
                buf.len() - e.valid_up_to(),
            ),
            Err(_) => {
                self.not_text = true;
                return;
            }
        };
        self.not_text |= !plain(valid);
        self.carry = buf[buf.len() - cut..].to_vec();
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kind of everything fed (`Text` for any text: [`check_claim`] tells CSV from its
    /// claim), or `None` when it is none of [`Kind`].
    pub fn kind(&self) -> Option<Kind> {
        let h = &self.head[..];
        if h.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Kind::Png)
        } else if h.starts_with(b"\xff\xd8\xff") {
            Some(Kind::Jpeg)
        } else if h.starts_with(b"GIF87a") || h.starts_with(b"GIF89a") {
            Some(Kind::Gif)
        } else if h.len() >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"WEBP" {
            Some(Kind::Webp)
        } else if h.starts_with(b"II*\0") || h.starts_with(b"MM\0*") {
            Some(Kind::Tiff)
        } else if h.starts_with(b"%PDF-") {
            Some(Kind::Pdf)
        } else if !self.not_text && self.carry.is_empty() {
            Some(Kind::Text)
        } else {
            None
        }
    }
}

/// Text without control characters but tab, line feed, carriage return and form feed.
fn plain(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

/// The kind to store a file as: what its bytes are (`sniffed`, from [`Sniffer::kind`]) when its
/// name's extension and its declared media type (either may be absent) agree with them; text
/// named or declared as CSV is CSV. A PDF named `.png` is refused, as is anything outside the
/// allowlist.
pub fn check_claim(
    sniffed: Option<Kind>,
    len: u64,
    name: &str,
    declared: Option<&str>,
) -> Result<Kind, Refusal> {
    if len == 0 {
        return Err(Refusal::Empty);
    }
    let by_name = extension(name)
        .map(kind_of_extension)
        .transpose()
        .map_err(Refusal::Type)?;
    let by_declared = match declared {
        Some(d) => kind_of_declared(d).map_err(Refusal::Type)?,
        None => None,
    };
    let Some(found) = sniffed else {
        return Err(Refusal::Type(format!(
            "the content is none of the accepted types ({ALLOWED})"
        )));
    };
    let mut kind = found;
    for (claim, how) in [(by_name, "named"), (by_declared, "declared")] {
        let Some(claim) = claim else { continue };
        let agrees = claim == found || (claim.is_text() && found.is_text());
        if !agrees {
            return Err(Refusal::Type(format!(
                "the file is {how} as {} but its content is {}",
                claim.label(),
                found.label()
            )));
        }
        if claim == Kind::Csv {
            kind = Kind::Csv;
        }
    }
    Ok(kind)
}

/// The extension of a file name (after the last dot of its last component), if any.
fn extension(name: &str) -> Option<&str> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = base.rsplit_once('.')?;
    (!stem.trim_matches('.').is_empty() && !ext.is_empty()).then_some(ext)
}

/// The name a file is shown and downloaded under: the last component of what the client sent
/// (no directory ever survives), without control characters, leading dots, trailing dots and
/// spaces (which systems drop, revealing the extension before them), at most [`MAX_NAME`]
/// characters with its extension kept whole when shortened; `attachment` when nothing is left.
/// The type a name claims is read from this name ([`check_claim`]), so what is checked is
/// what is shown.
pub fn display_name(client: &str) -> String {
    let base = client.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let clean = clean
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .trim();
    if clean.is_empty() {
        return "attachment".into();
    }
    if clean.chars().count() <= MAX_NAME {
        return clean.to_owned();
    }
    match clean.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.chars().count() <= 16 => {
            let room = MAX_NAME - ext.chars().count() - 1;
            let stem: String = stem.chars().take(room).collect();
            format!("{}.{ext}", stem.trim_end_matches(['.', ' ']))
        }
        _ => clean.chars().take(MAX_NAME).collect(),
    }
}

/// An attachment as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its id.
    pub id: AttachmentId,
    /// The work order or alarm it belongs to.
    pub owner: AttachmentOwner,
    /// The comment it was attached to, if any (on the same owner).
    pub comment: Option<CommentId>,
    /// The name shown ([`display_name`] of the client's).
    pub name: String,
    /// Its kind, from its bytes.
    pub kind: Kind,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The generated file name under the attachments directory.
    pub stored_as: String,
    /// Who uploaded it (actor name).
    pub uploader: String,
    /// Their user id (`None` for an API token).
    pub uploader_user: Option<UserId>,
    /// When.
    pub created_at: Timestamp,
}

/// A new attachment (its file already in place under `stored_as`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttachment {
    /// What it belongs to.
    pub owner: AttachmentOwner,
    /// The comment it is attached to.
    pub comment: Option<CommentId>,
    /// The shown name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// The generated file name.
    pub stored_as: String,
    /// Who.
    pub uploader: String,
    /// Their user id.
    pub uploader_user: Option<UserId>,
    /// When.
    pub at: Timestamp,
}

/// How much the attachments hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Files.
    pub files: u64,
    /// Bytes, summed.
    pub bytes: u64,
}

/// Whether `caller` may delete `a`: its uploader may, and a moderator may any.
pub fn may_delete(a: &Attachment, caller: Option<UserId>, moderator: bool) -> bool {
    moderator || (caller.is_some() && caller == a.uploader_user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(chunks: &[&[u8]]) -> (Option<Kind>, u64) {
        let mut s = Sniffer::new();
        for c in chunks {
            s.feed(c);
        }
        (s.kind(), s.len())
    }

    fn kind_of(bytes: &[u8], name: &str, declared: Option<&str>) -> Result<Kind, Refusal> {
        let (k, n) = sniff(&[bytes]);
        check_claim(k, n, name, declared)
    }

    #[test]
    fn the_content_decides_and_the_claim_must_agree() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n";
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(kind_of(pdf, "report.pdf", None), Ok(Kind::Pdf));
        assert_eq!(
            kind_of(pdf, "report.pdf", Some("application/octet-stream")),
            Ok(Kind::Pdf)
        );
        assert_eq!(kind_of(png, "photo.PNG", Some("image/png")), Ok(Kind::Png));
        let renamed = kind_of(pdf, "photo.png", Some("image/png")).unwrap_err();
        assert_eq!(
            renamed.to_string(),
            "the file is named as a PNG image but its content is a PDF document"
        );
        assert!(
            kind_of(pdf, "photo", Some("image/png")).is_err(),
            "declared"
        );
        assert_eq!(kind_of(b"a,b\n1,2\n", "r.csv", None), Ok(Kind::Csv));
        assert_eq!(kind_of(b"a,b\n1,2\n", "r", Some("text/csv")), Ok(Kind::Csv));
        assert_eq!(
            kind_of("héllo\r\n".as_bytes(), "n.txt", None),
            Ok(Kind::Text)
        );
        assert_eq!(kind_of(b"plain", "notes", None), Ok(Kind::Text));
        assert!(kind_of(b"MZ\x90\0\x03\0\0\0", "tool.txt", None).is_err());
        assert!(kind_of(b"<html></html>", "page.html", None).is_err());
        assert!(kind_of(b"<svg/>", "x", Some("image/svg+xml")).is_err());
        assert!(kind_of(b"GIF89a....", "a.gif", None).is_ok());
        assert!(kind_of(b"RIFF\0\0\0\0WEBPVP8 ", "a.webp", None).is_ok());
        assert_eq!(kind_of(b"", "a.txt", None), Err(Refusal::Empty));
        assert!(kind_of(b"text\0with nul", "a.txt", None).is_err());
    }

    #[test]
    fn text_is_checked_across_chunk_boundaries() {
        let s = "ünïcödé ".repeat(50);
        let bytes = s.as_bytes();
        // Cut inside a two-byte sequence.
        let (k, _) = sniff(&[&bytes[..1], &bytes[1..2], &bytes[2..]]);
        assert_eq!(k, Some(Kind::Text));
        let (k, _) = sniff(&[&bytes[..3], b"\xff", &bytes[3..]]);
        assert_eq!(k, None, "invalid UTF-8");
        let (k, _) = sniff(&[b"ends cut \xc3"]);
        assert_eq!(k, None, "a sequence cut at the end is not text");
        // Magic bytes split over chunks.
        let (k, n) = sniff(&[b"%P", b"DF-1.4 rest"]);
        assert_eq!((k, n), (Some(Kind::Pdf), 13));
    }

    #[test]
    fn a_shown_name_never_holds_a_path_or_control_characters() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(display_name("C:\\Users\\a\\photo.png"), "photo.png");
        assert_eq!(display_name("bad\r\nname\0.txt"), "badname.txt");
        assert_eq!(display_name(".."), "attachment");
        assert_eq!(display_name(".hidden"), "hidden");
        assert_eq!(display_name("dir/"), "attachment");
        assert_eq!(display_name(""), "attachment");
        assert_eq!(display_name(&"x".repeat(500)).chars().count(), MAX_NAME);
        // The extension survives shortening, and trailing dots and spaces go: what is shown is
        // what is checked.
        let long = format!("{}.html.txt", "a".repeat(195));
        let shown = display_name(&long);
        assert!(
            shown.ends_with(".txt") && shown.chars().count() <= MAX_NAME,
            "{shown}"
        );
        assert_eq!(display_name("evil.html."), "evil.html");
        assert_eq!(display_name("run.bat . ."), "run.bat");
        assert!(check_claim(Some(Kind::Text), 3, &display_name("evil.html."), None).is_err());
        assert!(check_claim(Some(Kind::Text), 3, &display_name(&long), None).is_ok());
        assert_eq!(extension("../../etc/passwd"), None);
        assert_eq!(extension(".bashrc"), None);
        assert_eq!(extension("a.tar.gz"), Some("gz"));
    }
}
