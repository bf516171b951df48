//! No spec string can change the shape of a rendered xl config: whatever a string field of the
//! spec holds, either the spec is rejected or the rendered configs have the same keys, the same
//! list elements and the same keys inside each list element as with the example's values. The
//! configs are read back with a parser of xl's config syntax (settings `key = value` ended by a
//! newline or `;`, `#` comments, numbers, quoted strings with backslash escapes, `[ ... ]` lists).

use proptest::prelude::*;
use toolstack_plugin::render;
use toolstack_plugin::spec::GroupSpec;
use toolstack_plugin::xl_extra::{self, XlExtra, XlScalar};

const SPEC: &str = include_str!("../../xl-configs/example-group.yaml");

/// What a setting's value looks like: a scalar, or a list whose every string element is a
/// comma-separated `key=value` list (xl's vif/disk/pci syntax), given by its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Scalar,
    List(Vec<Vec<String>>),
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// Skip blanks (and, if `lines`, newlines and comments).
    fn blanks(&mut self, lines: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'\n' if lines => self.at += 1,
                b'#' if lines => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.at += 1
                    }
                }
                _ => break,
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.s[self.at];
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err(format!("unterminated string at {}", self.at)),
                Some(c) if c == q => {
                    self.at += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    let e = self.s.get(self.at + 1).copied().ok_or("escape at end")?;
                    out.push(e);
                    self.at += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn value(&mut self) -> Result<Shape, String> {
        match self.peek() {
            Some(b'"' | b'\'') => self.string().map(|_| Shape::Scalar),
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.at += 1
                }
                Ok(Shape::Scalar)
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.blanks(true);
                    match self.peek() {
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Shape::List(items));
                        }
                        Some(b'"' | b'\'') => items.push(item_keys(&self.string()?)),
                        other => return Err(format!("list element starts with {other:?}")),
                    }
                    self.blanks(true);
                    if self.peek() == Some(b',') {
                        self.at += 1;
                    }
                }
            }
            other => Err(format!("value starts with {other:?} at {}", self.at)),
        }
    }
}

/// The keys of one list element `k=v,k=v,...`; a disk's `target=` takes the rest of the element.
fn item_keys(item: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for part in item.split(',') {
        let key = part.split('=').next().unwrap_or("").to_string();
        let target = key == "target";
        keys.push(key);
        if target {
            break;
        }
    }
    keys
}

/// The settings of an xl config, in order, with the shape of their values.
fn settings(cfg: &str) -> Result<Vec<(String, Shape)>, String> {
    let mut p = Parser {
        s: cfg.as_bytes(),
        at: 0,
    };
    let mut out = Vec::new();
    loop {
        p.blanks(true);
        if p.peek() == Some(b';') {
            p.at += 1;
            continue;
        }
        let Some(c) = p.peek() else { return Ok(out) };
        if !(c.is_ascii_alphabetic() || c == b'_') {
            return Err(format!("setting starts with {:?} at {}", c as char, p.at));
        }
        let start = p.at;
        while p
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            p.at += 1
        }
        let key = String::from_utf8_lossy(&p.s[start..p.at]).into_owned();
        p.blanks(false);
        if p.peek() != Some(b'=') {
            return Err(format!("no `=` after {key}"));
        }
        p.at += 1;
        p.blanks(false);
        let v = p.value()?;
        out.push((key, v));
        p.blanks(false);
        match p.peek() {
            None | Some(b'\n' | b';' | b'#') => {}
            Some(c) => return Err(format!("{:?} after a value at {}", c as char, p.at)),
        }
    }
}

/// The shape of every rendered xl config of `spec`, by file.
fn shapes(spec: &GroupSpec) -> Vec<Result<Vec<(String, Shape)>, String>> {
    render::render_all(spec)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".cfg"))
        .map(|(_, text)| settings(&text))
        .collect()
}

/// A harmless value of string field number `field`: the spec it makes renders the shape any
/// other value of that field must render.
fn benign(field: usize) -> String {
    match field {
        0 | 1 | 6 | 7 | 8 => "/srv/nv/x.img",
        2 | 9 => "console=hvc0",
        3 => "xenbr1",
        4 | 10 => "00:16:3e:aa:bb:cc",
        5 => "other-nv",
        11 => "r9",
        12 | 15 => "0-1",
        13 | 16 => "system_u:system_r:domU_t",
        14 | 17 => "10Mb/s@20ms",
        18 => "grp",
        19 | 21 => "destroy",
        20 => "native",
        22 => "100",
        _ => "cap",
    }
    .to_string()
}

/// Set the string field number `field` of `spec` to `v`.
fn set(spec: &mut GroupSpec, field: usize, v: String) {
    let r0 = &mut spec.replicas[0];
    match field {
        0 => spec.nv_domain.kernel = v,
        1 => spec.nv_domain.initramfs = v,
        2 => spec.nv_domain.extra = v,
        3 => spec.nv_domain.external.bridge = Some(v),
        4 => spec.nv_domain.external.mac = Some(v),
        5 => spec.nv_domain.name = Some(v),
        6 => r0.kernel = v,
        7 => r0.initramfs = Some(v),
        8 => r0.image = Some(v),
        9 => r0.extra = v,
        10 => spec.replica_link.mac = Some(v),
        11 => r0.name = v,
        12 => spec.nv_domain.cpus = Some(v),
        13 => spec.nv_domain.seclabel = Some(v),
        14 => spec.nv_domain.external.rate = Some(v),
        15 => r0.cpus = Some(v),
        16 => r0.seclabel = Some(v),
        17 => r0.rate = Some(v),
        18 => spec.group = v,
        // xl-extra: values of keys whose grammar is a word or a number, and a key itself
        19 => extra(&mut spec.nv_domain.xl_extra, "on_crash", XlScalar::Text(v)),
        20 => extra(&mut r0.xl_extra, "tsc_mode", XlScalar::Text(v)),
        21 => extra(&mut r0.xl_extra, "on_reboot", XlScalar::Text(v)),
        22 => {
            // as YAML reads it: a number, a boolean or a string
            let value = serde_yaml::from_str(&v).unwrap_or(XlScalar::Text(v));
            extra(&mut spec.nv_domain.xl_extra, "cpu_weight", value)
        }
        _ => extra(&mut r0.xl_extra, &v, XlScalar::Int(1)),
    }
}

/// `extra` holding just `key: value`.
fn extra(extra: &mut XlExtra, key: &str, value: XlScalar) {
    extra.clear();
    extra.insert(key.to_string(), value);
}

/// The field that sets an `xl-extra` key: any key xl-extra allows may appear (as a scalar).
const XL_EXTRA_KEY_FIELD: usize = 23;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_spec_string_adds_a_key_or_a_list_element(
        field in 0usize..24,
        v in "/?[a-zA-Z0-9/',\"=\\\\\\n\\r\\[\\];# .:_@-]{0,24}",
    ) {
        let mut base = GroupSpec::parse(SPEC).unwrap();
        set(&mut base, field, benign(field));
        let want = shapes(&base);
        let mut spec = base.clone();
        set(&mut spec, field, v.clone());
        let text = serde_yaml::to_string(&spec).unwrap();
        if let Ok(parsed) = GroupSpec::parse(&text) {
            // a value may drop an optional setting (an empty `extra`), never add one
            for (got, want) in shapes(&parsed).iter().zip(&want) {
                let (got, want) = (got.as_ref().unwrap(), want.as_ref().unwrap());
                let allowed = |s: &(String, Shape)| {
                    want.contains(s)
                        || (field == XL_EXTRA_KEY_FIELD
                            && s.1 == Shape::Scalar
                            && xl_extra::ALLOWED.iter().any(|k| k.name == s.0))
                };
                prop_assert!(
                    got.len() <= want.len() && got.iter().all(allowed),
                    "field {} = {:?}: {:?} is not within {:?}", field, v, got, want
                );
            }
        }
    }
}

#[test]
fn the_parser_sees_an_injected_key_and_list_element() {
    let cfg = "name = \"a\"\nvif = [ 'bridge=x,script=y' ]\ndisk = [ 'target=/a', 'target=/dev/sda' ]\nextra = \"a\"\nmemory = 9\n";
    let s = settings(cfg).unwrap();
    assert_eq!(s.len(), 5);
    assert_eq!(
        s[1].1,
        Shape::List(vec![vec!["bridge".into(), "script".into()]])
    );
    assert_eq!(
        s[2].1,
        Shape::List(vec![vec!["target".into()], vec!["target".into()]])
    );
    assert!(settings("kernel = \"/a\nmemory = 1\"\n").is_err());
}
