//! Extraction of indicators of compromise (IOCs) from free text.
//!
//! Every pattern runs over the original text and accepts defanged separators
//! (`[.]`, `(dot)`, `hxxp`, `[@]`, ...), so `start..end` always indexes the
//! input; the matched string is then refanged and normalised. Overlaps are
//! resolved by kind priority (URL > e-mail > registry key > file path > IPv6 >
//! IPv4 > CVE > hash > domain): an indicator lying inside a higher-priority one
//! (a URL's host, an e-mail's domain, an IP inside a URL) is not reported.
//!
//! Rules for ambiguous text:
//! - A dotted quad preceded by the word `v`, `ver`, `version` or `release` is a
//!   version number, not an IPv4 address.
//! - A domain whose TLD is also a common file extension (`zip mov sh py pl rs md`)
//!   is reported only if defanged or with 3+ labels (`bad[.]zip`,
//!   `cdn.files.zip`, but not `run.sh`).
//! - An undefanged domain whose TLD is written in title case (`end.It`,
//!   `hello.World`) is a sentence missing a space, not a domain.
//! - An IPv6 address needs a decimal digit, so C++ `a::b` is not one.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::Regex;

/// Kind of an indicator.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    Ipv4,
    Ipv6,
    Domain,
    Url,
    Email,
    Md5,
    Sha1,
    Sha256,
    Cve,
    FilePath,
    RegistryKey,
}

/// One indicator found in the text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Indicator {
    pub kind: IndicatorKind,
    /// Normalised (refanged) value: `hxxp://evil[.]com` -> `http://evil.com`; hashes lowercase; CVE ids uppercase; domains lowercase.
    pub value: String,
    /// Whether the text had it in defanged form.
    pub defanged: bool,
    /// Byte offsets of the match in the original text.
    pub start: usize,
    pub end: usize,
}

/// A dot, plain or defanged.
const DOT: &str = r"(?:\.|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\))";
/// A DNS label.
const LABEL: &str = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";

/// Top-level domains accepted for domains and e-mail addresses.
const TLDS: &str = "com net org info biz io co gov edu mil int xyz top online site club app dev \
    cloud ai me tv cc ws su tk ml ga cf gq pw ly to eu asia mobi pro shop store live life world \
    today tech space website fun icu vip win bid loan work click link host press email digital \
    network services support solutions company center group agency media news blog wiki page \
    buzz rest bar lol cam men date download racing review stream trade party science cyou sbs \
    monster quest gdn us uk gb ca au nz de fr nl it es pt pl ru ua by kz cn jp kr in hk tw sg my \
    th vn id ph pk bd lk np ir il sa ae qa kw om tr gr bg ro hu cz sk at ch se no fi dk be lu ie \
    li lt lv ee si hr rs ba mk al md ge am az uz kg br ar cl pe ve mx za ng ke eg ma dz tn gh \
    cx gg im je fm la nu ps sh zip mov py";
/// TLDs that are also common file extensions (see the module docs).
const AMBIGUOUS_TLDS: [&str; 7] = ["zip", "mov", "sh", "py", "pl", "rs", "md"];

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid pattern")
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?i)\b(?:h(?:tt|xx|\*\*)ps?|s?ftp|fxp)(?:\[://\]|(?::|\[:\])//)[^\s"'<>]+"#)
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)[a-z0-9._%+-]+(?:@|\[@\]|\[at\]|\(at\)){LABEL}(?:{DOT}{LABEL})+"
    ))
});
static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:HKEY_(?:LOCAL_MACHINE|CURRENT_USER|CLASSES_ROOT|USERS|CURRENT_CONFIG)|HKLM|HKCU|HKCR|HKU|HKCC):?\\[^\s"'<>|]+"#,
    )
});
static WIN_PATH: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?i)(?:\b[a-z]:\\|%[a-z_][a-z0-9_()]*%\\|\\\\[a-z0-9._$-]+\\)[^\s"'<>|]+"#)
});
static UNIX_PATH: LazyLock<Regex> = LazyLock::new(|| re(r#"(?:/[^\s"'<>|/\\]+){2,}"#));
static IPV6: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"(?i)[0-9]+(?:{DOT}[0-9]+)+")));
static CVE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bCVE-[0-9]{4}-[0-9]{4,7}\b"));
static HASH: LazyLock<Regex> = LazyLock::new(|| re(r"\b[0-9A-Fa-f]{32,64}\b"));
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| re(&format!("(?i){LABEL}(?:{DOT}{LABEL})+")));
static DEFANG: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\[:\]|\[://\]|\[@\]|\[at\]|\(at\)")
});
static TLD_SET: LazyLock<HashSet<&str>> = LazyLock::new(|| TLDS.split_whitespace().collect());

/// Every indicator in `text`, in order of appearance, without duplicates of the same (kind, value) (keep the first).
pub fn extract(text: &str) -> Vec<Indicator> {
    use IndicatorKind::*;
    // Candidates are pushed in priority order; see `resolve`.
    let mut found = Vec::new();
    let mut push = |kind, start: usize, raw: &str, value: String, defanged| {
        found.push(Indicator {
            kind,
            value,
            defanged,
            start,
            end: start + raw.len(),
        });
    };
    for m in URL.find_iter(text) {
        let raw = trim_punct(m.as_str());
        if let Some((value, defanged)) = normalise_url(raw) {
            push(Url, m.start(), raw, value, defanged);
        }
    }
    for m in EMAIL.find_iter(text) {
        let (value, defanged) = refang(m.as_str());
        if let Some((local, domain)) = value.rsplit_once('@') {
            let domain = domain.to_ascii_lowercase();
            if tld(&domain).is_some() {
                push(
                    Email,
                    m.start(),
                    m.as_str(),
                    format!("{local}@{domain}"),
                    defanged,
                );
            }
        }
    }
    for (regex, kind) in [
        (&*REGISTRY, RegistryKey),
        (&*WIN_PATH, FilePath),
        (&*UNIX_PATH, FilePath),
    ] {
        for m in regex.find_iter(text) {
            let raw = trim_punct(m.as_str());
            let bad_unix = raw.starts_with('/')
                && (is_word_before(text, m.start(), "/.:-~\\%")
                    || raw.split('/').filter(|c| !c.is_empty()).count() < 2
                    || raw.chars().all(|c| c.is_ascii_digit() || c == '/'));
            if !bad_unix {
                push(kind, m.start(), raw, raw.to_string(), false);
            }
        }
    }
    for m in IPV6.find_iter(text) {
        let mut raw = m.as_str().trim_end_matches('.');
        if raw.ends_with(':') && !raw.ends_with("::") {
            raw = &raw[..raw.len() - 1];
        }
        let ok = !is_word_before(text, m.start(), "")
            && !is_word_after(text, m.start() + raw.len(), "")
            && raw.bytes().any(|b| b.is_ascii_digit())
            && raw.parse::<Ipv6Addr>().is_ok();
        if ok {
            push(Ipv6, m.start(), raw, raw.to_ascii_lowercase(), false);
        }
    }
    for m in IPV4.find_iter(text) {
        let (value, defanged) = refang(m.as_str());
        let parts: Vec<&str> = value.split('.').collect();
        let ok = parts.len() == 4
            && parts
                .iter()
                .all(|p| p.len() <= 3 && p.parse::<u8>().is_ok())
            && !is_word_before(text, m.start(), ".")
            && !is_word_after(text, m.end(), "")
            && !follows_version_word(&text[..m.start()]);
        if ok {
            push(Ipv4, m.start(), m.as_str(), value, defanged);
        }
    }
    for m in CVE.find_iter(text) {
        push(
            Cve,
            m.start(),
            m.as_str(),
            m.as_str().to_ascii_uppercase(),
            false,
        );
    }
    for m in HASH.find_iter(text) {
        let kind = match m.len() {
            32 => Md5,
            40 => Sha1,
            64 => Sha256,
            _ => continue,
        };
        push(
            kind,
            m.start(),
            m.as_str(),
            m.as_str().to_ascii_lowercase(),
            false,
        );
    }
    for m in DOMAIN.find_iter(text) {
        let (value, defanged) = refang(m.as_str());
        let value = value.to_ascii_lowercase();
        if is_word_before(text, m.start(), ".-@") || is_word_after(text, m.end(), "@") {
            continue;
        }
        let Some(tld) = tld(&value) else { continue };
        let written = m.as_str().rsplit('.').next().unwrap_or("");
        let title_case = written.chars().next().is_some_and(char::is_uppercase)
            && written.chars().skip(1).all(char::is_lowercase);
        let ambiguous = AMBIGUOUS_TLDS.contains(&tld) && value.matches('.').count() < 2;
        if !defanged && (ambiguous || title_case) {
            continue;
        }
        push(Domain, m.start(), m.as_str(), value, defanged);
    }
    resolve(found)
}

/// Keeps candidates (given in priority order) that overlap no earlier kept one,
/// sorts them by position and drops repeated (kind, value) pairs.
fn resolve(candidates: Vec<Indicator>) -> Vec<Indicator> {
    let mut kept: Vec<Indicator> = Vec::new();
    for c in candidates {
        if kept.iter().all(|k| c.end <= k.start || c.start >= k.end) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|i| i.start);
    let mut seen = HashSet::new();
    kept.retain(|i| seen.insert((i.kind, i.value.clone())));
    kept
}

/// Replaces defanged separators; returns the new string and whether any was found.
fn refang(s: &str) -> (String, bool) {
    let out = DEFANG.replace_all(s, |c: &regex::Captures| {
        match c[0].to_ascii_lowercase().as_str() {
            "[:]" => ":",
            "[://]" => "://",
            "[@]" | "[at]" | "(at)" => "@",
            _ => ".",
        }
    });
    let defanged = out != s;
    (out.into_owned(), defanged)
}

/// Refangs a URL, fixes its scheme (`hxxp`, `h**p`, `fxp`) and lowercases scheme and host.
fn normalise_url(raw: &str) -> Option<(String, bool)> {
    let (url, mut defanged) = refang(raw);
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let fixed = scheme
        .replace("xx", "tt")
        .replace("**", "tt")
        .replace("fxp", "ftp");
    defanged |= fixed != scheme;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if host_end == 0 {
        return None;
    }
    Some((
        format!(
            "{fixed}://{}{}",
            rest[..host_end].to_ascii_lowercase(),
            &rest[host_end..]
        ),
        defanged,
    ))
}

/// The TLD of a lowercase domain, if it is a known one.
fn tld(domain: &str) -> Option<&str> {
    domain.rsplit('.').next().filter(|t| TLD_SET.contains(t))
}

/// Drops trailing punctuation, keeping closing brackets that are balanced in `s`.
fn trim_punct(mut s: &str) -> &str {
    while let Some(c) = s.chars().last() {
        let open = match c {
            ')' => '(',
            ']' => '[',
            '}' => '{',
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' => c,
            _ => break,
        };
        if open != c && s.matches(open).count() >= s.matches(c).count() {
            break;
        }
        s = &s[..s.len() - 1];
    }
    s
}

fn is_word(c: Option<char>, extra: &str) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_' || extra.contains(c))
}

/// Whether the character before byte `i` is alphanumeric, `_` or in `extra`.
fn is_word_before(text: &str, i: usize, extra: &str) -> bool {
    is_word(text[..i].chars().next_back(), extra)
}

/// Whether the character at byte `i` is alphanumeric, `_` or in `extra`.
fn is_word_after(text: &str, i: usize, extra: &str) -> bool {
    is_word(text[i..].chars().next(), extra)
}

/// Whether `before` ends with a word that makes a following dotted number a version.
fn follows_version_word(before: &str) -> bool {
    let t = before.trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '.');
    let word = t
        .rsplit(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    matches!(
        word.to_ascii_lowercase().as_str(),
        "v" | "ver" | "version" | "release"
    )
}

#[cfg(test)]
mod tests {
    use super::IndicatorKind::*;
    use super::*;

    fn kv(text: &str) -> Vec<(IndicatorKind, String)> {
        extract(text)
            .into_iter()
            .map(|i| (i.kind, i.value))
            .collect()
    }

    fn want(items: &[(IndicatorKind, &str)]) -> Vec<(IndicatorKind, String)> {
        items.iter().map(|&(k, v)| (k, v.to_string())).collect()
    }

    #[test]
    fn defanged_forms_are_refanged_with_original_offsets() {
        let text = "hxxp://a[.]com hXXps://b(.)net/x h**p://c{.}org d[dot]info e(dot)biz \
                    hxxps[://]g.co http[:]//h.ru[:]8080/p x[@]y.com u(at)v.de w[at]z.fr plain.com";
        assert_eq!(
            kv(text),
            want(&[
                (Url, "http://a.com"),
                (Url, "https://b.net/x"),
                (Url, "http://c.org"),
                (Domain, "d.info"),
                (Domain, "e.biz"),
                (Url, "https://g.co"),
                (Url, "http://h.ru:8080/p"),
                (Email, "x@y.com"),
                (Email, "u@v.de"),
                (Email, "w@z.fr"),
                (Domain, "plain.com"),
            ])
        );
        let found = extract(text);
        let raws: Vec<&str> = found.iter().map(|i| &text[i.start..i.end]).collect();
        assert_eq!(
            raws,
            [
                "hxxp://a[.]com",
                "hXXps://b(.)net/x",
                "h**p://c{.}org",
                "d[dot]info",
                "e(dot)biz",
                "hxxps[://]g.co",
                "http[:]//h.ru[:]8080/p",
                "x[@]y.com",
                "u(at)v.de",
                "w[at]z.fr",
                "plain.com"
            ]
        );
        let flags: Vec<bool> = found.iter().map(|i| i.defanged).collect();
        assert_eq!(
            flags,
            [true, true, true, true, true, true, true, true, true, true, false]
        );
    }

    #[test]
    fn ipv4_valid_defanged_and_rejected() {
        let text = "1.2.3.4 and 10.0.0[.]1 via server 8.8.8.8; not 1.2.3.4.5, 999.1.1.1, \
                    version 1.2.3.4, v2.10.0.1, ver 3.1.4.1, release 5.6.7.8; 192.168.0.1:443";
        assert_eq!(
            kv(text),
            want(&[
                (Ipv4, "1.2.3.4"),
                (Ipv4, "10.0.0.1"),
                (Ipv4, "8.8.8.8"),
                (Ipv4, "192.168.0.1")
            ])
        );
    }

    #[test]
    fn ipv6_forms_and_lookalikes() {
        assert_eq!(
            kv("2001:db8::1, fe80::1ff:fe23:4567:890a and ::1."),
            want(&[
                (Ipv6, "2001:db8::1"),
                (Ipv6, "fe80::1ff:fe23:4567:890a"),
                (Ipv6, "::1")
            ])
        );
        assert_eq!(
            kv("At 12:30:45 MAC 00:1a:2b:3c:4d:5e used std::vector and a::b."),
            want(&[])
        );
    }

    #[test]
    fn urls_trailing_punctuation_and_hosts() {
        let text = "See https://example.com/a/b?q=1). Also (ftp://files.example.org/pub/x.zip), \
                    https://en.wikipedia.org/wiki/Foo_(bar), HXXP://EVIL[.]COM/Path, evil.net \
                    and http://1.2.3.4/x; example.com again.";
        assert_eq!(
            kv(text),
            want(&[
                (Url, "https://example.com/a/b?q=1"),
                (Url, "ftp://files.example.org/pub/x.zip"),
                (Url, "https://en.wikipedia.org/wiki/Foo_(bar)"),
                (Url, "http://evil.com/Path"),
                (Domain, "evil.net"),
                (Url, "http://1.2.3.4/x"),
                (Domain, "example.com"),
            ])
        );
    }

    #[test]
    fn domains_tlds_file_names_and_ambiguous_extensions() {
        let text = "Contact evil-site.com, Sub.Example.CO.UK and update.microsoft-cdn[.]xyz; files \
                    invoice.pdf setup.exe report.docx payload.dll script.ps1 a.js run.sh notes.md \
                    lib.rs movie.mov photos.zip; but bad[.]zip and cdn.files.zip at version 2.4.1.It \
                    ended.Today see Evil.COM";
        assert_eq!(
            kv(text),
            want(&[
                (Domain, "evil-site.com"),
                (Domain, "sub.example.co.uk"),
                (Domain, "update.microsoft-cdn.xyz"),
                (Domain, "bad.zip"),
                (Domain, "cdn.files.zip"),
                (Domain, "evil.com")
            ])
        );
    }

    #[test]
    fn emails_plain_and_defanged_without_their_domains() {
        let text =
            "Mail user.name+tag@example.co.uk, alice[@]example[.]com, bob(at)example(dot)com \
                    or John.Doe@Corp.EXAMPLE.com.";
        assert_eq!(
            kv(text),
            want(&[
                (Email, "user.name+tag@example.co.uk"),
                (Email, "alice@example.com"),
                (Email, "bob@example.com"),
                (Email, "John.Doe@corp.example.com")
            ])
        );
    }

    #[test]
    fn hashes_by_exact_length() {
        let text =
            "md5 D41D8CD98F00B204E9800998ECF8427E sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 \
                    sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 \
                    not d41d8cd98f00b204e9800998ecf8427e0 (33) or \
                    e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550 (65) or \
                    xd41d8cd98f00b204e9800998ecf8427e or d41d8cd98f00b204e9800998ecf8427eg";
        assert_eq!(
            kv(text),
            want(&[
                (Md5, "d41d8cd98f00b204e9800998ecf8427e"),
                (Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                (
                    Sha256,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                )
            ])
        );
    }

    #[test]
    fn cve_ids_uppercased() {
        let text = "CVE-2021-44228, cve-2017-0144 and CVE-2023-1234567; not CVE-21-1234, \
                    CVE-2020-123 or CVE-2020-12345678.";
        assert_eq!(
            kv(text),
            want(&[
                (Cve, "CVE-2021-44228"),
                (Cve, "CVE-2017-0144"),
                (Cve, "CVE-2023-1234567")
            ])
        );
    }

    #[test]
    fn file_paths_windows_unc_and_unix() {
        let text = r#"Dropped C:\Users\Public\evil.exe and "%APPDATA%\Microsoft\run.bat"; copied to
            \\server\share\file.txt, then /tmp/x/payload.sh (reads /etc/passwd). Webshell:
            /var/www/html/shell.php. Not 12/05/2024, 1/2, /tmp, https://example.com/var/www/x."#;
        assert_eq!(
            kv(text),
            want(&[
                (FilePath, r"C:\Users\Public\evil.exe"),
                (FilePath, r"%APPDATA%\Microsoft\run.bat"),
                (FilePath, r"\\server\share\file.txt"),
                (FilePath, "/tmp/x/payload.sh"),
                (FilePath, "/etc/passwd"),
                (FilePath, "/var/www/html/shell.php"),
                (Url, "https://example.com/var/www/x")
            ])
        );
    }

    #[test]
    fn registry_keys_long_and_short_hives() {
        let text = r#"Run key HKEY_LOCAL_MACHINE\Software\Microsoft\Windows\CurrentVersion\Run,
            HKLM\SYSTEM\CurrentControlSet\Services\evil. "HKCU\Software\Classes\ms-settings\shell"
            HKCR\exefile\shell HKU\S-1-5-21\Software; HKCC\System\x and HKEY_CURRENT_USER\Environment."#;
        assert_eq!(
            kv(text),
            want(&[
                (
                    RegistryKey,
                    r"HKEY_LOCAL_MACHINE\Software\Microsoft\Windows\CurrentVersion\Run"
                ),
                (RegistryKey, r"HKLM\SYSTEM\CurrentControlSet\Services\evil"),
                (RegistryKey, r"HKCU\Software\Classes\ms-settings\shell"),
                (RegistryKey, r"HKCR\exefile\shell"),
                (RegistryKey, r"HKU\S-1-5-21\Software"),
                (RegistryKey, r"HKCC\System\x"),
                (RegistryKey, r"HKEY_CURRENT_USER\Environment"),
            ])
        );
    }

    #[test]
    fn ordinary_sentence_has_no_indicators() {
        let text = "Upgraded to version 2.4.1 at 10:30 on 2024-05-01; revenue grew 12.5% to $3.2M.";
        assert_eq!(kv(text), want(&[]));
    }

    #[test]
    fn duplicates_keep_first_occurrence() {
        let found = extract("evil.com, EVIL[.]com and evil.com");
        assert_eq!(
            found,
            vec![Indicator {
                kind: Domain,
                value: "evil.com".into(),
                defanged: false,
                start: 0,
                end: 8
            }]
        );
        assert_eq!(
            serde_json::to_value(FilePath).ok(),
            Some(serde_json::json!("file_path"))
        );
    }

    #[test]
    fn realistic_mixed_report() {
        let text = "Phishing wave: mails from billing(at)secure-pay(dot)com lured users to \
            hxxps://login.micros0ft-support[.]com/verify?id=42, which dropped C:\\Users\\Public\\invoice.exe \
            (SHA256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, MD5 \
            D41D8CD98F00B204E9800998ECF8427E). The implant beacons to 185.220.101[.]47 and \
            update-cdn[.]xyz, persists via HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run, \
            and exploits CVE-2021-44228. Contact soc@example.org.";
        assert_eq!(
            kv(text),
            want(&[
                (Email, "billing@secure-pay.com"),
                (Url, "https://login.micros0ft-support.com/verify?id=42"),
                (FilePath, r"C:\Users\Public\invoice.exe"),
                (
                    Sha256,
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                ),
                (Md5, "d41d8cd98f00b204e9800998ecf8427e"),
                (Ipv4, "185.220.101.47"),
                (Domain, "update-cdn.xyz"),
                (
                    RegistryKey,
                    r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run"
                ),
                (Cve, "CVE-2021-44228"),
                (Email, "soc@example.org"),
            ])
        );
    }
}
