//! Each crate's documented layout matches its modules: the `# Layout` list in every crate
//! root's doc (`src/lib.rs`, `src/main.rs`) names exactly the modules that root declares, so
//! a newcomer's map of the code cannot drift from the code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace members, read from the root manifest's `members = [...]`.
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    let start = manifest.find("\nmembers = [").expect("a members list");
    let list = &manifest[start..];
    let end = list.find(']').expect("the members list ends");
    list[..end].split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The modules a crate root declares (`mod x;` or `mod x {` at the top level), less `tests`.
fn declared(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
            let rest = l.strip_prefix("mod ")?;
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            (!name.is_empty() && name != "tests").then_some(name)
        })
        .collect()
}

/// The modules the crate doc's `# Layout` list names: the first code span of each item,
/// written `[`x`]`, `[`x`](mod@x)`, `` `x` `` or `` `x.rs` ``. `None` when there is no such
/// section.
fn documented(source: &str) -> Option<BTreeSet<String>> {
    let doc: Vec<&str> = source.lines().map_while(|l| l.strip_prefix("//!")).map(str::trim_start).collect();
    let at = doc.iter().position(|l| *l == "# Layout")?;
    let mut names = BTreeSet::new();
    for line in doc[at + 1..].iter().take_while(|l| !l.starts_with('#')) {
        let Some(item) = line.strip_prefix("- ") else { continue };
        let name = item.split('`').nth(1).unwrap_or_default();
        names.insert(name.strip_suffix(".rs").unwrap_or(name).to_owned());
    }
    Some(names)
}

#[test]
fn every_crate_documents_exactly_its_modules() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut checked = 0;
    for member in members(&root) {
        for file in ["src/lib.rs", "src/main.rs"] {
            let path = root.join(&member).join(file);
            let Ok(source) = std::fs::read_to_string(&path) else { continue };
            let mods = declared(&source);
            if mods.is_empty() {
                continue;
            }
            checked += 1;
            let shown = format!("{member}/{file}");
            // A binary's list may describe the root file itself (`main.rs`: the commands).
            let own = file.trim_start_matches("src/").trim_end_matches(".rs");
            match documented(&source).map(|mut d| {
                d.remove(own);
                d
            }) {
                None => problems.push(format!("{shown}: declares {mods:?} but its doc has no `# Layout` list")),
                Some(docs) if docs != mods => {
                    let missing: Vec<_> = mods.difference(&docs).collect();
                    let stale: Vec<_> = docs.difference(&mods).collect();
                    problems
                        .push(format!("{shown}: undocumented modules {missing:?}, documented but absent {stale:?}"));
                }
                Some(_) => {}
            }
        }
    }
    assert!(checked >= 10, "found only {checked} crate roots with modules: is the members list read right?");
    assert!(problems.is_empty(), "the layout docs drifted:\n{}", problems.join("\n"));
}

#[test]
fn the_parsers_read_what_they_should() {
    let src = "//! Doc.\n//!\n//! # Layout\n//!\n//! - [`a`]: one.\n//!   more of one.\n//! - `b`: two.\n\
               //! - `c.rs`: three.\n//! - [`d`](mod@d): four.\n//!\n//! # Example\n//! - `not_a_module`\n\n\
               pub mod a;\nmod b;\npub(crate) mod c;\npub mod d {\n}\n#[cfg(test)]\nmod tests;\n    mod nested;\n";
    let want: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    assert_eq!(declared(src), want);
    assert_eq!(documented(src), Some(want));
    assert_eq!(documented("//! No layout.\npub mod a;\n"), None);
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A metric is recorded under a named constant that its crate's `METRICS` table lists, never
/// a name written at the call: `rsgame config metrics` prints those tables, and the
/// deployment's dashboards and alerts are checked against them (a scrape in the binary's
/// tests finds nothing outside them).
#[test]
fn metrics_are_recorded_by_name_constants() {
    let root = workspace_root();
    let mut files = Vec::new();
    for member in members(&root) {
        rust_files(&root.join(&member).join("src"), &mut files);
    }
    assert!(files.len() > 50, "found the sources");
    let calls = ["counter!(", "gauge!(", "histogram!(", "FastHistogram::register("];
    let mut problems = Vec::new();
    for path in files {
        let source = std::fs::read_to_string(&path).expect("read source");
        // Unit tests may record whatever they like.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in source.lines().enumerate() {
            for call in calls {
                let Some(at) = line.find(call) else { continue };
                if line[at + call.len()..].trim_start().starts_with('"') {
                    problems.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "metric names written at the call:\n{}", problems.join("\n"));
}
